"""The dashboard: my active jobs with live progress, recent results, counts by status,
services with their health and load, unread notifications.

The page is whole when it arrives; static/js/dashboard.js then follows the user's event
stream (and each shown active job's stream, for its progress) to keep it current.

A federated job is one row ("federated · N targets"); its targets' jobs are on its page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imputehub.api.deps import SessionDep
from imputehub.domain.jobs import ACTIVE, JobStatus
from imputehub.jobs import federated, queries, stats
from imputehub.notify import inbox
from imputehub.registry import services
from imputehub.web.session_auth import SignedIn
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)

ACTIVE_SHOWN = 20
RESULTS_SHOWN = 5
NOTIFICATIONS_SHOWN = 5
# Statuses in the order a job goes through them, for the counts.
STATUS_ORDER = [s.value for s in JobStatus]
ACTIVE_STATUSES = sorted(s.value for s in ACTIVE)


@router.get("/")
async def dashboard(request: Request, session: SessionDep, opened: SignedIn) -> Response:
    user = opened.user
    summary = await stats.job_stats(session, user)
    # Federated jobs as themselves: their targets' jobs show on their pages.
    active = await queries.active_jobs(session, user, limit=ACTIVE_SHOWN)
    results = await queries.recent_results(session, user, limit=RESULTS_SHOWN)
    targets = {
        job.id: len(federated.current_children(await federated.children_of(session, job.id)))
        for job in active
        if federated.is_parent(job)
    }
    loads = await services.service_loads(session)
    unread = await inbox.list_notifications(
        session, user, unread_only=True, limit=NOTIFICATIONS_SHOWN
    )
    # Jobs may point at a service since deactivated: its id stands in for the name.
    names = {load.service.id: load.service.name for load in loads}
    return render(
        request,
        "dashboard.html",
        {
            "stats": summary,
            "statuses": STATUS_ORDER,
            "active_statuses": ACTIVE_STATUSES,
            "active": active,
            # (The counts are of jobs at services, a federated job's targets each.)
            "active_more": len(active) >= ACTIVE_SHOWN,
            "targets": targets,
            "results": results,
            "loads": loads,
            "service_names": names,
            "notifications": unread.items,
            "unread_total": unread.total,
        },
        opened=opened,
    )
