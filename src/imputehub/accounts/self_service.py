"""What users do to their own account, with its audit entries: sign in, change the password,
make and revoke personal API tokens. The API routes and the web pages both call these.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import api_tokens, throttle, users
from imputehub.db.models import User
from imputehub.db.session import Database
from imputehub.domain.errors import ImputehubError
from imputehub.monitoring import audit


async def log_in(
    db: Database,
    *,
    username: str,
    password: str,
    origin: audit.Origin,
    now: datetime,
    policy: throttle.Policy,
) -> User:
    """The account behind a username (or its e-mail) and password; every attempt audited."""
    try:
        user = await users.authenticate(
            db,
            username=username,
            password=password,
            address=origin.client_ip,
            now=now,
            policy=policy,
        )
    except ImputehubError as exc:
        # Its own transaction: authenticate's has ended (and the error rolls back ours).
        await audit.record_alone(
            db,
            action="login",
            actor=username,
            now=now,
            target_type="user",
            target_id=username,
            outcome="failure",
            origin=origin,
            details={"reason": exc.code},
        )
        raise
    await audit.record_alone(
        db,
        action="login",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
    )
    return user


async def change_password(
    db: Database,
    session: AsyncSession,
    user: User,
    *,
    current_password: str,
    new_password: str,
    origin: audit.Origin,
    now: datetime,
    policy: throttle.Policy,
) -> User:
    """A new password, given the current one (throttled as logins are). Ends every session
    and personal token the account had; the caller starts a fresh session if it wants one."""
    fields = {"action": "password_changed", "now": now, "target_type": "user"}
    try:
        await users.check_current_password(
            db, user, current_password, address=origin.client_ip, now=now, policy=policy
        )
        await users.change_password(session, user, new_password=new_password, now=now)
    except ImputehubError as exc:
        # Its own transaction: the error rolls back the caller's.
        await audit.record_alone(
            db,
            **fields,
            actor=user,
            target_id=user.id,
            outcome="failure",
            origin=origin,
            details={"reason": exc.code},
        )
        raise
    await audit.record(session, **fields, actor=user, target_id=user.id, origin=origin)
    return user


async def change_email(
    session: AsyncSession, user: User, *, email: str, origin: audit.Origin, now: datetime
) -> User:
    """The user's own e-mail address (empty: none), where the hub's mails go."""
    await users.set_email(session, user, email, now=now)
    # That it changed, not the address: the audit log is read by admins of every account.
    await audit.record(
        session,
        action="email_changed",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
    )
    return user


async def create_token(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    expires_in_days: int | None,
    max_tokens: int,
    origin: audit.Origin,
    now: datetime,
) -> api_tokens.NewToken:
    created = await api_tokens.create_token(
        session, user, name=name, expires_in_days=expires_in_days, max_tokens=max_tokens, now=now
    )
    await audit.record(
        session,
        action="token_created",
        actor=user,
        now=now,
        target_type="api_token",
        target_id=created.record.id,
        origin=origin,
        details={"name": created.record.name},
    )
    return created


async def revoke_token(
    session: AsyncSession, user: User, token_id: str, *, origin: audit.Origin, now: datetime
) -> None:
    await api_tokens.delete_token(session, user, token_id)
    await audit.record(
        session,
        action="token_revoked",
        actor=user,
        now=now,
        target_type="api_token",
        target_id=token_id,
        origin=origin,
    )


def login_policy(login_max_failures: int, login_backoff_max_seconds: int) -> throttle.Policy:
    return throttle.Policy(free_failures=login_max_failures, max_seconds=login_backoff_max_seconds)
