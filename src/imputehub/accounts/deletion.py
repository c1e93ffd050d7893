"""Users deleting their own account, with everything in it.

Asking (with the password) closes the account at once: it cannot sign in, its sessions and
tokens end, its active jobs are cancelled. The rows and bytes go as soon as no job of it is
still active at a service (the cancel must reach the service first, with the account's
credential): at once when nothing was running, else by the worker's next sweep. The audit
log keeps who asked and when; nothing of the account's data.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import throttle, users
from imputehub.db.models import Job, StoredFile, Upload, User
from imputehub.db.session import Database, lock_row
from imputehub.domain.errors import Conflict, ImputehubError
from imputehub.domain.jobs import TERMINAL
from imputehub.files import chunked, retention
from imputehub.jobs.lifecycle import request_cancel
from imputehub.monitoring import audit
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)
_TERMINAL = tuple(status.value for status in TERMINAL)
BATCH = 20


async def request_deletion(
    db: Database,
    session: AsyncSession,
    user: User,
    *,
    password: str,
    origin: audit.Origin,
    now: datetime,
    policy: throttle.Policy,
) -> int:
    """Close the account and cancel its jobs; returns how many jobs are still stopping."""
    try:
        await users.check_current_password(
            db, user, password, address=origin.client_ip, now=now, policy=policy
        )
    except ImputehubError as exc:
        await audit.record_alone(
            db,
            action="account_deletion_requested",
            actor=user,
            now=now,
            target_type="user",
            target_id=user.id,
            outcome="failure",
            origin=origin,
            details={"reason": exc.code},
        )
        raise
    if users.is_admin(user):
        admins = await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == users.Role.ADMIN, User.is_active.is_(True), User.id != user.id)
        )
        if not admins:
            raise Conflict(
                "the hub's only admin cannot delete their account; make another admin first",
                code="last_admin",
            )
    user.is_active = False
    user.deletion_requested_at = now
    user.updated_at = now
    await users.end_sessions_and_tokens(session, user)
    stopping = 0
    for job in await session.scalars(
        select(Job).where(Job.user_id == user.id, Job.status.not_in(_TERMINAL))
    ):
        request_cancel(session, job, now=now)
        stopping += job.status not in _TERMINAL
    await audit.record(
        session,
        action="account_deletion_requested",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        details={"username": user.username, "jobs_stopping": stopping},
    )
    return stopping


async def finish(runtime: Runtime, user_id: str, *, now: datetime) -> bool:
    """Remove an account that asked to go, once none of its jobs is active. Whether it went."""
    async with runtime.db.session() as session:
        await lock_row(session, User, user_id)
        user = await session.get(User, user_id, populate_existing=True)
        if user is None or user.deletion_requested_at is None:
            return user is None
        busy = await session.scalar(
            select(Job.id).where(Job.user_id == user_id, Job.status.not_in(_TERMINAL)).limit(1)
        )
        if busy is not None:
            return False
        keys = list(
            await session.scalars(
                select(StoredFile.storage_key).where(StoredFile.user_id == user_id)
            )
        )
        rows = await session.execute(
            select(Upload.storage_key, Upload.storage_handle).where(
                Upload.user_id == user_id, Upload.file_id.is_(None)
            )
        )
        uploads = [(key, handle) for key, handle in rows.all()]
        job_ids = list(await session.scalars(select(Job.id).where(Job.user_id == user_id)))
        await audit.record(
            session,
            action="account_deleted",
            actor=user.username,
            now=now,
            target_type="user",
            target_id=user.id,
            details={"files": len(keys), "jobs": len(job_ids)},
        )
        await session.delete(user)  # files, jobs, uploads, tokens… go with it (cascade)
    # Bytes only once the rows are gone for good: never a row without its bytes.
    storage = runtime.storage
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            log.exception(
                "could not remove a deleted account's file",
                extra={"action": "account_bytes_delete_failed"},
            )
    for key, handle in uploads:
        try:
            await chunked.free_storage(storage, key, handle)
        except Exception:
            log.exception(
                "could not remove a deleted account's upload",
                extra={"action": "account_bytes_delete_failed"},
            )
    for job_id in job_ids:
        try:
            await retention.discard_fetch_state(storage, job_id)
        except Exception:
            log.exception(
                "could not remove a deleted account's job files",
                extra={"action": "account_bytes_delete_failed", "job_id": job_id},
            )
    log.info("account deleted", extra={"action": "account_deleted", "user_id": user_id})
    return True


async def finish_due(runtime: Runtime, *, now: datetime) -> int:
    """The worker's chore: remove the accounts that asked to go and may now."""
    async with runtime.db.session() as session:
        due = list(
            await session.scalars(
                select(User.id)
                .where(User.deletion_requested_at.is_not(None))
                .order_by(User.deletion_requested_at)
                .limit(BATCH)
            )
        )
    done = 0
    for user_id in due:
        done += await finish(runtime, user_id, now=now)
    return done
