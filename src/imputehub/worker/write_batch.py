"""Writes the worker loop gathers and makes together, every fraction of a second.

Following thousands of running jobs is mostly quiet polls (quiet_polls.py): each only moves
its job's next poll on and gives the lease back. Written one transaction per poll, that and
the step's duration metric were most of a poll's database work. The loop instead gathers
them here, and a flush writes them all: one UPDATE for every quiet poll gathered, guarded by
each job's lease owner (a lease lost meanwhile is left alone, whoever holds it now), and one
upsert per metric series.

Crash safety: what was gathered but not flushed dies with the process, and that loses
nothing a user could see. The job keeps its old `next_run_at` and its lease; once the lease
lapses a worker polls it again. Durations and claim counts are metrics only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, bindparam, case, column, update, values
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job
from imputehub.db.session import Database
from imputehub.monitoring import counters
from imputehub.worker.leases import Claim

logger = logging.getLogger("imputehub.worker")

# Long enough to gather many polls per statement, short next to any lease or poll interval.
FLUSH_EVERY = 0.25
STEP_DURATIONS = "imputehub_step_duration_seconds"
CLAIMS = "imputehub_job_claims_total"


@dataclass(frozen=True)
class _Quiet:
    job_id: str
    owner: str
    step: str
    next_run_at: datetime


class WriteBatch:
    """Gathers quiet polls and metrics of one worker; `flush` writes them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._quiet: list[_Quiet] = []
        self._durations: dict[str, list[float]] = defaultdict(list)
        self._claims = 0
        self._flushing = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._quiet)

    def quiet(self, claim: Claim, *, next_run_at: datetime) -> None:
        """The job's next run is at `next_run_at`, and its lease goes back, if still ours."""
        self._quiet.append(_Quiet(claim.job_id, claim.owner, claim.step, next_run_at))

    def observe(self, step: str, seconds: float) -> None:
        self._durations[step].append(seconds)

    def count_claims(self, count: int) -> None:
        self._claims += count

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every FLUSH_EVERY until `stop` is set (the owner flushes once more after)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=FLUSH_EVERY)
            await self.flush()

    async def flush(self) -> None:
        """Write what was gathered. Never raises: a failure is logged, and its quiet polls'
        jobs are polled again once their leases lapse."""
        async with self._flushing:
            quiet, self._quiet = self._quiet, []
            durations, self._durations = self._durations, defaultdict(list)
            claims, self._claims = self._claims, 0
            if quiet:
                try:
                    async with self.db.session() as session:
                        await _release_quiet(session, quiet)
                except Exception:
                    logger.exception(
                        "could not record quiet polls; their jobs are polled again later",
                        extra={"action": "quiet_polls_failed", "count": len(quiet)},
                    )
            if durations or claims:
                try:
                    async with self.db.session() as session:
                        await _metrics(session, durations, claims)
                except Exception:
                    # Metrics only: the jobs' outcomes stand.
                    logger.warning(
                        "could not record step metrics",
                        exc_info=True,
                        extra={"action": "metric_write_failed", "metric": STEP_DURATIONS},
                    )


async def _release_quiet(session: AsyncSession, quiet: list[_Quiet]) -> None:
    """Each job's next run and lease release, where the lease is still the poll's.

    A job whose next step changed meanwhile (a cancel arrived) keeps its `next_run_at` and
    gets its lease back, so that step runs at once: as outcomes.write does for a stale step.
    """
    if session.get_bind().dialect.name == "postgresql":
        rows = values(
            column("id", String),
            column("owner", String),
            column("step", String),
            column("at", Job.__table__.c.next_run_at.type),
            name="quiet",
        ).data([(q.job_id, q.owner, q.step, q.next_run_at) for q in quiet])
        await session.execute(
            update(Job)
            .where(Job.id == rows.c.id, Job.lease_owner == rows.c.owner)
            .values(
                next_run_at=case((Job.next_step == rows.c.step, rows.c.at), else_=Job.next_run_at),
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return
    # SQLite has no VALUES list with column names to join: one statement, many parameter
    # sets (on the table, not the entity: ORM bulk updates want primary keys as values).
    jobs = cast(Table, Job.__table__)
    await session.execute(
        update(jobs)
        .where(jobs.c.id == bindparam("q_id"), jobs.c.lease_owner == bindparam("q_owner"))
        .values(
            next_run_at=case(
                (jobs.c.next_step == bindparam("q_step"), bindparam("q_at")),
                else_=jobs.c.next_run_at,
            ),
            lease_owner=None,
            lease_expires_at=None,
        ),
        [
            {"q_id": q.job_id, "q_owner": q.owner, "q_step": q.step, "q_at": q.next_run_at}
            for q in quiet
        ],
    )


async def _metrics(session: AsyncSession, durations: dict[str, list[float]], claims: int) -> None:
    if claims:
        await counters.increment(session, CLAIMS, by=claims)
    for step, seconds in sorted(durations.items()):
        await counters.observe_many(session, STEP_DURATIONS, seconds, {"step": step})
