"""Writing a step's outcome: only while the lease is ours, one transaction each.

Also the shared outcomes of failure: a transient error waits with backoff and counts
towards the attempt limit, a permanent one fails the job with the service's own message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, JobStatusUpdate
from imputehub.domain import jobs as rules
from imputehub.domain.jobs import JobStatus
from imputehub.files import retention
from imputehub.jobs import lifecycle, slots
from imputehub.monitoring import counters
from imputehub.runtime import Runtime
from imputehub.worker import leases
from imputehub.worker.leases import Claim, LeaseLost

logger = logging.getLogger("imputehub.worker")

# What the owner reads when a step failed on a bug of the hub's own (the step is retried).
INTERNAL_ERROR = "internal error in the hub (details are in the worker log); retrying"

Apply = Callable[[AsyncSession, Job, datetime], Awaitable[None]]


async def write(
    runtime: Runtime,
    claim: Claim,
    apply: Apply,
    *,
    stale: Apply | None = None,
    release: bool = True,
) -> bool:
    """Apply an outcome in one transaction, if the lease is still ours; raise LeaseLost if not.

    When the job meanwhile wants a different step than the one we ran (a cancel arrived),
    only `stale` is applied, the lease is released so that step can run, and False returned.
    An outcome that finishes the job also removes its fetch bookkeeping from storage.
    """
    async with runtime.db.session() as session:
        job = await leases.lock_leased_job(session, claim)
        if job is None:
            raise LeaseLost(claim.job_id)
        now = runtime.clock.now()
        current = job.next_step == claim.step
        held = slots.holds_slot(job)
        was_finished = rules.is_terminal(JobStatus(job.status))
        if current:
            await apply(session, job, now)
        elif stale is not None and not was_finished:
            await stale(session, job, now)
        if held and not slots.holds_slot(job):
            await session.flush()  # the job's new state counts in who holds slots now
            await slots.release(session, job, now=now)
        if release or not current:
            leases.release(job)
        finished = not was_finished and rules.is_terminal(JobStatus(job.status))
        due_now = (
            job.next_step is not None and job.next_run_at is not None and (job.next_run_at <= now)
        )
    if due_now and (release or not current):
        # Its next step is due at once (the fetch after the poll that saw the end): the
        # worker claims it now instead of after its pacing between claims.
        runtime.wake_workers()
    if finished:
        await _discard_fetch_state(runtime, claim.job_id)
    return current


async def _discard_fetch_state(runtime: Runtime, job_id: str) -> None:
    try:
        await retention.discard_fetch_state(runtime.storage, job_id)
    except Exception:
        # The job's outcome stands; the retention chore's sweep removes them later.
        logger.warning(
            "could not remove a finished job's fetch bookkeeping",
            exc_info=True,
            extra={"action": "fetch_state_cleanup_failed", "job_id": job_id},
        )


async def note(
    session: AsyncSession,
    job: Job,
    target: JobStatus,
    *,
    now: datetime,
    message: str,
    progress: float | None = None,
) -> None:
    """`lifecycle.set_status`, skipping an update that would repeat the last one exactly."""
    current = JobStatus(job.status)
    if (
        target == current
        and rules.progress_for(target, job.progress if progress is None else progress)
        == job.progress
    ):
        last = await session.scalar(
            select(JobStatusUpdate.message)
            .where(JobStatusUpdate.job_id == job.id)
            .order_by(JobStatusUpdate.id.desc())
            .limit(1)
        )
        if last == message:
            return
    lifecycle.set_status(session, job, target, now=now, message=message, progress=progress)


# ---- failures ----------------------------------------------------------------------------


async def retry_later(
    runtime: Runtime,
    claim: Claim,
    message: str,
    *,
    retry_after: float | None,
    counted: bool = True,
) -> None:
    """Count a transient failure: wait (the service's retry_after, else backoff) or give up.

    `counted=False`: a wait that is no failure (the service is busy or in maintenance) is
    logged but not counted towards the attempt limit; the job's time limit bounds it.
    """
    settings = runtime.settings

    async def outcome(session: AsyncSession, job: Job, now: datetime) -> None:
        if counted:
            job.attempts += 1
        lifecycle.record_error(job, message, now=now, transient=True, attempt=job.attempts)
        await counters.increment(session, "imputehub_job_retries_total", {"step": claim.step})
        if counted and job.attempts >= settings.max_transient_attempts:
            final = f"gave up after {job.attempts} attempts; the last error: {message}"
            job.error_message = final
            await note(session, job, JobStatus.FAILED, now=now, message=final)
            await counters.increment(session, "imputehub_job_failures_total", {"step": claim.step})
            return
        delay = (
            max(retry_after, 0.0)
            if retry_after is not None
            else rules.retry_delay(
                job.attempts, base=settings.retry_base_seconds, cap=settings.retry_max_seconds
            )
        )
        deletes_at = job.service_deletes_results_at
        if deletes_at is not None and deletes_at > now:
            # Try again well before the service deletes what this step needs.
            delay = min(delay, (deletes_at - now).total_seconds() / 2)
        job.next_run_at = now + seconds(delay)
        await note(
            session,
            job,
            JobStatus(job.status),
            now=now,
            message=f"waiting to retry after a temporary problem: {message}",
        )

    await write(runtime, claim, outcome)
    logger.info(
        "step failed; will retry",
        extra={"action": "step_retry", "job_id": claim.job_id, "step": claim.step},
    )


async def fail(runtime: Runtime, claim: Claim, message: str) -> None:
    """Fail the job with `message` (shown to its owner as the job's error)."""

    async def outcome(session: AsyncSession, job: Job, now: datetime) -> None:
        record_failure(job, message, now=now)
        await note(session, job, JobStatus.FAILED, now=now, message=message)
        await counters.increment(session, "imputehub_job_failures_total", {"step": claim.step})

    # A failure stands even if the job's next step changed meanwhile (e.g. a cancel).
    await write(runtime, claim, outcome, stale=outcome)
    logger.info(
        "job failed",
        extra={"action": "job_failed", "job_id": claim.job_id, "step": claim.step},
    )


def record_failure(job: Job, message: str, *, now: datetime) -> None:
    lifecycle.record_error(job, message, now=now, transient=False, attempt=job.attempts + 1)
    job.error_message = message


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def duration(value: float) -> str:
    """A span of seconds as people say it: '2 hours', '1.5 days', '30 minutes'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if value >= size or unit == "second":
            amount = round(value / size, 1)
            return f"{amount:g} {unit}{'' if amount == 1 else 's'}"
    raise AssertionError("unreachable")
