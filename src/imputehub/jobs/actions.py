"""What a user does to an existing job: cancel it, delete it, retry it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, JobStatusUpdate, StoredFile, User
from imputehub.domain.errors import Conflict, InvalidTransition
from imputehub.domain.jobs import JobStatus, is_terminal
from imputehub.jobs import lifecycle
from imputehub.jobs.create import JobRequest, create_job
from imputehub.jobs.queries import get_job
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


def request_cancel(session: AsyncSession, job: Job, *, now: datetime) -> Job:
    """Cancel at once what no service has seen; otherwise hand the cancel to the worker.

    Raises InvalidTransition for a finished job; a job already cancelling is left as it is.
    """
    status = JobStatus(job.status)
    if status == JobStatus.CANCELLING:
        return job
    if is_terminal(status):
        raise InvalidTransition(
            f"job {job.id} is already {status.value}; only active jobs can be cancelled",
            current=status.value,
            target=JobStatus.CANCELLED.value,
        )
    never_submitted = (
        status == JobStatus.PENDING
        and job.submit_started_at is None
        and job.external_job_id is None
    )
    if never_submitted:
        lifecycle.set_status(
            session, job, JobStatus.CANCELLED, now=now, message="cancelled by user"
        )
    else:
        lifecycle.set_status(
            session,
            job,
            JobStatus.CANCELLING,
            now=now,
            message="cancel requested by user; telling the service",
        )
        # The cancel step supersedes whatever step a worker holds the job for: dropping
        # the lease makes that worker discard its outcome instead of overwriting this.
        job.lease_owner = None
        job.lease_expires_at = None
    log.info(
        "job cancel requested",
        extra={"action": "job_cancel_requested", "job_id": job.id, "status": job.status},
    )
    return job


async def cancel_job(session: AsyncSession, user: User, job_id: str, *, now: datetime) -> Job:
    job = await get_job(session, user, job_id, for_update=True)
    return request_cancel(session, job, now=now)


async def delete_job(runtime: Runtime, user: User, job_id: str, *, now: datetime) -> Job | None:
    """Cancel an active job (returned); delete a finished one with its results (None)."""
    async with runtime.db.session() as session:
        job = await get_job(session, user, job_id, for_update=True)
        if not is_terminal(JobStatus(job.status)):
            return request_cancel(session, job, now=now)
        keys = list(
            await session.scalars(select(StoredFile.storage_key).where(StoredFile.job_id == job.id))
        )
        await session.execute(delete(StoredFile).where(StoredFile.job_id == job.id))
        await session.execute(delete(JobStatusUpdate).where(JobStatusUpdate.job_id == job.id))
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
    session: AsyncSession, user: User, job_id: str, *, now: datetime, max_active_jobs: int
) -> Job:
    """A new pending job with a failed or cancelled job's parameters and inputs."""
    original = await get_job(session, user, job_id)
    status = JobStatus(original.status)
    if status not in RETRYABLE:
        raise InvalidTransition(
            f"only failed or cancelled jobs can be retried; job {job_id} is {status.value}",
            current=status.value,
        )
    if not original.inputs:
        raise Conflict(
            f"the input files of job {job_id} have been deleted; upload them again "
            "and create a new job"
        )
    request = JobRequest(
        name=original.name,
        description=original.description,
        service=original.service_id,
        reference_panel=original.reference_panel_id,
        input_file_ids=tuple(item.file_id for item in original.inputs),
        build=original.build,
        phasing=original.phasing,
        population=original.population,
        mode=original.mode,
        r2_filter=original.r2_filter,
    )
    return await create_job(
        session,
        owner_id=original.user_id,
        request=request,
        now=now,
        max_active_jobs=max_active_jobs,
        retry_of=original.id,
    )
