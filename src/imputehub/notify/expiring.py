"""A worker chore: credentials that expire within a week become `credential.expiring` events.

A user's own credential (`UserServiceCredential.expires_at`) tells its owner; the platform
credential of a service (`Service.credential_expires_at`) tells every active admin. One event
per credential, recipient and expiry date: renewing a credential (a new expiry date) gives a
new notice later, running the chore again gives none. Several workers may run it at once;
the events' unique `dedupe_key` decides, and the loser's insert is undone in a savepoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.clock import Interval
from imputehub.db.models import Event, Service, User, UserServiceCredential
from imputehub.notify import outbox
from imputehub.runtime import Runtime

WINDOW = timedelta(days=7)
# Expiry dates move rarely; looking every few minutes is plenty.
INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class Expiring:
    user_id: str
    service_id: str
    service_name: str
    scope: str  # "user" or "platform"
    expires_at: datetime

    @property
    def dedupe_key(self) -> str:
        return outbox.credential_dedupe_key(
            self.scope, self.user_id, self.service_id, self.expires_at
        )


async def announce_expiring(runtime: Runtime) -> int:
    """Write the events not written yet; how many were written."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        found = await expiring_credentials(session, now=now)
        if not found:
            return 0
        known = set(
            await session.scalars(
                select(Event.dedupe_key).where(Event.dedupe_key.in_([f.dedupe_key for f in found]))
            )
        )
        written = 0
        for item in found:
            if item.dedupe_key in known:
                continue
            if await _write_once(session, item, now=now):
                written += 1
    return written


async def expiring_credentials(session: AsyncSession, *, now: datetime) -> list[Expiring]:
    """Credentials, with who must hear of them, that expire after `now` and within a week."""
    soon = now + WINDOW
    found = [
        Expiring(
            user_id=cred.user_id,
            service_id=service.id,
            service_name=service.name,
            scope="user",
            expires_at=cred.expires_at,
        )
        for cred, service in (
            await session.execute(
                select(UserServiceCredential, Service)
                .join(Service, Service.id == UserServiceCredential.service_id)
                .join(User, User.id == UserServiceCredential.user_id)
                .where(
                    UserServiceCredential.expires_at > now,
                    UserServiceCredential.expires_at <= soon,
                    User.is_active.is_(True),
                )
                .order_by(UserServiceCredential.expires_at)
            )
        ).all()
        if cred.expires_at is not None
    ]
    services = list(
        await session.scalars(
            select(Service)
            .where(
                Service.credential_encrypted.is_not(None),
                Service.credential_expires_at > now,
                Service.credential_expires_at <= soon,
            )
            .order_by(Service.credential_expires_at)
        )
    )
    if services:
        admins = list(
            await session.scalars(
                select(User.id).where(User.role == "admin", User.is_active.is_(True))
            )
        )
        found.extend(
            Expiring(
                user_id=admin_id,
                service_id=service.id,
                service_name=service.name,
                scope="platform",
                expires_at=service.credential_expires_at,
            )
            for service in services
            if service.credential_expires_at is not None
            for admin_id in admins
        )
    return found


async def _write_once(session: AsyncSession, item: Expiring, *, now: datetime) -> bool:
    try:
        async with session.begin_nested():
            outbox.credential_expiring(
                session,
                user_id=item.user_id,
                service_id=item.service_id,
                service_name=item.service_name,
                scope=item.scope,
                expires_at=item.expires_at,
                now=now,
            )
    except IntegrityError:
        return False  # another worker wrote it a moment ago
    return True


@dataclass
class ExpiringTimer:
    """Runs `announce_expiring` at most once per INTERVAL in one worker process."""

    runtime: Runtime
    interval: Interval = field(default_factory=Interval)

    async def run_if_due(self, now: datetime) -> int | None:
        if not self.interval.due(now, INTERVAL):
            return None
        return await announce_expiring(self.runtime)
