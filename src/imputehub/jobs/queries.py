"""Reading jobs: one job, pages of jobs, their history and their results.

Users see only their own jobs; another user's job is "not found", never "forbidden", so
its existence stays private. Admins see every job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Row, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from imputehub.accounts.users import is_admin, require_admin
from imputehub.db.models import (
    Job,
    JobInput,
    JobStatusUpdate,
    ReferencePanel,
    Service,
    StoredFile,
    User,
)
from imputehub.db.session import lock_row
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.domain.jobs import ACTIVE, JobMode, JobStatus, Step
from imputehub.domain.slots import SlotWait
from imputehub.jobs import slots

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_QUERY = 200


async def get_job(
    session: AsyncSession, user: User, job_id: str, *, for_update: bool = False
) -> Job:
    """The job, if `user` may see it; `for_update` holds its row until commit.

    (A worker may be changing the job right now: a cancel must decide on what is
    committed, not on a stale read.)
    """
    if for_update:
        await lock_row(session, Job, job_id)
    job = await session.scalar(select(Job).where(Job.id == job_id))
    if job is None or (job.user_id != user.id and not is_admin(user)):
        raise NotFound(f"job {job_id} not found")
    return job


def _visible_to(user: User) -> list[ColumnElement[bool]]:
    return [] if is_admin(user) else [Job.user_id == user.id]


async def job_with_inputs(session: AsyncSession, user: User, job_id: str) -> Job:
    """The job with its input files and its service, in one query (what GET /jobs/{id}
    shows); `slot_wait` then finds the service in the session without asking again."""
    result = await session.execute(
        select(Job, Service)
        .outerjoin(Service, Service.id == Job.service_id)
        .where(Job.id == job_id, *_visible_to(user))
        .options(joinedload(Job.inputs).joinedload(JobInput.file))
    )
    row = result.unique().first()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    job: Job = row[0]
    return job


async def job_progress(
    session: AsyncSession, user: User, job_id: str
) -> Row[str, str, float, datetime]:
    """The job's id, status, progress and last change: one narrow row, no ORM object (a
    client polls this). On the session's connection: Core, without the ORM's result
    machinery, which was a sixth of a read's time."""
    connection = await session.connection()
    row = (
        await connection.execute(
            select(Job.id, Job.status, Job.progress, Job.updated_at).where(
                Job.id == job_id, *_visible_to(user)
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return row


async def slot_wait(session: AsyncSession, job: Job) -> SlotWait | None:
    """Where `job` stands in line for a slot at its service, while it waits in the hub."""
    if job.service_id is None:  # a federated job's parent: its children wait, if any
        return None
    if job.submit_started_at is not None or job.next_step != Step.SUBMIT.value:
        return None  # past the line already (slots.describe says the same, with a query)
    service = await session.get(Service, job.service_id)
    return None if service is None else await slots.describe(session, job, service)


@dataclass(frozen=True, kw_only=True)
class JobFilters:
    status: JobStatus | None = None
    service: str | None = None  # id or slug
    mode: JobMode | None = None
    q: str | None = None  # case-insensitive substring of the name
    all_users: bool = False  # admins only
    # Federated jobs: a list shows them, not their children, unless it asks for one
    # parent's children, for every job (`with_children`), or for a service's jobs.
    parent_id: str | None = None
    with_children: bool = False


@dataclass(frozen=True, kw_only=True)
class JobPage:
    items: Sequence[Job]
    total: int
    limit: int
    offset: int


def _conditions(user: User, filters: JobFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.all_users:
        require_admin(user)
    else:
        conditions.append(Job.user_id == user.id)
    if filters.status is not None:
        conditions.append(Job.status == filters.status.value)
    if filters.mode is not None:
        conditions.append(Job.mode == filters.mode.value)
    if filters.parent_id is not None:
        conditions.append(Job.parent_id == filters.parent_id)
    elif not filters.with_children and not filters.service:
        conditions.append(Job.parent_id.is_(None))
    if filters.service:
        ids = select(Service.id).where(
            or_(Service.id == filters.service, Service.slug == filters.service)
        )
        conditions.append(Job.service_id.in_(ids))
    if filters.q:
        if len(filters.q) > MAX_QUERY:
            raise InvalidInput(f"q is longer than {MAX_QUERY} characters", field="q")
        conditions.append(func.lower(Job.name).contains(filters.q.lower(), autoescape=True))
    return conditions


async def list_jobs(
    session: AsyncSession,
    user: User,
    *,
    filters: JobFilters,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> JobPage:
    """A page of jobs, newest first: the caller's own, or everyone's for an admin who asks."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    conditions = _conditions(user, filters)
    total = int(await session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0)
    rows = await session.scalars(
        select(Job)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return JobPage(items=list(rows), total=total, limit=limit, offset=offset)


async def status_updates(
    session: AsyncSession, user: User, job_id: str
) -> Sequence[JobStatusUpdate]:
    """The job's status history, oldest first."""
    job = await get_job(session, user, job_id)
    rows = await session.scalars(
        select(JobStatusUpdate)
        .where(JobStatusUpdate.job_id == job.id)
        .order_by(JobStatusUpdate.created_at, JobStatusUpdate.id)
    )
    return list(rows)


async def result_files(session: AsyncSession, user: User, job_id: str) -> Sequence[StoredFile]:
    """The files the worker fetched for the job, by name."""
    job = await get_job(session, user, job_id)
    rows = await session.scalars(
        select(StoredFile)
        .where(StoredFile.job_id == job.id, StoredFile.kind == "result")
        .order_by(StoredFile.filename, StoredFile.id)
    )
    return list(rows)


async def active_jobs(
    session: AsyncSession, user: User, *, limit: int = DEFAULT_LIMIT
) -> Sequence[Job]:
    """The caller's own jobs that have not ended yet, newest first (a federated job as
    itself, not its children)."""
    rows = await session.scalars(
        select(Job)
        .where(
            Job.user_id == user.id,
            Job.status.in_([s.value for s in ACTIVE]),
            Job.parent_id.is_(None),
        )
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return list(rows)


async def recent_results(session: AsyncSession, user: User, *, limit: int = 5) -> Sequence[Job]:
    """The caller's own completed jobs, the most recently finished first (a federated job
    as itself, not its children)."""
    rows = await session.scalars(
        select(Job)
        .where(
            Job.user_id == user.id,
            Job.status == JobStatus.COMPLETED.value,
            Job.parent_id.is_(None),
        )
        .order_by(Job.completed_at.desc().nulls_last(), Job.id.desc())
        .limit(limit)
    )
    return list(rows)


async def job_names(session: AsyncSession, user: User, job_ids: Sequence[str]) -> dict[str, str]:
    """The names of those of `job_ids` that `user` may see, by id."""
    query = select(Job.id, Job.name).where(Job.id.in_(list(job_ids)))
    if not is_admin(user):
        query = query.where(Job.user_id == user.id)
    return {row.id: row.name for row in await session.execute(query)}


async def service_and_panel(
    session: AsyncSession, job: Job
) -> tuple[Service | None, ReferencePanel | None]:
    """The service and panel a job went to, whatever their state now (a job keeps naming
    a service an admin has since deactivated)."""
    service = await session.get(Service, job.service_id)
    panel = await session.get(ReferencePanel, job.reference_panel_id)
    return service, panel


async def services_used(session: AsyncSession, user: User) -> list[Service]:
    """The services the user's jobs went to, by name: what their jobs can be filtered by."""
    used = select(Job.service_id).where(Job.user_id == user.id)
    query = select(Service).where(Service.id.in_(used)).order_by(Service.name, Service.slug)
    return list(await session.scalars(query))
