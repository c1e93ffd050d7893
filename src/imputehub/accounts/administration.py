"""What admins do to other accounts, with its audit entries: create a user, edit one (address,
role, active, a new password). The API routes call these; the rules are in users.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import users
from imputehub.db.models import User
from imputehub.monitoring import audit


async def create_account(
    session: AsyncSession,
    admin: User,
    *,
    username: str,
    password: str,
    email: str | None,
    role: str,
    origin: audit.Origin,
    now: datetime,
) -> User:
    users.require_admin(admin)
    user = await users.create_user(
        session, username=username, password=password, email=email, role=role, now=now
    )
    await audit.record(
        session,
        action="user_created",
        actor=admin,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        details={"username": user.username, "role": user.role},
    )
    return user


async def update_account(
    session: AsyncSession,
    admin: User,
    user_id: str,
    *,
    now: datetime,
    origin: audit.Origin,
    fields_set: frozenset[str],
    email: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> User:
    """`fields_set` names the fields the admin actually sent (others stay as they are)."""
    users.require_admin(admin)
    role_before = (await users.get_user(session, user_id)).role
    user = await users.update_user(
        session,
        admin,
        user_id,
        now=now,
        email=email,
        role=role,
        is_active=is_active,
        password=password,
        fields_set=fields_set,
    )
    await audit.record(
        session,
        action="role_changed" if user.role != role_before else "user_updated",
        actor=admin,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        # Names only: never the new password itself.
        details={"fields": sorted(fields_set), "role": user.role, "role_before": role_before},
    )
    return user
