"""Jobs: the list, one job's page and what can be done to it (cancel, retry, delete, run
again as QC only; cancel or delete several at once).

Reads use the request's transaction (SignedIn). Forms that act resolve the session in a
short transaction of their own (`Acting`), because the actions open theirs: on SQLite a
request transaction that touched the session row would hold the write lock they need.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.db.models import Job, StoredFile
from imputehub.domain import failure_explanations, job_steps
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.domain.jobs import ACTIVE, JobMode, JobStatus
from imputehub.jobs import actions, queries
from imputehub.runtime import Runtime
from imputehub.web import qc_tables, session_auth
from imputehub.web.session_auth import SignedIn
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
MAX_PAGE = 100_000
MAX_SERVICE_REF = 100  # a service's id or slug
_JOB_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
NOTICES = {
    "cancelled": "The job was cancelled.",
    "cancelling": "Cancelling: the hub is telling the service. This page shows when it is done.",
    "retried": "This is a new job with the same settings and files as the one that failed.",
    "qc_only": "This is a new quality-control-only job with the same settings and files.",
    "deleting_active": "The job was still active, so it is being cancelled instead of deleted.",
}


# Actions run their use cases in transactions of their own.
Acting = session_auth.DetachedSignedIn


def _check_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise NotFound("there is no job with that id; check the link")
    return job_id


# --- the list -------------------------------------------------------------------------------


def _choice(value: str, allowed: type[JobStatus] | type[JobMode], field: str) -> Any:
    if not value:
        return None
    try:
        return allowed(value)
    except ValueError:
        options = ", ".join(item.value for item in allowed)
        raise InvalidInput(f"{field} must be one of: {options}", field=field) from None


def _filters(request: Request) -> tuple[queries.JobFilters, int, dict[str, str]]:
    params = request.query_params
    raw = {key: params.get(key, "").strip() for key in ("status", "service", "mode", "q")}
    if len(raw["q"]) > queries.MAX_QUERY:
        raise InvalidInput(f"search for at most {queries.MAX_QUERY} characters", field="q")
    if len(raw["service"]) > MAX_SERVICE_REF:
        raise InvalidInput("choose a service from the list", field="service")
    page_text = params.get("page", "1").strip() or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise InvalidInput("page must be a whole number from 1", field="page")
    filters = queries.JobFilters(
        status=_choice(raw["status"], JobStatus, "status"),
        service=raw["service"] or None,
        mode=_choice(raw["mode"], JobMode, "mode"),
        q=raw["q"] or None,
    )
    return filters, int(page_text), raw


@router.get("/jobs")
async def jobs_list(request: Request, session: SessionDep, opened: SignedIn) -> Response:
    filters, page, raw = _filters(request)
    found = await queries.list_jobs(
        session, opened.user, filters=filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    services = await queries.services_used(session, opened.user)
    pages = max(1, -(-found.total // PAGE_SIZE))

    def page_link(number: int) -> str:
        kept = {k: v for k, v in raw.items() if v}
        return "/jobs?" + urlencode({**kept, "page": number})

    return render(
        request,
        "jobs/list.html",
        {
            "jobs": found.items,
            "total": found.total,
            "page": page,
            "pages": pages,
            "previous_link": page_link(page - 1) if page > 1 else None,
            "next_link": page_link(page + 1) if page < pages else None,
            "filters": raw,
            "filtered": any(raw.values()),
            "statuses": [s.value for s in JobStatus],
            "modes": [m.value for m in JobMode],
            "services": services,
            "service_names": {s.id: s.name for s in services},
            "deleted": request.query_params.get("deleted") == "1",
        },
        opened=opened,
    )


@router.post("/jobs/bulk")
async def jobs_bulk(request: Request, runtime: RuntimeDep, opened: Acting, now: Now) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    try:
        action = actions.BulkAction(str(form.get("action") or ""))
    except ValueError:
        raise InvalidInput("choose Cancel or Delete", field="action") from None
    ids = [str(value) for value in form.getlist("job_id")]
    for job_id in ids:
        _check_id(job_id)
    outcomes = await actions.act_on_jobs(
        runtime, opened.user, ids, action=action, now=now, origin=request_origin(request)
    )
    return render(
        request,
        "jobs/bulk.html",
        {"action": action.value, "outcomes": outcomes},
        opened=opened,
    )


# --- one job --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Download:
    record: StoredFile
    url: str


def _base_url(runtime: Runtime, request: Request) -> str:
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


def _safe_name(record: StoredFile) -> str:
    """A relative path for the script to write to: no way out of the folder."""
    parts = [p for p in record.filename.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or record.id


def curl_script(base: str, job: Job, results: list[StoredFile]) -> str:
    """Every result with curl and a checksum check; the token is a placeholder the user
    replaces (the page never holds a secret)."""
    lines = [
        "#!/bin/sh",
        f"# The results of job {job.id}; paste a personal API token (Settings) below.",
        "set -eu",
        "export IMPUTEHUB_TOKEN='paste-your-personal-token-here'",
        f"mkdir -p {shlex.quote(job.id)} && cd {shlex.quote(job.id)}",
    ]
    for record in results:
        url = f"{base}/api/v1/files/{record.id}/content"
        lines.append(
            'curl -fL --create-dirs -H "Authorization: Bearer $IMPUTEHUB_TOKEN" '
            f"-o {shlex.quote(_safe_name(record))} {shlex.quote(url)}"
        )
    lines.append("sha256sum -c <<'SUMS'")
    lines += [f"{r.sha256}  {_safe_name(r)}" for r in results if "\n" not in r.filename]
    lines.append("SUMS")
    return "\n".join(lines) + "\n"


def _timeline(job: Job, updates: list[Any]) -> list[job_steps.Step]:
    return job_steps.timeline(
        status=JobStatus(job.status),
        mode=JobMode(job.mode),
        progress=float(job.progress),
        updates=[
            job_steps.Update(
                status=JobStatus(row.status),
                progress=float(row.progress),
                message=row.message,
                at=row.created_at,
            )
            for row in updates
        ],
        service_logs=[str(line) for line in job.service_logs or []],
    )


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: str, request: Request, session: SessionDep, runtime: RuntimeDep, opened: SignedIn
) -> Response:
    job = await queries.get_job(session, opened.user, _check_id(job_id))
    updates = list(await queries.status_updates(session, opened.user, job.id))
    results = list(await queries.result_files(session, opened.user, job.id))
    service, panel = await queries.service_and_panel(session, job)
    status = JobStatus(job.status)
    failed = status == JobStatus.FAILED
    explanation = failure_explanations.explain(job.error_message) if failed else None
    notice = NOTICES.get(request.query_params.get("done", ""), "")
    return render(
        request,
        "jobs/job.html",
        {
            "job": job,
            "status": status.value,
            "active": status in ACTIVE,
            "service": service,
            "panel": panel,
            "steps": _timeline(job, updates),
            "slot_wait": await queries.slot_wait(session, job) if status in ACTIVE else None,
            "explanation": explanation,
            "remedies": {r.value for r in explanation.remedies} if explanation else set(),
            "results": [
                Download(record=r, url=f"/app/api/v1/files/{r.id}/content") for r in results
            ],
            "qc": await qc_tables.read_tables(runtime.storage, results),
            "base_url": _base_url(runtime, request),
            "curl_script": curl_script(_base_url(runtime, request), job, results),
            "retryable": status in actions.RETRYABLE and bool(job.inputs),
            "rerunnable": status not in ACTIVE and bool(job.inputs),
            "notice": notice,
        },
        opened=opened,
    )


def _to_job(job_id: str, done: str | None = None) -> RedirectResponse:
    suffix = f"?done={done}" if done else ""
    return RedirectResponse(f"/jobs/{job_id}{suffix}", status_code=303)


@router.post("/jobs/{job_id}/cancel")
async def cancel(
    job_id: str, request: Request, runtime: RuntimeDep, opened: Acting, now: Now
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        job = await actions.cancel_job(
            session, opened.user, _check_id(job_id), now=now, origin=request_origin(request)
        )
    runtime.wake_workers()
    return _to_job(job.id, "cancelled" if job.status == JobStatus.CANCELLED else "cancelling")


@router.post("/jobs/{job_id}/retry")
async def retry(
    job_id: str, request: Request, runtime: RuntimeDep, opened: Acting, now: Now
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        job = await actions.retry_job(
            session,
            opened.user,
            _check_id(job_id),
            now=now,
            max_active_jobs=runtime.settings.max_active_jobs_per_user,
            origin=request_origin(request),
        )
    runtime.wake_workers()
    return _to_job(job.id, "retried")


@router.post("/jobs/{job_id}/qc-only")
async def rerun_qc_only(
    job_id: str, request: Request, runtime: RuntimeDep, opened: Acting, now: Now
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        job = await actions.rerun_as_qc_only(
            session,
            opened.user,
            _check_id(job_id),
            now=now,
            max_active_jobs=runtime.settings.max_active_jobs_per_user,
        )
    runtime.wake_workers()
    return _to_job(job.id, "qc_only")


@router.post("/jobs/{job_id}/delete")
async def delete(
    job_id: str, request: Request, runtime: RuntimeDep, opened: Acting, now: Now
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    active = await actions.delete_job(
        runtime, opened.user, _check_id(job_id), now=now, origin=request_origin(request)
    )
    if active is not None:
        runtime.wake_workers()
        return _to_job(active.id, "deleting_active")
    return RedirectResponse("/jobs?deleted=1", status_code=303)
