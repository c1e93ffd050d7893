"""The queue: every active job with filters, cancel or retry any, per-service pause."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.domain.jobs import ACTIVE, JobStatus
from imputehub.jobs import actions, admin_queries
from imputehub.operations import hub_settings, maintenance
from imputehub.registry import services
from imputehub.web import session_auth
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn, DetachedAdminSignedIn
from imputehub.web.settings_common import sentence

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
MAX_PAGE = 100_000
_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_SLUG = re.compile(r"[A-Za-z0-9._-]{1,100}")
NOTICES = {
    "cancelled": "The job was cancelled.",
    "cancelling": "Cancelling: the hub is telling the service.",
    "retried": "A new job with the same settings and files was queued for its owner.",
    "paused": "The service is paused: its new jobs wait in the hub.",
    "resumed": "The service was resumed: the jobs held for it go on.",
}
STATUS_CHOICES = [
    *(s.value for s in JobStatus if s in ACTIVE),
    JobStatus.FAILED.value,
    JobStatus.CANCELLED.value,
]


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise NotFound(f"there is no {what} with that id; check the link")
    return value


def _raw(request: Request) -> dict[str, str]:
    """The filters as typed (cut short: they are shown back in the form)."""
    return {
        key: request.query_params.get(key, "").strip()[:200]
        for key in ("status", "service", "user")
    }


def _filters(request: Request, raw: dict[str, str]) -> tuple[admin_queries.QueueFilters, int]:
    page_text = request.query_params.get("page", "1").strip() or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise InvalidInput("The page must be a whole number from 1.", field="page")
    status: JobStatus | None = None
    if raw["status"]:
        if raw["status"] not in STATUS_CHOICES:
            raise InvalidInput(
                "Choose a status from the list: " + ", ".join(STATUS_CHOICES) + ".",
                field="status",
            )
        status = JobStatus(raw["status"])
    filters = admin_queries.QueueFilters(
        status=status, service=raw["service"] or None, owner=raw["user"] or None
    )
    return filters, int(page_text)


async def _context(session: AsyncSession) -> dict[str, Any]:
    loads = await services.service_loads(session)
    return {
        "queue_loads": loads,
        "queue_waiting": await admin_queries.waiting_in_hub(session),
        "queue_hub": await hub_settings.load(session),
        "statuses": STATUS_CHOICES,
    }


@router.get("/console/queue")
async def queue_page(request: Request, session: SessionDep, opened: AdminSignedIn) -> Response:
    context = await _context(session)
    raw = _raw(request)
    try:
        filters, page = _filters(request, raw)
        found = await admin_queries.list_queue(
            session,
            opened.user,
            filters=filters,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    except InvalidInput as exc:
        return render_console(
            request,
            "console/queue.html",
            {**context, "rows": [], "total": 0, "filters": raw, "error": sentence(exc.message)},
            opened=opened,
            status_code=422,
        )
    pages = max(1, -(-found.total // PAGE_SIZE))

    def page_link(number: int) -> str:
        kept = {k: v for k, v in raw.items() if v}
        return "/console/queue?" + urlencode({**kept, "page": number})

    return render_console(
        request,
        "console/queue.html",
        {
            **context,
            "rows": found.rows,
            "total": found.total,
            "page": page,
            "pages": pages,
            "previous_link": page_link(page - 1) if page > 1 else None,
            "next_link": page_link(page + 1) if page < pages else None,
            "filters": raw,
            "filtered": any(raw.values()),
            "ended": filters.status is not None and filters.status not in ACTIVE,
            "notice": NOTICES.get(request.query_params.get("done", ""), ""),
        },
        opened=opened,
    )


def _back(done: str) -> RedirectResponse:
    return RedirectResponse(f"/console/queue?done={done}", status_code=303)


@router.post("/console/queue/jobs/{job_id}/cancel")
async def cancel_job(
    job_id: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, now: Now
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        job = await actions.cancel_job(
            session,
            opened.user,
            _check(_ID, job_id, "job"),
            now=now,
            origin=request_origin(request),
        )
    runtime.wake_workers()
    return _back("cancelled" if job.status == JobStatus.CANCELLED else "cancelling")


@router.post("/console/queue/jobs/{job_id}/retry")
async def retry_job(
    job_id: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, now: Now
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        await admin_queries.retry_as_admin(
            session,
            opened.user,
            _check(_ID, job_id, "job"),
            now=now,
            max_active_jobs=runtime.settings.max_active_jobs_per_user,
            origin=request_origin(request),
        )
    runtime.wake_workers()
    return _back("retried")


@router.post("/console/queue/services/{slug}/pause")
async def pause_service(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, now: Now
) -> Response:
    """Pause (form field paused=1) or resume (paused=0) a service."""
    form = await session_auth.read_form(request, runtime, opened)
    wanted = form.get("paused")
    if wanted not in ("0", "1"):
        raise InvalidInput("choose Pause or Resume", field="paused")
    paused = wanted == "1"
    async with runtime.db.session() as session:
        service = await services.get_service(session, opened.user, _check(_SLUG, slug, "service"))
        await maintenance.set_paused(
            session, opened.user, service, paused, origin=request_origin(request), now=now
        )
    if not paused:
        runtime.wake_workers()  # committed: the held jobs are due now
    return _back("paused" if paused else "resumed")
