"""The console's stats over a window of days: jobs per day by what happened to them, per
service throughput, failure rate and median time to results, and the queue now.

Portable SQL only (SQLite and PostgreSQL): counts are grouped in SQL; day buckets and medians
are computed here over bounded rows (at most MAX_ROWS per query, `capped` says when the
bound was reached).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.db.models import Job, Service, User
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import ACTIVE, JobStatus

PERIODS = (7, 30, 90)
MAX_ROWS = 50_000
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
_ACTIVE = tuple(sorted(status.value for status in ACTIVE))
# The order active statuses are shown in: along the life cycle.
ACTIVE_ORDER = ("pending", "queued", "running", "cancelling")


@dataclass(frozen=True, kw_only=True)
class Day:
    day: date
    submitted: int
    completed: int
    failed: int
    cancelled: int


@dataclass(frozen=True, kw_only=True)
class ServiceFigures:
    slug: str
    name: str
    completed: int
    failed: int
    cancelled: int
    # failed / (completed + failed): cancelled jobs say nothing about the service. None
    # while nothing finished either way.
    failure_rate: float | None
    # created -> completed of the window's completed jobs; None without any.
    median_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class Oldest:
    """The job that has waited longest without being handed to a service or finishing."""

    job_id: str
    name: str
    status: str
    service_name: str
    created_at: datetime
    age_seconds: float


@dataclass(frozen=True, kw_only=True)
class ConsoleStats:
    days: int
    since: datetime
    daily: list[Day]
    services: list[ServiceFigures]
    active_by_status: dict[str, int]
    oldest_waiting: Oldest | None
    capped: bool  # a query reached MAX_ROWS: day buckets and medians cover part of the window


def failure_rate(completed: int, failed: int) -> float | None:
    decided = completed + failed
    return failed / decided if decided else None


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


async def console_stats(
    session: AsyncSession, admin: User, *, now: datetime, days: int
) -> ConsoleStats:
    """The figures of the stats page over the last `days` days (7, 30 or 90)."""
    require_admin(admin)
    if days not in PERIODS:
        choices = ", ".join(str(p) for p in PERIODS)
        raise InvalidInput(f"days must be one of {choices}", field="days")
    first = day_of(now) - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    capped = False

    created = list(
        await session.scalars(
            select(Job.created_at)
            .where(Job.created_at >= since, Job.service_id.is_not(None))
            .limit(MAX_ROWS)
        )
    )
    capped |= len(created) == MAX_ROWS
    ended_rows = (
        await session.execute(
            select(Job.service_id, Job.status, Job.created_at, Job.completed_at)
            .where(
                Job.completed_at >= since,
                Job.status.in_([status.value for status in ENDED]),
                Job.service_id.is_not(None),  # a federated job's parent: its children count
            )
            .limit(MAX_ROWS)
        )
    ).all()
    capped |= len(ended_rows) == MAX_ROWS

    submitted_per_day = Counter(day_of(moment) for moment in created)
    ended_per_day: Counter[tuple[date, str]] = Counter()
    durations: dict[str, list[float]] = {}
    for service_id, status, created_at, completed_at in ended_rows:
        if completed_at is None or service_id is None:  # excluded by the query
            continue
        ended_per_day[(day_of(completed_at), status)] += 1
        if status == JobStatus.COMPLETED.value:
            seconds = (completed_at - created_at).total_seconds()
            durations.setdefault(service_id, []).append(max(0.0, seconds))
    daily = [
        Day(
            day=day,
            submitted=submitted_per_day[day],
            completed=ended_per_day[(day, JobStatus.COMPLETED.value)],
            failed=ended_per_day[(day, JobStatus.FAILED.value)],
            cancelled=ended_per_day[(day, JobStatus.CANCELLED.value)],
        )
        for day in (first + timedelta(days=n) for n in range(days))
    ]

    # Exact counts per service come from SQL, not from the bounded rows.
    counted = await session.execute(
        select(Job.service_id, Job.status, func.count())
        .where(
            Job.completed_at >= since,
            Job.status.in_([status.value for status in ENDED]),
            Job.service_id.is_not(None),
        )
        .group_by(Job.service_id, Job.status)
    )
    tallies: dict[str, Counter[str]] = {}
    for service_id, status, count in counted.all():
        if service_id is None:  # excluded by the query; says so to the type checker
            continue
        tallies.setdefault(service_id, Counter())[status] += int(count)
    services = await _services(session, set(tallies) | set(durations))
    figures = []
    for service_id, (slug, name) in sorted(services.items(), key=lambda item: item[1][1]):
        tally = tallies.get(service_id, Counter())
        completed = tally[JobStatus.COMPLETED.value]
        failed = tally[JobStatus.FAILED.value]
        times = durations.get(service_id)
        figures.append(
            ServiceFigures(
                slug=slug,
                name=name,
                completed=completed,
                failed=failed,
                cancelled=tally[JobStatus.CANCELLED.value],
                failure_rate=failure_rate(completed, failed),
                median_seconds=statistics.median(times) if times else None,
            )
        )

    return ConsoleStats(
        days=days,
        since=since,
        daily=daily,
        services=figures,
        active_by_status=await _active_by_status(session),
        oldest_waiting=await _oldest_waiting(session, now),
        capped=capped,
    )


async def _services(session: AsyncSession, ids: set[str]) -> dict[str, tuple[str, str]]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Service.id, Service.slug, Service.name).where(Service.id.in_(sorted(ids)))
    )
    return {service_id: (slug, name) for service_id, slug, name in rows.all()}


async def _active_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Job.status, func.count())
        .where(Job.status.in_(_ACTIVE), Job.service_id.is_not(None))
        .group_by(Job.status)
    )
    counts = {str(status): int(count) for status, count in rows.all()}
    return {status: counts.get(status, 0) for status in ACTIVE_ORDER}


async def _oldest_waiting(session: AsyncSession, now: datetime) -> Oldest | None:
    """The oldest pending or queued job: submitted by its owner, not yet running."""
    row = (
        await session.execute(
            select(Job.id, Job.name, Job.status, Job.created_at, Service.name)
            .join(Service, Service.id == Job.service_id)
            .where(Job.status.in_([JobStatus.PENDING.value, JobStatus.QUEUED.value]))
            .order_by(Job.created_at.asc(), Job.id.asc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    job_id, name, status, created_at, service_name = row
    return Oldest(
        job_id=job_id,
        name=name,
        status=status,
        service_name=service_name,
        created_at=created_at,
        age_seconds=max(0.0, (now - created_at).total_seconds()),
    )
