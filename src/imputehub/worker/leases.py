"""Job leases: claim due jobs in one statement, guard every later write, renew, release.

A lease is a (lease_owner, lease_expires_at) pair on the job row. The owner is a token
unique to one claim (worker id + claim number), so even a worker that re-claims a job it
still seems to be working on cannot confuse its two attempts. A worker that dies simply
stops renewing; once the lease expires another worker claims the job and resumes from
the recorded state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.clock import Clock
from imputehub.db.models import Job
from imputehub.db.session import Database
from imputehub.domain.jobs import Step

logger = logging.getLogger("imputehub.worker")

SUBMIT = Step.SUBMIT.value


# A signal inside the worker, never shown to users: not part of domain/errors.py.
class LeaseLost(Exception):
    """Another worker holds the job now; whatever this worker learnt must be dropped."""


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One job this worker holds, and the step it was claimed for."""

    job_id: str
    step: str
    owner: str


async def claim_due_jobs(
    session: AsyncSession,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    submit_limit: int | None = None,
) -> list[Claim]:
    """Lease up to `limit` due jobs to `owner`, fairly between new and running jobs; the
    caller commits.

    Submits (new jobs; an upload can take long) and the other steps (polls, fetches,
    cancels of jobs the services already run) are claimed apart, each oldest due first: a
    quarter of the batch is kept for submits, the rest goes to the other steps, and what
    either leaves unused goes to submits. So a burst of a thousand new jobs never holds up
    the polls and fetches that finish jobs, and many running jobs never keep new ones
    from being submitted. `submit_limit` caps the submits (the worker's free submit slots).

    On PostgreSQL `FOR UPDATE SKIP LOCKED` lets concurrent workers pass over each other's
    rows instead of waiting or double-claiming; SQLite renders no locking clause and needs
    none, since it runs one write statement at a time.
    """
    submits_allowed = limit if submit_limit is None else max(0, min(limit, submit_limit))
    reserved = min(submits_allowed, max(1, limit // 4))
    submits = await _claim(session, owner, now, lease_seconds, reserved, submits=True)
    others = await _claim(session, owner, now, lease_seconds, limit - len(submits), submits=False)
    room = min(limit - len(submits) - len(others), submits_allowed - len(submits))
    if len(submits) == reserved and room > 0:  # the reserve was used up: more may be due
        submits += await _claim(session, owner, now, lease_seconds, room, submits=True)
    return others + submits


async def _claim(
    session: AsyncSession,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    *,
    submits: bool,
) -> list[Claim]:
    """One statement: lease up to `limit` due submits (or due other steps), oldest first."""
    if limit <= 0:
        return []
    step = Job.next_step == SUBMIT if submits else Job.next_step != SUBMIT
    due = (
        select(Job.id)
        .where(
            Job.next_step.is_not(None),
            step,
            Job.next_run_at <= now,
            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
        )
        .order_by(Job.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Job)
        .where(Job.id.in_(due))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Job.id, Job.next_step, Job.next_run_at)
        .execution_options(synchronize_session=False)
    )
    # RETURNING keeps no order: the oldest due first, as they were chosen.
    rows = sorted(result.all(), key=lambda row: row[2] or now)
    return [
        Claim(job_id=job_id, step=step, owner=owner) for job_id, step, _ in rows if step is not None
    ]


async def lock_leased_job(session: AsyncSession, claim: Claim) -> Job | None:
    """The job, locked for this transaction, if `claim` still holds its lease; else None.

    A no-op UPDATE guarded by the owner takes the row lock (PostgreSQL) or the database
    write lock (SQLite) first, so nobody can take the lease between the check and the
    writes that follow in the same transaction.
    """
    held = await session.scalar(
        update(Job)
        .where(Job.id == claim.job_id, Job.lease_owner == claim.owner)
        .values(lease_owner=claim.owner)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    if held is None:
        return None
    return await session.get(Job, claim.job_id, populate_existing=True)


async def lock_for_step(session: AsyncSession, claim: Claim) -> Job | None:
    """`lock_leased_job`, and the job still waits for the claimed step; else None.

    (A cancel may have changed the job's next step since the claim: the lease is then
    given back, in this transaction, and the step is not run.)
    """
    job = await lock_leased_job(session, claim)
    if job is None:
        return None
    if job.next_step != claim.step:
        release(job)
        return None
    return job


async def renew_lease(session: AsyncSession, claim: Claim, *, until: datetime) -> bool:
    """Extend the lease; False when it is no longer ours."""
    renewed = await session.scalar(
        update(Job)
        .where(Job.id == claim.job_id, Job.lease_owner == claim.owner)
        .values(lease_expires_at=until)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return renewed is not None


def release(job: Job) -> None:
    """Give the job back; it is claimable again once `next_run_at` is due."""
    job.lease_owner = None
    job.lease_expires_at = None


async def give_back(session: AsyncSession, claims: list[Claim]) -> None:
    """Release claims made but not worked on (the worker is stopping); nothing else changes."""
    for claim in claims:
        job = await lock_leased_job(session, claim)
        if job is not None:
            release(job)


@contextlib.asynccontextmanager
async def keep_lease(
    db: Database, claim: Claim, *, clock: Clock, lease_seconds: float
) -> AsyncIterator[None]:
    """Renew the lease every third of its length while the body runs (long downloads)."""

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                async with db.session() as session:
                    until = clock.now() + timedelta(seconds=lease_seconds)
                    if not await renew_lease(session, claim, until=until):
                        return
            except Exception:
                # A database hiccup: the next beat retries; the lease may lapse meanwhile,
                # and then the outcome write will notice and drop the result.
                logger.warning(
                    "could not renew a job lease",
                    exc_info=True,
                    extra={"action": "lease_renew_failed", "job_id": claim.job_id},
                )

    task = asyncio.create_task(heartbeat(), name=f"lease-{claim.job_id}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
