"""Polls that come when a service's job ends, not one poll interval later.

A connector that can tell when one of its jobs is over offers `watch_end(external_id,
on_end)` (an optional capability, not part of the Protocol: the local engine has it). The
worker asks it to watch each job it submits or polls that is still going; when the job is
over, `on_end` makes its poll due now and wakes the workers of this process, so the poll
that sees the end (and the fetch right after it) come at once. Everything else is as
before: the ordinary polls still come every poll interval (progress, step messages) and
still notice the end if the watch cannot — after a worker restart, say, until the worker has
started its watches again (`follow_running`, at start-up).

The watch only moves a poll's `next_run_at`: it never writes a job's state, so a job that
meanwhile wants another step (a cancel, a fetch) is left alone, and a job leased to a step
in flight is left to that step until its lease is given back (its outcome would otherwise
overwrite the earlier `next_run_at`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import and_, or_, select, update

from imputehub.connectors.base import Connector, ExternalState
from imputehub.db.models import Job, Service
from imputehub.domain.jobs import TERMINAL, Step
from imputehub.runtime import Runtime

logger = logging.getLogger("imputehub.worker")

POLL = Step.POLL.value
# How often a job whose run ended is looked at again while a step holds its lease.
LEASED_RECHECK_SECONDS = 0.1
STILL_GOING = (ExternalState.QUEUED, ExternalState.RUNNING)


def _watcher(connector: Connector | None) -> Callable[..., None] | None:
    watch: Callable[..., None] | None = getattr(connector, "watch_end", None)
    return watch if callable(watch) else None


def follow(
    runtime: Runtime,
    connector: Connector | None,
    job_id: str,
    external_id: str,
    state: ExternalState = ExternalState.QUEUED,
) -> None:
    """Have the job polled as soon as its service says it is over (if it can say)."""
    watch = _watcher(connector)
    if watch is None or state not in STILL_GOING:
        return
    try:
        watch(external_id, lambda: due_now(runtime, job_id, external_id))
    except Exception:
        # Polls notice the end anyway, one interval later.
        logger.warning(
            "could not watch a job's end",
            exc_info=True,
            extra={"action": "end_watch_failed", "job_id": job_id},
        )


async def due_now(runtime: Runtime, job_id: str, external_id: str) -> None:
    """Make the job's poll due now, once no step holds it, and wake this process's workers."""
    lease_seconds = runtime.settings.worker_lease_seconds
    deadline = asyncio.get_running_loop().time() + 2 * lease_seconds
    while True:
        now = runtime.clock.now()
        same_run = and_(
            Job.id == job_id,
            Job.next_step == POLL,
            Job.external_job_id == external_id,
            Job.status.notin_([status.value for status in TERMINAL]),
        )
        async with runtime.db.session() as session:
            moved = await session.execute(
                update(Job)
                .where(
                    same_run,
                    or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
                    or_(Job.next_run_at.is_(None), Job.next_run_at > now),
                )
                .values(next_run_at=now)
                .execution_options(synchronize_session=False)
            )
            leased = False
            if _rowcount(moved) == 0:
                held = await session.execute(
                    select(Job.id).where(same_run, Job.lease_expires_at >= now)
                )
                leased = held.first() is not None
        if not leased or asyncio.get_running_loop().time() > deadline:
            break
        # A step holds the job (the poll that started this watch, say): its outcome
        # comes first, then the poll is made due.
        await asyncio.sleep(LEASED_RECHECK_SECONDS)
    runtime.wake_workers()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def follow_running(runtime: Runtime) -> int:
    """Watch every job being polled at a service that can tell its end (worker start-up)."""
    watching = {
        api_type for api_type, connector in runtime.connectors.items() if _watcher(connector)
    }
    if not watching:
        return 0
    try:
        async with runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(Job.id, Job.external_job_id, Service.api_type)
                    .join(Service, Service.id == Job.service_id)
                    .where(
                        Job.next_step == POLL,
                        Job.external_job_id.is_not(None),
                        Service.api_type.in_(watching),
                        Job.status.notin_([status.value for status in TERMINAL]),
                    )
                )
            ).all()
    except Exception:
        # The database may be briefly unreachable: each job's next poll starts its watch.
        logger.warning(
            "could not look up the jobs to watch",
            exc_info=True,
            extra={"action": "end_watch_lookup_failed"},
        )
        return 0
    for job_id, external_id, api_type in rows:
        if external_id is not None:
            follow(runtime, runtime.connectors.get(api_type), job_id, external_id)
    return len(rows)


async def stop(runtime: Runtime) -> None:
    """Stop this process's watches (the worker stops; polls take over)."""
    for connector in runtime.connectors.values():
        stopping: Callable[[], Awaitable[None]] | None = getattr(connector, "stop_watches", None)
        if callable(stopping):
            try:
                await stopping()
            except Exception:
                logger.warning(
                    "could not stop watching jobs' ends",
                    exc_info=True,
                    extra={"action": "end_watch_stop_failed"},
                )
