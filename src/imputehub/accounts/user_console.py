"""What the admin console shows about one account beside its record: the account's state
in words, and its jobs (newest first, with their service's name).

Admins only: the owner sees their own jobs through jobs/queries.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import AccountState, get_user, require_admin
from imputehub.db.models import Job, Service, User
from imputehub.domain.errors import InvalidInput

MAX_JOBS = 100


def state_of(user: User) -> AccountState:
    """The one state an account is in, as the console's filter names them (a deletion on
    its way wins over the rest; a sign-up not yet open says where it stands)."""
    if user.deletion_requested_at is not None:
        return AccountState.DELETING
    if user.signup_status is not None:
        return AccountState(user.signup_status)
    return AccountState.ACTIVE if user.is_active else AccountState.INACTIVE


@dataclass(frozen=True, kw_only=True)
class UserJob:
    job: Job
    service_name: str


@dataclass(frozen=True, kw_only=True)
class UserJobs:
    user: User
    items: Sequence[UserJob]
    total: int
    limit: int
    offset: int


async def user_jobs(
    session: AsyncSession, admin: User, user_id: str, *, limit: int = 20, offset: int = 0
) -> UserJobs:
    """A page of the account's jobs, newest first; NotFound if there is no such account."""
    require_admin(admin)
    if not 1 <= limit <= MAX_JOBS:
        raise InvalidInput(f"limit must be between 1 and {MAX_JOBS}", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    user = await get_user(session, user_id)
    owned = Job.user_id == user.id
    total = int(await session.scalar(select(func.count()).select_from(Job).where(owned)) or 0)
    rows = await session.execute(
        select(Job, Service.name)
        .join(Service, Service.id == Job.service_id)
        .where(owned)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    items = [UserJob(job=job, service_name=name) for job, name in rows]
    return UserJobs(user=user, items=items, total=total, limit=limit, offset=offset)
