"""Jobs: the list, one job's page and what can be done to it (cancel, retry, delete, run
again as QC only; cancel or delete several at once).

A federated job (one upload sent to several services and panels) shows as one row in the
list; its page lists its targets' jobs (each a job with a page of its own, which links
back), their summary, and the comparison of their results, opened in the browser from
/jobs/{id}/comparison in a sandbox (it is the hub's own report, but a page of its own).

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
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.db.models import Job, ReferencePanel, Service, StoredFile, User
from imputehub.domain import failure_explanations, job_steps
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.domain.jobs import ACTIVE, TERMINAL, JobMode, JobStatus
from imputehub.files import records
from imputehub.jobs import actions, federated, queries
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
    "retried_targets": "The failed and cancelled targets were retried; each has a new job below.",
}
COMPARISON = "comparison.html"
# The comparison report opens as a page of its own: no script, no outside address, and a
# sandbox (an origin of its own) should it ever carry more than the hub wrote.
COMPARISON_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
COMPARISON_CHUNK = 64 * 1024


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
    targets = {
        job.id: len(federated.current_children(await federated.children_of(session, job.id)))
        for job in found.items
        if federated.is_parent(job)
    }

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
            "targets": targets,
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


@dataclass(frozen=True, kw_only=True)
class ChildRow:
    """One target's job on its federated job's page."""

    job: Job
    service: str  # the service's name (its id, should the service be gone)
    panel: str
    replaced: bool  # this attempt was retried: the retry counts instead


async def _child_rows(session: AsyncSession, children: list[Job]) -> list[ChildRow]:
    current = {child.id for child in federated.current_children(children)}
    rows = []
    for child in children:
        service = await session.get(Service, child.service_id) if child.service_id else None
        panel = (
            await session.get(ReferencePanel, child.reference_panel_id)
            if child.reference_panel_id
            else None
        )
        rows.append(
            ChildRow(
                job=child,
                service=service.name if service else child.service_id or "",
                panel=panel.display_name if panel else child.reference_panel_id or "",
                replaced=child.id not in current,
            )
        )
    return rows


def _comparison(results: list[StoredFile]) -> StoredFile | None:
    return next((r for r in results if r.filename.rsplit("/", 1)[-1] == COMPARISON), None)


@dataclass(frozen=True, kw_only=True)
class Federation:
    """What a job's page shows of the federated job it is, or is part of."""

    children: list[ChildRow]  # a parent's; empty for any other job
    summary: str
    parent: Job | None  # a child's parent
    current: bool  # a child: its target's latest attempt (retry acts on that one only)
    retryable: bool  # a parent: ended, with failed or cancelled targets to retry


async def _federation(session: AsyncSession, user: User, job: Job) -> Federation:
    children = await federated.children_if_parent(session, job)
    if children is not None:
        latest = federated.current_children(children)
        ended = JobStatus(job.status) in TERMINAL
        return Federation(
            children=await _child_rows(session, children),
            summary=federated.summary(children),
            parent=None,
            current=True,
            retryable=ended
            and bool(job.inputs)
            and any(JobStatus(c.status) in federated.RETRYABLE for c in latest),
        )
    parent = None
    current = True
    if job.parent_id is not None:
        parent = await queries.get_job(session, user, job.parent_id)
        siblings = federated.current_children(await federated.children_of(session, parent.id))
        current = job.id in {sibling.id for sibling in siblings}
    return Federation(children=[], summary="", parent=parent, current=current, retryable=False)


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: str, request: Request, session: SessionDep, runtime: RuntimeDep, opened: SignedIn
) -> Response:
    job = await queries.get_job(session, opened.user, _check_id(job_id))
    updates = list(await queries.status_updates(session, opened.user, job.id))
    results = list(await queries.result_files(session, opened.user, job.id))
    federation = await _federation(session, opened.user, job)
    parent = federated.is_parent(job)
    service, panel = (None, None) if parent else await queries.service_and_panel(session, job)
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
            "steps": [] if parent else _timeline(job, updates),
            "updates": updates,
            "federated": parent,
            "federation": federation,
            "comparison": _comparison(results),
            "slot_wait": await queries.slot_wait(session, job) if status in ACTIVE else None,
            "explanation": explanation,
            "remedies": {r.value for r in explanation.remedies} if explanation else set(),
            "results": [
                Download(record=r, url=f"/app/api/v1/files/{r.id}/content") for r in results
            ],
            "qc": await qc_tables.read_tables(runtime.storage, results),
            "base_url": _base_url(runtime, request),
            "curl_script": curl_script(_base_url(runtime, request), job, results),
            "retryable": federation.retryable
            if parent
            else status in actions.RETRYABLE and bool(job.inputs) and federation.current,
            "rerunnable": not parent and status not in ACTIVE and bool(job.inputs),
            "notice": notice,
        },
        opened=opened,
    )


@router.get("/jobs/{job_id}/comparison")
async def comparison(
    job_id: str, session: SessionDep, runtime: RuntimeDep, opened: SignedIn
) -> Response:
    """A federated job's comparison report, to read in the browser (the file downloads
    from the results list as every result does)."""
    job = await queries.get_job(session, opened.user, _check_id(job_id))
    record = _comparison(list(await queries.result_files(session, opened.user, job.id)))
    if record is None:
        raise NotFound(f"job {job.id} has no comparison report (yet)")
    chunks = await records.read_content(
        runtime.storage, record, start=0, end=None, chunk_size=COMPARISON_CHUNK
    )
    return StreamingResponse(
        chunks,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": COMPARISON_CSP,
            "Content-Length": str(record.size),
            "Cache-Control": "private, no-cache",
        },
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
    return _to_job(job.id, "retried_targets" if federated.is_parent(job) else "retried")


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
