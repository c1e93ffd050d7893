"""Service slots in the database: who holds one, who waits, and waking the next in line.

The rules are in domain/slots.py. A *group* shares one account's slots at one service: the
platform credential's group holds every job submitted with it, whoever owns the job; a user
with their own credential for the service forms a group of their own.

A job holds a slot from the moment its submit intent is recorded until the service is done
with it (fetching results, failing or being cancelled frees it). A job waiting for a slot has
no intent yet. Slot decisions of one group are serialised (`lock_writers`), so two workers
never hand out the same free slot; whenever a job lets its slot go, the jobs next in line
are made due at once (`release`), and a waiting job also looks again every
RECHECK_SECONDS in case a slot was freed some other way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from imputehub.db.models import Job, Service, UserServiceCredential
from imputehub.db.session import lock_writers
from imputehub.domain.jobs import TERMINAL, Step
from imputehub.domain.slots import LIMIT_KEY, SlotWait, Waiting, fair_order, slot_limit, standing

RECHECK_SECONDS = 300.0
USER_SOURCE = "user"  # registry/credentials.USER; not imported to keep this module light
_HOLDING_STEPS = (Step.SUBMIT.value, Step.POLL.value, Step.CANCEL.value)
_TERMINAL = tuple(status.value for status in TERMINAL)


@dataclass(frozen=True, kw_only=True)
class Group:
    service_id: str
    user_id: str | None  # None: the platform credential's group

    @property
    def lock_key(self) -> int:
        digest = hashlib.sha256(f"slots:{self.service_id}:{self.user_id or ''}".encode())
        return int.from_bytes(digest.digest()[:8], "big", signed=True)


def holds_slot(job: Job) -> bool:
    """Whether `job` occupies one of its group's slots at the service."""
    return (
        job.status not in _TERMINAL
        and job.submit_started_at is not None
        and job.next_step in _HOLDING_STEPS
    )


def limit_of(service: Service) -> int | None:
    return slot_limit(service.api_type, service.api_config or {})


async def group_of(session: AsyncSession, job: Job) -> Group:
    """The group whose slots `job` uses (or will use, once submitted)."""
    if job.submit_started_at is not None or job.credential_source is not None:
        # Submitted, or told its credential up front (a self-test uses the platform's).
        own = job.credential_source == USER_SOURCE
    else:
        own = await _has_own_credential(session, job.user_id, job.at_service_id)
    return Group(service_id=job.at_service_id, user_id=job.user_id if own else None)


async def take(
    session: AsyncSession, job: Job, group: Group, *, limit: int | None
) -> SlotWait | None:
    """None when `job` may be submitted now; else where it waits. Call in the transaction
    that records the submit intent: the group stays locked until it commits."""
    if limit is None:
        return None
    await lock_writers(session, group.lock_key, Job)
    return await _standing(session, job, group, limit)


async def describe(session: AsyncSession, job: Job, service: Service) -> SlotWait | None:
    """Where `job` waits for a slot, for showing it; None when it is not waiting for one."""
    limit = limit_of(service)
    if limit is None or job.submit_started_at is not None or job.next_step != Step.SUBMIT.value:
        return None
    if job.status in _TERMINAL:
        return None
    return await _standing(session, job, await group_of(session, job), limit)


async def release(session: AsyncSession, job: Job, *, now: datetime) -> int:
    """`job` let its slot go: make the jobs next in line due now. Returns how many."""
    service = await session.get(Service, job.service_id)
    limit = None if service is None else limit_of(service)
    if limit is None:
        return 0
    group = Group(
        service_id=job.at_service_id,
        user_id=job.user_id if job.credential_source == USER_SOURCE else None,
    )
    await lock_writers(session, group.lock_key, Job)
    in_use, held = await _holders(session, group)
    free = limit - in_use
    if free <= 0:
        return 0
    order = fair_order(await _waiting(session, group), held)
    nexts = order[:free]
    if nexts:
        await session.execute(
            update(Job)
            .where(Job.id.in_(nexts), Job.next_run_at > now)
            .values(next_run_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(nexts)


async def learn_limit(session: AsyncSession, service_id: str, limit: int) -> None:
    """Record the jobs per account a service said it allows (its own answer wins)."""
    service = await session.get(Service, service_id)
    if service is not None:
        service.api_config = {**(service.api_config or {}), LIMIT_KEY: limit}


async def _standing(session: AsyncSession, job: Job, group: Group, limit: int) -> SlotWait | None:
    in_use, held = await _holders(session, group)
    order = fair_order(await _waiting(session, group), held)
    return standing(order, job.id, in_use=in_use, limit=limit)


def _group_jobs(group: Group) -> list[ColumnElement[bool]]:
    return [Job.service_id == group.service_id, Job.status.not_in(_TERMINAL)]


async def _holders(session: AsyncSession, group: Group) -> tuple[int, dict[str, int]]:
    """Slots in use in the group, and how many each user holds."""
    conditions = [
        *_group_jobs(group),
        Job.submit_started_at.is_not(None),
        Job.next_step.in_(_HOLDING_STEPS),
    ]
    if group.user_id is None:
        conditions.append((Job.credential_source != USER_SOURCE) | Job.credential_source.is_(None))
    else:
        conditions += [Job.credential_source == USER_SOURCE, Job.user_id == group.user_id]
    rows = await session.execute(
        select(Job.user_id, func.count()).where(*conditions).group_by(Job.user_id)
    )
    held = {user_id: int(count) for user_id, count in rows.all()}
    return sum(held.values()), held


async def _waiting(session: AsyncSession, group: Group) -> list[Waiting]:
    """The group's jobs that wait to be submitted."""
    conditions: list[Any] = [
        *_group_jobs(group),
        Job.submit_started_at.is_(None),
        Job.next_step == Step.SUBMIT.value,
    ]
    own = exists().where(
        UserServiceCredential.user_id == Job.user_id,
        UserServiceCredential.service_id == group.service_id,
    )
    # A job told its credential up front (credential_source set) waits in that group.
    told = Job.credential_source.is_not(None)
    if group.user_id is None:
        conditions.append((told & (Job.credential_source != USER_SOURCE)) | (~told & ~own))
    else:
        conditions += [
            Job.user_id == group.user_id,
            (Job.credential_source == USER_SOURCE) | (~told & own),
        ]
    rows = await session.execute(select(Job.id, Job.user_id, Job.created_at).where(*conditions))
    return [Waiting(job_id=i, user_id=u, created_at=c) for i, u, c in rows.all()]


async def _has_own_credential(session: AsyncSession, user_id: str, service_id: str) -> bool:
    found = await session.scalar(
        select(UserServiceCredential.id).where(
            UserServiceCredential.user_id == user_id,
            UserServiceCredential.service_id == service_id,
        )
    )
    return found is not None


async def platform_slots_in_use(session: AsyncSession) -> dict[str, int]:
    """Per service, the platform credential's slots in use (the shared account's, which a
    service's limit is about)."""
    rows = await session.execute(
        select(Job.service_id, func.count())
        .where(
            Job.status.not_in(_TERMINAL),
            Job.submit_started_at.is_not(None),
            Job.next_step.in_(_HOLDING_STEPS),
            (Job.credential_source != USER_SOURCE) | Job.credential_source.is_(None),
        )
        .group_by(Job.service_id)
    )
    return {service_id: int(count) for service_id, count in rows.all() if service_id}
