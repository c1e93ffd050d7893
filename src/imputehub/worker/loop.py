"""The worker loop: claim due jobs, run one step for each as a task, repeat.

Several worker processes (or the one inside `serve`) run this loop against one database;
leases keep them from working on the same job. The loop also keeps a heartbeat row for
/api/v1/health and runs due service health checks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update

from imputehub.accounts import account_links, browser_sessions, deletion, signup
from imputehub.clock import Interval
from imputehub.db.models import WorkerHeartbeat
from imputehub.domain.jobs import Step
from imputehub.files import retention, upload_expiry
from imputehub.monitoring import counters
from imputehub.notify import delivery, relay
from imputehub.notify.expiring import ExpiringTimer
from imputehub.registry import health
from imputehub.runtime import Runtime
from imputehub.worker import end_watch, leases, poll_context, steps
from imputehub.worker.leases import Claim
from imputehub.worker.write_batch import WriteBatch

logger = logging.getLogger("imputehub.worker")

HealthChecks = Callable[[Runtime], Awaitable[object]]

MAX_SHUTDOWN_WAIT = 30.0
# Heartbeat rows of workers that died without a clean stop are removed after this long.
STALE_HEARTBEAT = timedelta(days=1)
SESSION_SWEEP_EVERY = timedelta(hours=1)
# Accounts being deleted go this soon after their last job stopped.
DELETION_SWEEP_EVERY = timedelta(seconds=30)
# A claim that found less than it asked for waits this long before the next one, even when
# steps end meanwhile: with hundreds of polls in flight a step ends every few milliseconds,
# and a claim per step end would cost more than the polls. Due work waits at most this long.
CLAIM_GAP = 0.1


def default_worker_id() -> str:
    """host:pid:random - unique per process, readable in logs and lease columns."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Runs job steps until told to stop.

    `health_checks` defaults to the registry's due health checks; tests pass their own.
    `shutdown_timeout` bounds how long `run` waits for running steps once stopped
    (default: one lease, at most 30 s); steps cut short are redone by whichever worker
    claims the job once its lease lapses.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str | None = None,
        health_checks: HealthChecks | None = None,
        shutdown_timeout: float | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.worker_id = worker_id or default_worker_id()
        self.poll_interval = settings.worker_poll_interval
        self.lease_seconds = settings.worker_lease_seconds
        self.batch_size = settings.worker_batch_size
        self.concurrency = settings.worker_concurrency
        self.shutdown_timeout = (
            min(settings.worker_lease_seconds, MAX_SHUTDOWN_WAIT)
            if shutdown_timeout is None
            else shutdown_timeout
        )
        self._health_checks = health_checks or self._registry_health_checks
        self._claims = itertools.count(1)
        self._running: set[asyncio.Task[None]] = set()
        # Submits may stream gigabytes for many minutes: they get at most three quarters of
        # the concurrency, so polls, fetches and cancels always have slots to finish jobs in,
        # and no more than worker_submit_concurrency, however many polls run at once.
        self._submits: set[asyncio.Task[None]] = set()
        self.submit_slots = max(
            1, min(self.concurrency * 3 // 4, settings.worker_submit_concurrency)
        )
        # Quiet polls' outcomes and step metrics, written together (write_batch.py).
        self.batch = WriteBatch(runtime.db)
        self._rows: dict[str, poll_context.PollRow] = {}  # claimed polls' rows, by job id
        # Set when a step ends: its job's next step may be due at once (a fetch right after
        # the poll that saw the service finish), and a concurrency slot is free again.
        self._wake = asyncio.Event()
        self._started_at: datetime | None = None
        self._retention = retention.RetentionTimer(runtime)
        self._expiring = ExpiringTimer(runtime)
        self._session_sweep = Interval()
        self._deletion_sweep = Interval()
        self._delivering: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then let running steps finish (bounded) and return."""
        loop = asyncio.get_running_loop()
        self._started_at = self.runtime.clock.now()
        logger.info(
            "worker started", extra={"action": "worker_started", "worker_id": self.worker_id}
        )
        next_housekeeping = 0.0
        flushed = asyncio.Event()  # set once every step has ended: the last flush follows
        flusher = asyncio.create_task(self.batch.run(flushed), name="worker-write-batch")
        try:
            await end_watch.follow_running(self.runtime)  # runs that end meanwhile
            while not stop.is_set():
                self._wake.clear()
                if loop.time() >= next_housekeeping:
                    await self._housekeeping()
                    next_housekeeping = loop.time() + self.poll_interval
                free = self.concurrency - len(self._running)
                wanted = min(self.batch_size, free)
                submit_room = self.submit_slots - len(self._submits)
                claimed_at = loop.time()
                claims = await self._claim(wanted, submit_room) if wanted > 0 else []
                if stop.is_set():
                    # Told to stop while claiming: take on nothing new.
                    self._rows.clear()
                    await self._give_back(claims)
                    break
                for claim in claims:
                    self._spawn(claim)
                if claims and len(claims) == wanted:
                    # More may be due right now: look again without waiting.
                    await asyncio.sleep(0)
                    continue
                if not await self._idle(stop):
                    await self._pace(stop, claimed_at + CLAIM_GAP - loop.time())
        finally:
            await self._drain()
            await end_watch.stop(self.runtime)
            flushed.set()
            await asyncio.gather(flusher, return_exceptions=True)
            await self.batch.flush()
            await self._leave()
            logger.info(
                "worker stopped", extra={"action": "worker_stopped", "worker_id": self.worker_id}
            )

    async def run_once(self) -> int:
        """Claim one batch of due jobs and run their steps to the end; how many ran.

        For tests and one-shot runs: deterministic, no background loop.
        """
        claims = await self._claim(self.batch_size, alone=True)
        limit = asyncio.Semaphore(self.concurrency)

        async def bounded(claim: Claim) -> None:
            async with limit:
                await steps.run_step(self.runtime, claim)

        await asyncio.gather(*(bounded(claim) for claim in claims))
        return len(claims)

    async def _pace(self, stop: asyncio.Event, delay: float) -> None:
        """Wait `delay` seconds (if positive) unless stopped, or work is made due at once."""
        if delay > 0 and not stop.is_set():
            await _first_of(stop, self.runtime.work_ready, within=delay)

    async def _claim(
        self, limit: int, submit_limit: int | None = None, *, alone: bool = False
    ) -> list[Claim]:
        owner = f"{self.worker_id}#{next(self._claims)}"
        try:
            async with self.runtime.db.session() as session:
                claims = await leases.claim_due_jobs(
                    session,
                    owner=owner,
                    now=self.runtime.clock.now(),
                    lease_seconds=self.lease_seconds,
                    limit=limit,
                    submit_limit=submit_limit,
                )
                if not alone:
                    # The polls' jobs, read with the claim: their steps then read nothing.
                    self._rows.update(await poll_context.load(session, claims))
        except Exception:
            # The database may be briefly unreachable; the loop tries again next round.
            logger.exception(
                "could not claim jobs",
                extra={"action": "claim_failed", "worker_id": self.worker_id},
            )
            return []
        if claims and alone:
            # Counted after the claim committed: inside it, the counter row would make every
            # worker's claim wait for the others' (SKIP LOCKED exists to avoid exactly that).
            await counters.increment_alone(
                self.runtime.db, "imputehub_job_claims_total", by=len(claims)
            )
        elif claims:
            self.batch.count_claims(len(claims))  # written with the next flush, likewise apart
        for claim in claims:
            logger.debug(
                "job claimed",
                extra={
                    "action": "job_claimed",
                    "job_id": claim.job_id,
                    "step": claim.step,
                    "lease_owner": claim.owner,
                },
            )
        return claims

    async def _idle(self, stop: asyncio.Event) -> bool:
        """Wait one poll interval, or less: until stopped, a step ends or work was made due
        at once (by the API, a step's outcome, a local run's end). True for the last: the
        next claim then goes without pacing."""
        ready = self.runtime.work_ready
        try:
            await _first_of(stop, self._wake, ready, within=self.poll_interval)
        finally:
            heard = ready.is_set()
            ready.clear()  # heard: the claim that follows takes whatever is due
        return heard

    async def _give_back(self, claims: list[Claim]) -> None:
        if not claims:
            return
        try:
            async with self.runtime.db.session() as session:
                await leases.give_back(session, claims)
        except Exception:
            # Their leases lapse instead, and another worker takes the jobs then.
            logger.exception(
                "could not give back claims", extra={"action": "claims_not_given_back"}
            )

    def _spawn(self, claim: Claim) -> None:
        task = asyncio.create_task(
            steps.run_step(self.runtime, claim, self.batch, self._rows.pop(claim.job_id, None)),
            name=f"step-{claim.step}-{claim.job_id}",
        )
        self._running.add(task)
        if claim.step == Step.SUBMIT.value:
            self._submits.add(task)
        task.add_done_callback(self._step_done)

    def _step_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._submits.discard(task)
        self._wake.set()

    async def _drain(self) -> None:
        if self._delivering is not None:
            self._running.add(self._delivering)  # stopped like a step: leases lapse, others redo
        if not self._running:
            return
        _done, pending = await asyncio.wait(set(self._running), timeout=self.shutdown_timeout)
        for task in pending:
            task.cancel()
        if pending:
            # Their leases lapse and another worker redoes those steps.
            await asyncio.gather(*pending, return_exceptions=True)
            logger.warning(
                "stopped with steps still running",
                extra={"action": "worker_steps_abandoned", "count": len(pending)},
            )

    async def _housekeeping(self) -> None:
        # Each chore is guarded on its own: one failing must not stop the others, nor the loop.
        chores: tuple[tuple[str, str, Callable[[], Awaitable[object]]], ...] = (
            ("could not record the worker heartbeat", "worker_heartbeat_failed", self._beat),
            (
                "service health checks failed",
                "health_checks_failed",
                lambda: self._health_checks(self.runtime),
            ),
            (
                "could not clean up expired uploads",
                "upload_cleanup_failed",
                lambda: upload_expiry.clean_up_uploads(self.runtime, now=self.runtime.clock.now()),
            ),
            (
                "could not announce expiring credentials",
                "credential_expiry_check_failed",
                lambda: self._expiring.run_if_due(self.runtime.clock.now()),
            ),
            (
                "could not fan out notifications",
                "notify_relay_failed",
                lambda: relay.fan_out(self.runtime),
            ),
            (
                "could not remove expired files",
                "retention_failed",
                lambda: self._retention.run_if_due(self.runtime.clock.now()),
            ),
            (
                "could not sweep storage litter",
                "litter_sweep_failed",
                lambda: self._retention.sweep_if_due(self.runtime.clock.now()),
            ),
            (
                "could not remove ended browser sessions",
                "session_sweep_failed",
                self._sweep_sessions,
            ),
            (
                "could not finish deleting accounts",
                "account_deletion_failed",
                self._finish_deletions,
            ),
        )
        for message, action, chore in chores:
            try:
                await chore()
            except Exception:
                logger.exception(message, extra={"action": action, "worker_id": self.worker_id})
        self._start_deliveries()

    async def _sweep_sessions(self) -> None:
        """Hourly: sessions past their idle or absolute limit already open nothing; their
        rows go so the table stays the size of who is signed in."""
        now = self.runtime.clock.now()
        if not self._session_sweep.due(now, SESSION_SWEEP_EVERY):
            return
        settings = self.runtime.settings
        lifetime = browser_sessions.lifetime_of(
            settings.session_idle_minutes, settings.session_max_hours
        )
        async with self.runtime.db.session() as session:
            await browser_sessions.sweep(session, now=now, lifetime=lifetime)
            await account_links.sweep(session, now=now)
            await signup.sweep_unverified(session, now=now)

    async def _finish_deletions(self) -> None:
        """Accounts whose owners asked them to go, once their jobs have stopped."""
        now = self.runtime.clock.now()
        if self._deletion_sweep.due(now, DELETION_SWEEP_EVERY):
            await deletion.finish_due(self.runtime, now=now)

    def _start_deliveries(self) -> None:
        """Deliver due notifications in the background, one batch at a time.

        Deliveries wait on outside servers (SMTP, webhook receivers): awaited here, one slow
        receiver would hold up job claims and every other chore for its whole timeout.
        """
        if self._delivering is None or self._delivering.done():
            self._delivering = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        try:
            await delivery.deliver_due(self.runtime, owner=self.worker_id)
        except Exception:
            logger.exception(
                "could not deliver notifications",
                extra={"action": "notify_delivery_failed", "worker_id": self.worker_id},
            )

    async def _registry_health_checks(self, runtime: Runtime) -> int:
        return await health.run_due_health_checks(runtime, worker_id=self.worker_id)

    async def _beat(self) -> None:
        now = self.runtime.clock.now()
        async with self.runtime.db.session() as session:
            # Only this process writes its row, so update-then-insert cannot race.
            seen = await session.execute(
                update(WorkerHeartbeat)
                .where(WorkerHeartbeat.worker_id == self.worker_id)
                .values(last_seen_at=now)
                .returning(WorkerHeartbeat.worker_id)
                .execution_options(synchronize_session=False)
            )
            if seen.first() is None:
                session.add(
                    WorkerHeartbeat(
                        worker_id=self.worker_id,
                        hostname=socket.gethostname()[:255],
                        pid=os.getpid(),
                        started_at=self._started_at or now,
                        last_seen_at=now,
                    )
                )
            await session.execute(
                delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < now - STALE_HEARTBEAT)
            )

    async def _leave(self) -> None:
        try:
            async with self.runtime.db.session() as session:
                await session.execute(
                    delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id)
                )
        except Exception:
            logger.exception(
                "could not remove the worker heartbeat",
                extra={"action": "worker_heartbeat_failed", "worker_id": self.worker_id},
            )


async def _first_of(*events: asyncio.Event, within: float) -> None:
    """Until one of `events` is set, or `within` seconds have passed."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
