"""Moving a job between states: the one code path that changes `Job.status`.

Each change is checked by the domain rules, stamps the job's times, schedules the
worker's next step and writes a status-update row and, for the states users hear of, an
event (notify/outbox.py), all in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, JobStatusUpdate
from imputehub.domain import jobs as rules
from imputehub.domain.errors import InvalidTransition
from imputehub.domain.jobs import JobStatus, Step
from imputehub.notify import outbox

log = logging.getLogger(__name__)

MAX_ERROR_LOG = 100


def set_status(
    session: AsyncSession,
    job: Job,
    target: JobStatus,
    *,
    now: datetime,
    message: str = "",
    progress: float | None = None,
) -> None:
    """Move `job` to `target` (raises InvalidTransition) and record the change.

    A call that changes neither status nor progress nor message writes nothing.
    """
    rules.transition(JobStatus(job.status), target)
    _record(session, job, target, now=now, message=message, progress=progress)


def follow_children(
    session: AsyncSession,
    parent: Job,
    target: JobStatus,
    *,
    now: datetime,
    message: str = "",
    progress: float | None = None,
) -> None:
    """Record a federated job's parent's status, derived from its children's
    (domain/federation.py) rather than moved step by step: unchecked, so a parent whose
    children all ended between two looks goes from pending to completed, and a retried
    child reopens an ended parent. A parent's next step is always to look at its
    children again (jobs/federated.follow may put it later, or make it the comparison)."""
    _record(
        session,
        parent,
        target,
        now=now,
        message=message,
        progress=progress,
        step_for=lambda _status: Step.FOLLOW,
    )


def _record(
    session: AsyncSession,
    job: Job,
    target: JobStatus,
    *,
    now: datetime,
    message: str,
    progress: float | None,
    step_for: Callable[[JobStatus], Step | None] = rules.step_for,
) -> None:
    current = JobStatus(job.status)
    new_progress = rules.progress_for(target, job.progress if progress is None else progress)
    if target == current and new_progress == job.progress and not message:
        return
    job.status = target.value
    job.progress = new_progress
    job.updated_at = now
    if target == JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if rules.is_terminal(target):
        job.completed_at = now
        job.next_step = None
        job.next_run_at = None
        job.lease_owner = None
        job.lease_expires_at = None
    elif target != current:
        if rules.is_terminal(current):  # a reopened parent
            job.completed_at = None
        step = step_for(target)
        job.next_step = step.value if step else None
        job.next_run_at = now
        job.attempts = 0
    session.add(
        JobStatusUpdate(
            job_id=job.id,
            status=target.value,
            progress=new_progress,
            message=message,
            created_at=now,
        )
    )
    if target != current:
        outbox.job_changed(session, job, target, now=now, message=message)


def request_cancel(session: AsyncSession, job: Job, *, now: datetime) -> Job:
    """Cancel at once what no service has seen; otherwise hand the cancel to the worker.

    Raises InvalidTransition for a finished job; a job already cancelling is left as it is.
    A federated job's parent becomes cancelling and goes on following its children, whose
    cancels are the caller's (jobs/federated.cancel).
    """
    status = JobStatus(job.status)
    if status == JobStatus.CANCELLING:
        return job
    if rules.is_terminal(status):
        raise InvalidTransition(
            f"job {job.id} is already {status.value}; only active jobs can be cancelled",
            current=status.value,
            target=JobStatus.CANCELLED.value,
        )
    if job.service_id is None:
        follow_children(
            session,
            job,
            JobStatus.CANCELLING,
            now=now,
            message="cancel requested by user; cancelling the children",
        )
        return job
    never_submitted = (
        status == JobStatus.PENDING
        and job.submit_started_at is None
        and job.external_job_id is None
    )
    if never_submitted:
        set_status(session, job, JobStatus.CANCELLED, now=now, message="cancelled by user")
    else:
        set_status(
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


def record_error(
    job: Job, message: str, *, now: datetime, transient: bool, attempt: int | None = None
) -> None:
    """Append to the job's error log, keeping the newest MAX_ERROR_LOG entries."""
    entry = {
        "at": now.isoformat(),
        "message": message,
        "transient": transient,
        "attempt": job.attempts if attempt is None else attempt,
    }
    # Assign a new list: in-place mutation of a JSON column is not tracked.
    job.error_log = [*(job.error_log or []), entry][-MAX_ERROR_LOG:]
    job.updated_at = now


def execution_time_seconds(job: Job) -> float | None:
    if job.started_at is None:
        return None
    end = job.completed_at or job.updated_at
    return max((end - job.started_at).total_seconds(), 0.0)
