"""The admins' view of the queue: every user's active jobs (or failed and cancelled ones, to
retry), with owner, service, panel and the job's last message; how many jobs wait in the
hub per service; and an admin's retry of someone else's job, audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.db.models import Job, JobStatusUpdate, ReferencePanel, Service, User
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import ACTIVE, TERMINAL, JobStatus, Step
from imputehub.jobs import actions
from imputehub.monitoring import audit

MAX_LIMIT = 100
MAX_REF = 100  # a service's id or slug, a username
# Statuses the queue lists: the active ones, and the two an admin may retry.
LISTED = frozenset(ACTIVE | actions.RETRYABLE)
_ACTIVE = tuple(sorted(status.value for status in ACTIVE))
_TERMINAL = tuple(status.value for status in TERMINAL)


@dataclass(frozen=True, kw_only=True)
class QueueFilters:
    status: JobStatus | None = None  # None: every active status
    service: str | None = None  # id or slug
    owner: str | None = None  # username


@dataclass(frozen=True, kw_only=True)
class QueueRow:
    job: Job
    owner: str
    service_name: str
    service_slug: str
    panel_name: str
    message: str  # the job's last status message ("" when it has none)


@dataclass(frozen=True, kw_only=True)
class QueuePage:
    rows: Sequence[QueueRow]
    total: int
    limit: int
    offset: int


def _conditions(filters: QueueFilters) -> list[ColumnElement[bool]]:
    if filters.status is not None and filters.status not in LISTED:
        raise InvalidInput(
            "the queue lists active jobs, and failed or cancelled ones to retry; "
            f"{filters.status.value} jobs are on the Jobs pages",
            field="status",
        )
    for name, value in (("service", filters.service), ("owner", filters.owner)):
        if value is not None and len(value) > MAX_REF:
            raise InvalidInput(f"{name} is longer than {MAX_REF} characters", field=name)
    conditions: list[ColumnElement[bool]] = [
        Job.status.in_(_ACTIVE) if filters.status is None else Job.status == filters.status.value
    ]
    if filters.service:
        conditions.append(or_(Service.id == filters.service, Service.slug == filters.service))
    if filters.owner:
        conditions.append(func.lower(User.username) == filters.owner.lower())
    return conditions


async def list_queue(
    session: AsyncSession,
    admin: User,
    *,
    filters: QueueFilters,
    limit: int = 25,
    offset: int = 0,
) -> QueuePage:
    """One page of everyone's jobs in the queue: active ones oldest first (the head of the
    queue on top); failed or cancelled ones most recently ended first."""
    require_admin(admin)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    conditions = _conditions(filters)
    joined = (
        select(Job, User.username, Service.name, Service.slug, ReferencePanel.display_name)
        .join(User, User.id == Job.user_id)
        .join(Service, Service.id == Job.service_id)
        .outerjoin(ReferencePanel, ReferencePanel.id == Job.reference_panel_id)
        .where(*conditions)
    )
    total = int(
        await session.scalar(
            select(func.count())
            .select_from(Job)
            .join(User, User.id == Job.user_id)
            .join(Service, Service.id == Job.service_id)
            .where(*conditions)
        )
        or 0
    )
    if filters.status is not None and filters.status in TERMINAL:
        joined = joined.order_by(Job.completed_at.desc().nulls_last(), Job.id.desc())
    else:
        joined = joined.order_by(Job.created_at.asc(), Job.id.asc())
    rows = (await session.execute(joined.limit(limit).offset(offset))).all()
    messages = await last_messages(session, [row[0].id for row in rows])
    return QueuePage(
        rows=[
            QueueRow(
                job=job,
                owner=username,
                service_name=service_name,
                service_slug=slug,
                panel_name=panel_name or "",
                message=messages.get(job.id, ""),
            )
            for job, username, service_name, slug, panel_name in rows
        ],
        total=total,
        limit=limit,
        offset=offset,
    )


async def last_messages(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, str]:
    """Each job's latest non-empty status message, by job id (progress-only updates carry
    no message, so the latest words said about the job are kept)."""
    if not job_ids:
        return {}
    latest = (
        select(func.max(JobStatusUpdate.id))
        .where(JobStatusUpdate.job_id.in_(list(job_ids)), JobStatusUpdate.message != "")
        .group_by(JobStatusUpdate.job_id)
    )
    rows = await session.execute(
        select(JobStatusUpdate.job_id, JobStatusUpdate.message).where(
            JobStatusUpdate.id.in_(latest)
        )
    )
    return {job_id: message for job_id, message in rows.all()}


async def waiting_in_hub(session: AsyncSession) -> dict[str, int]:
    """Per service id, the active jobs not yet handed to the service: held by a pause or
    maintenance, or waiting for a slot."""
    rows = await session.execute(
        select(Job.service_id, func.count())
        .where(
            Job.status.not_in(_TERMINAL),
            Job.submit_started_at.is_(None),
            Job.next_step == Step.SUBMIT.value,
        )
        .group_by(Job.service_id)
    )
    return {service_id: int(count) for service_id, count in rows.all() if service_id}


async def retry_as_admin(
    session: AsyncSession,
    admin: User,
    job_id: str,
    *,
    now: datetime,
    max_active_jobs: int,
    origin: audit.Origin | None = None,
) -> Job:
    """An admin's retry of a failed or cancelled job: a new job for its owner (audited by
    actions.retry_job when the job is someone else's)."""
    require_admin(admin)
    return await actions.retry_job(
        session, admin, job_id, now=now, max_active_jobs=max_active_jobs, origin=origin
    )
