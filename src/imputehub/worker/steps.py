"""One short, idempotent step for one claimed job: submit, poll, fetch or cancel.

The shape of every step: read what it needs in a short transaction, call the service with
no transaction open, then write the outcome in a transaction that first re-checks the lease
(`leases.lock_leased_job`). A worker whose lease was taken over drops what it learnt; the
new holder redoes the step from the recorded state, which is why each step is idempotent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.connectors.base import (
    Connector,
    ExternalRef,
    ExternalState,
    ExternalStatus,
)
from imputehub.db.models import Job, Service
from imputehub.domain import jobs as rules
from imputehub.domain.errors import (
    CredentialRejected,
    JobLost,
    PermanentServiceError,
    ServiceBusy,
    ServiceError,
    ServiceInMaintenance,
    TransientServiceError,
)
from imputehub.domain.jobs import JobStatus, Step
from imputehub.domain.slots import SlotWait
from imputehub.jobs import slots
from imputehub.logs import job_context
from imputehub.monitoring import counters
from imputehub.notify import outbox
from imputehub.operations import maintenance
from imputehub.registry.credentials import USER
from imputehub.registry.user_credentials import record_rejection
from imputehub.runtime import Runtime
from imputehub.worker import end_watch, leases, outcomes, parent_steps, step_context
from imputehub.worker.leases import Claim, LeaseLost
from imputehub.worker.poll_context import PollRow
from imputehub.worker.quiet_polls import is_quiet, queued_message, running_message
from imputehub.worker.sink import StorageSink
from imputehub.worker.step_context import Context
from imputehub.worker.write_batch import WriteBatch

logger = logging.getLogger("imputehub.worker")


async def run_step(
    runtime: Runtime,
    claim: Claim,
    batch: WriteBatch | None = None,
    row: PollRow | None = None,
) -> None:
    """Perform the step `claim` was made for. Never raises: errors end up on the job.

    Every log line of the step carries the job id; its duration goes to the histogram.
    With `batch` (the worker loop's), a quiet poll's outcome and the duration are gathered
    there and written with many others; without it, each is written before this returns.
    `row`: a poll's job as read with its claim (poll_context.py), saving the step's reads.
    """
    started = time.monotonic()
    with job_context(claim.job_id):
        await _run_step(runtime, claim, batch, row)
        if batch is not None:
            batch.observe(claim.step, time.monotonic() - started)
        else:
            await _observe_duration(runtime, claim, time.monotonic() - started)


async def _observe_duration(runtime: Runtime, claim: Claim, seconds: float) -> None:
    try:
        async with runtime.db.session() as session:
            await counters.observe(
                session, "imputehub_step_duration_seconds", seconds, {"step": claim.step}
            )
    except Exception:
        # A lost observation must not disturb the job; the next step records again.
        logger.warning(
            "could not record a step's duration",
            extra={"action": "metric_write_failed", "step": claim.step},
            exc_info=True,
        )


async def _run_step(
    runtime: Runtime, claim: Claim, batch: WriteBatch | None, row: PollRow | None
) -> None:
    try:
        async with leases.keep_lease(
            runtime.db,
            claim,
            clock=runtime.clock,
            lease_seconds=runtime.settings.worker_lease_seconds,
        ):
            if claim.step in parent_steps.STEPS:  # a federated job's parent
                await parent_steps.run(runtime, claim)
            else:
                await _run(runtime, claim, batch, row)
    except LeaseLost:
        logger.info(
            "lease lost; another worker holds the job now, this outcome is dropped",
            extra={"action": "lease_lost", "job_id": claim.job_id, "step": claim.step},
        )
    except Exception:
        # Recording the outcome itself failed (e.g. the database is down): the lease
        # expires and a worker redoes the step later.
        logger.exception(
            "could not record a step's outcome",
            extra={"action": "step_crashed", "job_id": claim.job_id, "step": claim.step},
        )


async def _run(
    runtime: Runtime,
    claim: Claim,
    batch: WriteBatch | None = None,
    row: PollRow | None = None,
) -> None:
    ctx: Context | None = None
    try:
        if row is not None:
            ctx = step_context.from_poll_row(runtime, claim, row) or await step_context.load(
                runtime, claim
            )
        else:
            ctx = await step_context.load(runtime, claim)
        if ctx is None:
            return
        if await _over_time_limit(runtime, ctx):
            return
        if ctx.connector is None:
            raise PermanentServiceError(f"no connector for api_type {ctx.service.api_type}")
        if ctx.step == Step.SUBMIT:
            await _submit(runtime, ctx, ctx.connector)
        elif ctx.step == Step.POLL:
            await _poll(runtime, ctx, ctx.connector, batch)
        elif ctx.step == Step.FETCH:
            await _fetch(runtime, ctx, ctx.connector)
        else:
            await _cancel(runtime, ctx, ctx.connector)
    except LeaseLost:
        raise
    except TransientServiceError as exc:
        if isinstance(exc, ServiceBusy) and exc.limit is not None and ctx is not None:
            await _learn_slot_limit(runtime, ctx, exc.limit)
        await outcomes.retry_later(
            runtime,
            claim,
            exc.message,
            retry_after=_retry_after(runtime, exc),
            counted=not isinstance(exc, ServiceBusy),
        )
    except CredentialRejected as exc:
        if ctx is not None:
            await _mark_rejected(runtime, ctx, exc.message)
        await outcomes.fail(runtime, claim, exc.message)
    except PermanentServiceError as exc:
        await outcomes.fail(runtime, claim, exc.message)
    except Exception:
        # A bug must not lose a job: keep it, retry with backoff, tell the operator.
        logger.exception(
            "step failed with an unexpected error",
            extra={"action": "step_error", "job_id": claim.job_id, "step": claim.step},
        )
        await outcomes.retry_later(runtime, claim, outcomes.INTERNAL_ERROR, retry_after=None)


async def _learn_slot_limit(runtime: Runtime, ctx: Context, limit: int) -> None:
    """The service said how many jobs an account may run at once: the hub's slots follow."""
    if limit <= 0 or limit == ctx.slot_limit:
        return
    async with runtime.db.session() as session:
        await slots.learn_limit(session, ctx.service.id, limit)
    logger.info(
        "the service allows %d jobs per account; its slots follow",
        limit,
        extra={"action": "slot_limit_learnt", "service_id": ctx.service.id},
    )


def _retry_after(runtime: Runtime, exc: TransientServiceError) -> float | None:
    """How long to wait after `exc`; None: the usual backoff.

    Maintenance: one health-check interval at most (sooner if the service says so), so a job
    held back resumes within one interval of the service's return. Its next try asks the
    service again before uploading anything, as the health check does meanwhile.
    """
    if isinstance(exc, ServiceInMaintenance):
        interval = runtime.settings.health_check_interval_seconds
        return interval if exc.retry_after is None else min(exc.retry_after, interval)
    return exc.retry_after


# ---- the steps ---------------------------------------------------------------------------


async def _submit(runtime: Runtime, ctx: Context, connector: Connector) -> None:
    assert ctx.spec is not None
    ref: ExternalRef | None = None
    if ctx.submit_started_at is None:
        waits: list[SlotWait | None] = []  # a slot wait, or None for a hold

        # Record the intent, and commit it, before the service hears of the job: whoever
        # finds it set after a crash looks the job up instead of submitting it twice. The
        # intent also takes one of the account's slots at the service, if one is free and
        # the job is next in line; else the job waits in the hub, uploading nothing.
        async def intent(session: AsyncSession, job: Job, now: datetime) -> None:
            held = await maintenance.job_held(session, job)
            if held is not None:
                # Maintenance or a paused service: the job waits in the hub, as for a slot.
                waits.append(None)
                await outcomes.note(session, job, JobStatus.QUEUED, now=now, message=held)
                job.next_step = Step.SUBMIT.value
                job.next_run_at = now + outcomes.seconds(maintenance.HOLD_RECHECK_SECONDS)
                leases.release(job)
                return
            group = slots.Group(
                service_id=job.at_service_id,
                user_id=job.user_id if ctx.credential_source == USER else None,
            )
            wait = await slots.take(session, job, group, limit=ctx.slot_limit)
            if wait is not None:
                waits.append(wait)
                await outcomes.note(
                    session,
                    job,
                    JobStatus.QUEUED,
                    now=now,
                    message=wait.message(ctx.service_name),
                )
                # Queued in the hub, not at the service: still to be submitted.
                job.next_step = Step.SUBMIT.value
                job.next_run_at = now + outcomes.seconds(slots.RECHECK_SECONDS)
                leases.release(job)
                return
            job.submit_started_at = now
            job.credential_source = ctx.credential_source
            if ctx.new_secret is not None:
                job.service_secret_encrypted = ctx.new_secret
            await outcomes.note(
                session,
                job,
                JobStatus(job.status),
                now=now,
                progress=rules.submit_progress(0.5),
                message=f"submitting to {ctx.service_name}",
            )

        if not await outcomes.write(runtime, ctx.claim, intent, release=False) or waits:
            return
    else:
        ref = await connector.find(
            ctx.service, ctx.job_id, ctx.credential, submitted_after=ctx.submit_started_at
        )
        if ref is not None:
            logger.info(
                "adopted a job submitted before a crash",
                extra={"action": "job_adopted", "job_id": ctx.job_id},
            )
        elif ctx.new_secret is not None:
            # An intent recorded before jobs had secrets: keep the one about to be used.
            async def remember(session: AsyncSession, job: Job, now: datetime) -> None:
                job.service_secret_encrypted = ctx.new_secret

            if not await outcomes.write(runtime, ctx.claim, remember, release=False):
                return
    if ref is None:
        ref = await connector.submit(ctx.service, ctx.spec, ctx.credential, ctx.job_id)
    submitted = ref

    async def outcome(session: AsyncSession, job: Job, now: datetime) -> None:
        job.external_job_id = submitted.external_id
        await outcomes.note(
            session,
            job,
            JobStatus.QUEUED,
            now=now,
            progress=rules.submit_progress(1.0),
            message=f"submitted to {ctx.service_name} as {submitted.external_id}",
        )
        interval = submitted.poll_after or runtime.settings.poll_interval_seconds
        # Set, not left to the status change: a job that waited for a slot was queued already.
        job.next_step = Step.POLL.value
        job.next_run_at = now + outcomes.seconds(interval)

    async def stale(session: AsyncSession, job: Job, now: datetime) -> None:
        # Cancelled meanwhile: still remember the external id, so the cancel reaches it.
        if job.external_job_id is None:
            job.external_job_id = submitted.external_id

    await outcomes.write(runtime, ctx.claim, outcome, stale=stale)
    end_watch.follow(runtime, connector, ctx.job_id, submitted.external_id)
    logger.info(
        "job submitted",
        extra={"action": "job_submitted", "job_id": ctx.job_id, "external_id": ref.external_id},
    )


async def _poll(
    runtime: Runtime, ctx: Context, connector: Connector, batch: WriteBatch | None = None
) -> None:
    ref = await _external_ref(ctx, connector)
    if ref is None:
        raise JobLost("the service has no record of this job")
    status = await connector.poll(ctx.service, ref, ctx.credential)
    end_watch.follow(runtime, connector, ctx.job_id, ref.external_id, status.state)
    if (
        batch is not None
        and ctx.view is not None
        and ctx.external_job_id is not None
        and is_quiet(ctx.view, status, ctx.service_name)
    ):
        # Nothing to record but the next poll: written with many others (write_batch.py).
        interval = status.poll_after or runtime.settings.poll_interval_seconds
        batch.quiet(ctx.claim, next_run_at=runtime.clock.now() + outcomes.seconds(interval))
        return

    async def outcome(session: AsyncSession, job: Job, now: datetime) -> None:
        job.service_logs = list(status.logs)
        await _apply_status(runtime, session, job, status, ctx.service_name, now=now)

    await outcomes.write(runtime, ctx.claim, outcome)


async def _apply_status(
    runtime: Runtime,
    session: AsyncSession,
    job: Job,
    status: ExternalStatus,
    service_name: str,
    *,
    now: datetime,
) -> None:
    current = JobStatus(job.status)
    job.attempts = 0
    _record_service_view(job, status)
    if status.state == ExternalState.FAILED:
        message = status.message or f"{service_name} reports that the job failed"
        outcomes.record_failure(job, message, now=now)
        await outcomes.note(session, job, JobStatus.FAILED, now=now, message=message)
        return
    if status.state == ExternalState.CANCELLED:
        message = "the service cancelled the job"
        outcomes.record_failure(job, message, now=now)
        await outcomes.note(session, job, JobStatus.FAILED, now=now, message=message)
        return
    if status.state == ExternalState.QUEUED and current in (JobStatus.PENDING, JobStatus.QUEUED):
        message = queued_message(service_name, status.queue_position)
        await outcomes.note(session, job, JobStatus.QUEUED, now=now, message=message)
    elif status.state == ExternalState.RUNNING:
        progress = max(job.progress, rules.service_progress(status.progress or 0.0))
        await outcomes.note(
            session,
            job,
            JobStatus.RUNNING,
            now=now,
            progress=progress,
            message=running_message(service_name),
        )
    elif status.state == ExternalState.COMPLETED:
        await outcomes.note(
            session,
            job,
            JobStatus.RUNNING,
            now=now,
            progress=max(job.progress, rules.FETCH_BAND[0]),
            message=f"finished at {service_name}; fetching the results",
        )
        job.next_step = Step.FETCH.value
        job.next_run_at = now
        return
    interval = status.poll_after or runtime.settings.poll_interval_seconds
    job.next_run_at = now + outcomes.seconds(interval)


def _record_service_view(job: Job, status: ExternalStatus) -> None:
    """What the service says about the job beyond its state, for its owner to see."""
    queued = status.state == ExternalState.QUEUED
    job.service_queue_position = status.queue_position if queued else None
    if status.results_deleted_at is not None:
        job.service_deletes_results_at = status.results_deleted_at


async def _fetch(runtime: Runtime, ctx: Context, connector: Connector) -> None:
    ref = await _external_ref(ctx, connector)
    if ref is None:
        raise JobLost("the service has no record of this job")
    sink = StorageSink(runtime, ctx.claim, user_id=ctx.user_id)
    await sink.discard_partials()  # what a worker killed mid-write left
    try:
        files = await connector.fetch_results(ctx.service, ref, ctx.credential, sink)
    except ServiceError:
        # A fetch that keeps failing races the service's deletion of the results: learn
        # when that is (retries then come before it) and show it on the job.
        await _learn_deletion(runtime, ctx, connector, ref)
        raise

    async def outcome(session: AsyncSession, job: Job, now: datetime) -> None:
        count = f"{len(files)} result file{'' if len(files) == 1 else 's'}"
        await outcomes.note(session, job, JobStatus.COMPLETED, now=now, message=f"{count} stored")
        outbox.results_ready(session, job, now=now, files=len(files))

    # Completing the job also removes the fetch's marks and kept downloads (outcomes.write).
    await outcomes.write(runtime, ctx.claim, outcome)
    logger.info(
        "job completed",
        extra={"action": "job_completed", "job_id": ctx.job_id, "files": len(files)},
    )


async def _learn_deletion(
    runtime: Runtime, ctx: Context, connector: Connector, ref: ExternalRef
) -> None:
    try:
        status = await connector.poll(ctx.service, ref, ctx.credential)
    except ServiceError:
        return  # the fetch's own error says what went wrong
    deletes_at = status.results_deleted_at
    if deletes_at is None:
        return

    async def note_deletion(session: AsyncSession, job: Job, now: datetime) -> None:
        job.service_deletes_results_at = deletes_at

    await outcomes.write(runtime, ctx.claim, note_deletion, release=False)


async def _cancel(runtime: Runtime, ctx: Context, connector: Connector) -> None:
    ref = await _external_ref(ctx, connector)
    if ref is None:
        message = "cancelled before it reached the service"
    else:
        try:
            await connector.cancel(ctx.service, ref, ctx.credential)
            message = f"cancelled at {ctx.service_name}"
        except JobLost:
            message = "cancelled; the service no longer knows the job"
    found = ref

    async def outcome(session: AsyncSession, job: Job, now: datetime) -> None:
        if found is not None and job.external_job_id is None:
            job.external_job_id = found.external_id
        await outcomes.note(session, job, JobStatus.CANCELLED, now=now, message=message)

    await outcomes.write(runtime, ctx.claim, outcome)
    logger.info("job cancelled", extra={"action": "job_cancelled", "job_id": ctx.job_id})


async def _external_ref(ctx: Context, connector: Connector) -> ExternalRef | None:
    """The service's job: by its recorded id, or by our key after an interrupted submit."""
    if ctx.external_job_id is not None:
        return ExternalRef(external_id=ctx.external_job_id, secret=ctx.secret)
    if ctx.submit_started_at is not None:
        found = await connector.find(
            ctx.service, ctx.job_id, ctx.credential, submitted_after=ctx.submit_started_at
        )
        return None if found is None else replace(found, secret=ctx.secret)
    return None


async def _mark_rejected(runtime: Runtime, ctx: Context, message: str) -> None:
    """The service refused the credential: mark it unverified where it is kept."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        if ctx.credential_source == USER:
            await record_rejection(session, ctx.user_id, ctx.service.id, message, now=now)
            return
        service = await session.get(Service, ctx.service.id)
        if service is not None:
            service.credential_verified = False
            service.credential_verified_at = now


# ---- time limits ---------------------------------------------------------------------------


async def _over_time_limit(runtime: Runtime, ctx: Context) -> bool:
    """Fail a job that has been active too long, and ask the service to drop it."""
    limit = ctx.time_limit_seconds
    if ctx.step == Step.CANCEL or runtime.clock.now() - ctx.created_at <= outcomes.seconds(limit):
        return False
    message = f"did not finish within {outcomes.duration(limit)}; imputehub stopped following it"
    await outcomes.fail(runtime, ctx.claim, message)
    if ctx.connector is None:
        return True
    try:
        ref = await _external_ref(ctx, ctx.connector)
        if ref is not None:
            await ctx.connector.cancel(ctx.service, ref, ctx.credential)
    except Exception:
        # Best effort: the job is failed here whatever the service answers.
        logger.warning(
            "could not cancel a job that ran past its time limit",
            exc_info=True,
            extra={"action": "time_limit_cancel_failed", "job_id": ctx.job_id},
        )
    return True
