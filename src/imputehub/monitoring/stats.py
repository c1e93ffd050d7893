"""Admin stats: jobs by status, and per recent window how many finished and how many failed,
overall and per service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, Service
from imputehub.domain.jobs import JobStatus

WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


@dataclass(frozen=True, kw_only=True)
class Window:
    submitted: int
    completed: int
    failed: int
    cancelled: int
    # completed jobs per hour over the window
    processing_rate_per_hour: float
    # failed / (completed + failed); None while nothing finished either way
    failure_rate: float | None


@dataclass(frozen=True, kw_only=True)
class Scope:
    by_status: dict[str, int]
    windows: dict[str, Window]


def window(
    span: timedelta, *, submitted: int, completed: int, failed: int, cancelled: int
) -> Window:
    decided = completed + failed
    return Window(
        submitted=submitted,
        completed=completed,
        failed=failed,
        cancelled=cancelled,
        processing_rate_per_hour=round(completed / (span.total_seconds() / 3600), 4),
        failure_rate=round(failed / decided, 4) if decided else None,
    )


async def admin_stats(session: AsyncSession, now: datetime) -> tuple[Scope, dict[str, Scope]]:
    """Everyone's jobs, then the same per service (keyed by slug)."""
    slugs = {sid: slug for sid, slug in await session.execute(select(Service.id, Service.slug))}
    statuses = await session.execute(
        select(Job.service_id, Job.status, func.count())
        .where(Job.service_id.is_not(None))  # a federated job's parent: its children count
        .group_by(Job.service_id, Job.status)
    )
    by_service: dict[str, dict[str, int]] = {}
    overall = {s.value: 0 for s in JobStatus}
    for service_id, status, n in statuses:
        slug = slugs.get(service_id or "", "unknown")
        by_service.setdefault(slug, {s.value: 0 for s in JobStatus})[status] = int(n)
        overall[status] = overall.get(status, 0) + int(n)

    windows: dict[str, dict[str, Window]] = {}
    for name, span in WINDOWS.items():
        since = now - span
        created = await session.execute(
            select(Job.service_id, func.count())
            .where(Job.created_at >= since, Job.service_id.is_not(None))
            .group_by(Job.service_id)
        )
        finished = await session.execute(
            select(Job.service_id, Job.status, func.count())
            .where(
                Job.completed_at >= since,
                Job.completed_at.is_not(None),
                Job.service_id.is_not(None),
            )
            .group_by(Job.service_id, Job.status)
        )
        tallies: dict[str, dict[str, int]] = {}
        for service_id, n in created:
            tallies.setdefault(slugs.get(service_id or "", "unknown"), {})["submitted"] = int(n)
        for service_id, status, n in finished:
            slug = slugs.get(service_id or "", "unknown")
            tallies.setdefault(slug, {})[status] = tallies.get(slug, {}).get(status, 0) + int(n)
        total: dict[str, int] = {}
        for tally in tallies.values():
            for key, n in tally.items():
                total[key] = total.get(key, 0) + n
        windows.setdefault("", {})[name] = _window_of(span, total)
        for slug in set(by_service) | set(tallies):
            windows.setdefault(slug, {})[name] = _window_of(span, tallies.get(slug, {}))

    everyone = Scope(by_status=overall, windows=windows[""])
    per_service = {
        slug: Scope(
            by_status=by_service.get(slug, {s.value: 0 for s in JobStatus}),
            windows=windows[slug],
        )
        for slug in sorted(set(by_service) | (set(windows) - {""}))
    }
    return everyone, per_service


def _window_of(span: timedelta, tally: dict[str, int]) -> Window:
    return window(
        span,
        submitted=tally.get("submitted", 0),
        completed=tally.get(JobStatus.COMPLETED.value, 0),
        failed=tally.get(JobStatus.FAILED.value, 0),
        cancelled=tally.get(JobStatus.CANCELLED.value, 0),
    )
