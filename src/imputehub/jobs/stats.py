"""Job statistics: counts by status, success rate and mean run time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.db.models import Job, User
from imputehub.domain.jobs import ACTIVE, JobStatus


@dataclass(frozen=True, kw_only=True)
class JobStats:
    by_status: dict[str, int]
    total: int
    active: int
    completed: int
    failed: int
    cancelled: int
    # completed / (completed + failed); cancelled jobs say nothing about success. None
    # until a job has finished either way.
    success_rate: float | None
    mean_execution_time_seconds: float | None


def summarise(counts: Mapping[str, int], mean_execution_time: float | None) -> JobStats:
    """Stats from per-status counts (statuses missing from `counts` count zero)."""
    by_status = {status.value: int(counts.get(status.value, 0)) for status in JobStatus}
    completed = by_status[JobStatus.COMPLETED.value]
    failed = by_status[JobStatus.FAILED.value]
    decided = completed + failed
    return JobStats(
        by_status=by_status,
        total=sum(by_status.values()),
        active=sum(by_status[status.value] for status in ACTIVE),
        completed=completed,
        failed=failed,
        cancelled=by_status[JobStatus.CANCELLED.value],
        success_rate=round(completed / decided, 4) if decided else None,
        mean_execution_time_seconds=(
            None if mean_execution_time is None else round(float(mean_execution_time), 3)
        ),
    )


def _duration_seconds(dialect: str) -> ColumnElement[float]:
    if dialect == "sqlite":
        # SQLite keeps times as text; julianday() turns them into (fractional) days.
        return (func.julianday(Job.completed_at) - func.julianday(Job.started_at)) * 86400.0
    return cast(func.extract("epoch", Job.completed_at - Job.started_at), Float)


async def job_stats(session: AsyncSession, user: User, *, all_users: bool = False) -> JobStats:
    """The caller's own job stats; with `all_users` (admins only) everyone's."""
    # Jobs that run at a service: a federated job's parent is counted through its children.
    scope: list[ColumnElement[bool]] = [Job.service_id.is_not(None)]
    if all_users:
        require_admin(user)
    else:
        scope.append(Job.user_id == user.id)
    rows = await session.execute(
        select(Job.status, func.count()).where(*scope).group_by(Job.status)
    )
    counts = {str(status): int(count) for status, count in rows}
    duration = _duration_seconds(session.get_bind().dialect.name)
    mean = await session.scalar(
        select(func.avg(duration)).where(
            *scope,
            Job.status == JobStatus.COMPLETED.value,
            Job.started_at.is_not(None),
            Job.completed_at.is_not(None),
        )
    )
    return summarise(counts, None if mean is None else float(mean))
