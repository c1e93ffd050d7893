"""What a user does to an existing job: cancel it, delete it, retry it, run it again as
QC only; and cancel or delete several at once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, JobStatusUpdate, StoredFile, User
from imputehub.domain.errors import Conflict, ImputehubError, InvalidInput, InvalidTransition
from imputehub.domain.jobs import JobMode, JobStatus, is_terminal
from imputehub.jobs import create, federated
from imputehub.jobs.create import create_job
from imputehub.jobs.lifecycle import request_cancel
from imputehub.jobs.queries import get_job, job_names
from imputehub.monitoring import audit
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


async def cancel_job(
    session: AsyncSession,
    user: User,
    job_id: str,
    *,
    now: datetime,
    origin: audit.Origin | None = None,
) -> Job:
    """Cancel the job (a federated job: its active children); an admin cancelling someone
    else's job leaves an audit entry."""
    job = await get_job(session, user, job_id, for_update=True)
    await _cancel(session, job, now=now)
    if job.user_id != user.id:
        await audit.record(
            session,
            action="job_cancelled_by_admin",
            actor=user,
            now=now,
            target_type="job",
            target_id=job.id,
            origin=origin,
            details={"owner_id": job.user_id},
        )
    return job


async def _cancel(session: AsyncSession, job: Job, *, now: datetime) -> Job:
    if federated.is_parent(job):
        return await federated.cancel(session, job, now=now)
    return request_cancel(session, job, now=now)


def _not_a_child(job: Job, doing: str) -> None:
    if job.parent_id is not None:
        raise Conflict(
            f"job {job.id} is one target of federated job {job.parent_id}; {doing} that job "
            "instead (its children go with it)"
        )


async def delete_job(
    runtime: Runtime,
    user: User,
    job_id: str,
    *,
    now: datetime,
    origin: audit.Origin | None = None,
) -> Job | None:
    """Cancel an active job (returned); delete a finished one with its results (None).
    An admin doing either to someone else's job leaves an audit entry."""
    async with runtime.db.session() as session:
        job = await get_job(session, user, job_id, for_update=True)
        if is_terminal(JobStatus(job.status)):
            _not_a_child(job, "delete")
        if job.user_id != user.id:
            active = not is_terminal(JobStatus(job.status))
            await audit.record(
                session,
                action="job_cancelled_by_admin" if active else "job_deleted_by_admin",
                actor=user,
                now=now,
                target_type="job",
                target_id=job.id,
                origin=origin,
                details={"owner_id": job.user_id},
            )
        if not is_terminal(JobStatus(job.status)):
            return await _cancel(session, job, now=now)
        children = [child.id for child in await federated.children_of(session, job.id)]
        ids = [*children, job.id]
        keys = list(
            await session.scalars(select(StoredFile.storage_key).where(StoredFile.job_id.in_(ids)))
        )
        await session.execute(delete(StoredFile).where(StoredFile.job_id.in_(ids)))
        await session.execute(delete(JobStatusUpdate).where(JobStatusUpdate.job_id.in_(ids)))
        await session.execute(delete(Job).where(Job.id.in_(children)))
        await session.delete(job)
    # Bytes go only once the rows are gone for good: never a row without its bytes.
    for key in keys:
        try:
            await runtime.storage.delete(key)
        except Exception:
            log.exception(
                "could not remove a result file",
                extra={"action": "result_delete_failed", "job_id": job_id, "storage_key": key},
            )
    log.info("job deleted", extra={"action": "job_deleted", "job_id": job_id})
    return None


async def retry_job(
    session: AsyncSession,
    user: User,
    job_id: str,
    *,
    now: datetime,
    max_active_jobs: int,
    origin: audit.Origin | None = None,
) -> Job:
    """A new pending job with a failed or cancelled job's parameters and inputs, for its
    owner; an admin retrying someone else's job leaves an audit entry naming both jobs.

    A federated job retries its failed and cancelled children and is returned itself; a
    retried child's new job takes its place in its parent."""
    original = await get_job(session, user, job_id)
    if federated.is_parent(original):
        return await federated.retry(
            session, user, original, now=now, max_active_jobs=max_active_jobs, origin=origin
        )
    status = JobStatus(original.status)
    if status not in RETRYABLE:
        raise InvalidTransition(
            f"only failed or cancelled jobs can be retried; job {job_id} is {status.value}",
            current=status.value,
        )
    if original.parent_id is not None:
        job = await federated.retry_child(
            session, original, now=now, max_active_jobs=max_active_jobs
        )
    else:
        job = await create_job(
            session,
            owner_id=original.user_id,
            request=create.request_like(original, mode=original.mode),
            now=now,
            max_active_jobs=max_active_jobs,
            retry_of=original.id,
        )
    if original.user_id != user.id:
        await audit.record(
            session,
            action="job_retried_by_admin",
            actor=user,
            now=now,
            target_type="job",
            target_id=original.id,
            origin=origin,
            details={"owner_id": original.user_id, "new_job_id": job.id},
        )
    return job


async def rerun_as_qc_only(
    session: AsyncSession, user: User, job_id: str, *, now: datetime, max_active_jobs: int
) -> Job:
    """A new pending quality-control-only job with a finished job's settings and inputs:
    its QC report shows what the service makes of the data, without imputing it."""
    original = await get_job(session, user, job_id)
    if federated.is_parent(original):
        raise Conflict(f"job {job_id} is a federated job; run one of its targets again as QC only")
    status = JobStatus(original.status)
    if not is_terminal(status):
        raise InvalidTransition(
            f"job {job_id} is still {status.value}; run it again once it has ended",
            current=status.value,
        )
    return await create_job(
        session,
        owner_id=original.user_id,
        request=create.request_like(original, mode=JobMode.QC_ONLY.value),
        now=now,
        max_active_jobs=max_active_jobs,
    )


# --- several jobs at once -------------------------------------------------------------------

MAX_BULK = 100


class BulkAction(StrEnum):
    CANCEL = "cancel"
    DELETE = "delete"


@dataclass(frozen=True, kw_only=True)
class BulkOutcome:
    """What happened to one job of a bulk action, in words for its owner."""

    job_id: str
    name: str | None  # None: not found (or not the caller's)
    done: bool
    message: str


async def act_on_jobs(
    runtime: Runtime,
    user: User,
    job_ids: Sequence[str],
    *,
    action: BulkAction,
    now: datetime,
    origin: audit.Origin | None = None,
) -> list[BulkOutcome]:
    """Cancel or delete each job in a transaction of its own: one refusal (a finished job
    cannot be cancelled) does not undo the others, and each gets its own outcome."""
    unique = list(dict.fromkeys(job_ids))
    if not unique:
        raise InvalidInput("choose at least one job", field="job_id")
    if len(unique) > MAX_BULK:
        raise InvalidInput(f"choose at most {MAX_BULK} jobs at once", field="job_id")
    async with runtime.db.session() as session:
        names = await job_names(session, user, unique)
    outcomes = [
        await _act_on_one(runtime, user, job_id, names.get(job_id), action, now, origin)
        for job_id in unique
    ]
    if action is BulkAction.CANCEL and any(o.done for o in outcomes):
        runtime.wake_workers()  # committed: the worker tells the services
    return outcomes


async def _act_on_one(
    runtime: Runtime,
    user: User,
    job_id: str,
    name: str | None,
    action: BulkAction,
    now: datetime,
    origin: audit.Origin | None,
) -> BulkOutcome:
    try:
        if action is BulkAction.CANCEL:
            async with runtime.db.session() as session:
                job = await cancel_job(session, user, job_id, now=now, origin=origin)
            message = "cancelled" if job.status == JobStatus.CANCELLED else "cancelling"
        else:
            active = await delete_job(runtime, user, job_id, now=now, origin=origin)
            message = "deleted" if active is None else "still active: cancelling it instead"
    except ImputehubError as exc:
        return BulkOutcome(job_id=job_id, name=name, done=False, message=exc.message)
    return BulkOutcome(job_id=job_id, name=name, done=True, message=message)
