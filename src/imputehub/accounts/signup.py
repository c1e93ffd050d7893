"""People making their own accounts, as the hub's sign-up mode allows (operations/hub_settings).

- closed: nobody; admins create accounts.
- open: anyone whose address is at an allowed domain (when domains are set); the account
  opens once its address is verified by the mailed link.
- approval: as open, and then an admin approves (or rejects) the request; the requester is
  told by e-mail. Requests reach admins only with a verified address, so a typo or someone
  else's address never lands in their queue.

Until then the account exists (its username is taken) but cannot sign in. Unverified
requests go after UNVERIFIED_KEEP (the worker's sweep); the mode at verification time
decides whether an admin must approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import account_links, passwords, users
from imputehub.accounts.account_links import Purpose
from imputehub.db.models import User
from imputehub.domain.errors import Conflict, InvalidInput, PermissionDenied
from imputehub.monitoring import audit
from imputehub.operations.hub_settings import HubSettings, SignupMode

UNVERIFIED_KEEP = timedelta(days=7)


class SignupStatus(StrEnum):
    UNVERIFIED = "unverified"  # the mailed link not yet followed
    PENDING = "pending"  # waiting for an admin (approval mode)


@dataclass(frozen=True, kw_only=True)
class SignUp:
    user: User
    token: str  # the verification link's token, for the mail only


async def sign_up(
    session: AsyncSession,
    settings: HubSettings,
    *,
    username: str,
    email: str,
    password: str,
    origin: audit.Origin | None,
    now: datetime,
) -> SignUp:
    if settings.signup_mode is SignupMode.CLOSED:
        raise PermissionDenied(
            "this hub does not take sign-ups; ask its admins for an account",
            code="signup_closed",
        )
    email = email.strip()
    if not email:
        raise InvalidInput("an e-mail address is needed to sign up", field="email")
    passwords.check_password_rules(password)
    # Every check before anything is written: a refused sign-up leaves no row behind.
    if not settings.allows_address(users.check_email(email) or ""):
        raise InvalidInput(
            "sign-ups are open only to addresses at " + ", ".join(settings.signup_domains),
            field="email",
        )
    user = await users.create_user(
        session, username=username, password=password, email=email, now=now
    )
    user.is_active = False
    user.signup_status = SignupStatus.UNVERIFIED.value
    token = await account_links.issue(session, user, Purpose.VERIFY_EMAIL, now=now)
    await audit.record(
        session,
        action="signup_requested",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        details={"username": user.username, "mode": settings.signup_mode.value},
    )
    return SignUp(user=user, token=token)


async def verify_email(
    session: AsyncSession,
    settings: HubSettings,
    token: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> User:
    """Follow a verification link. The account opens (open mode) or waits for an admin."""
    user = await account_links.redeem(session, token, Purpose.VERIFY_EMAIL, now=now)
    user.email_verified_at = now
    if user.signup_status == SignupStatus.UNVERIFIED.value:
        if settings.signup_mode is SignupMode.APPROVAL:
            user.signup_status = SignupStatus.PENDING.value
        else:
            # Open, or closed since the request: an address proven before the door
            # closed still opens the account it was asked for (admins reject in approval).
            _open(user)
    user.updated_at = now
    await audit.record(
        session,
        action="email_verified",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        details={"signup_status": user.signup_status or "active"},
    )
    return user


def _open(user: User) -> None:
    user.signup_status = None
    user.is_active = True


async def pending(session: AsyncSession) -> list[User]:
    """Requests waiting for an admin, oldest first."""
    return list(
        await session.scalars(
            select(User)
            .where(User.signup_status == SignupStatus.PENDING.value)
            .order_by(User.created_at)
        )
    )


async def _request(session: AsyncSession, admin: User, user_id: str) -> User:
    users.require_admin(admin)
    user = await users.get_user(session, user_id)
    if user.signup_status != SignupStatus.PENDING.value:
        raise Conflict(
            f"{user.username} has no sign-up request waiting for approval",
            code="no_signup_request",
        )
    return user


async def approve(
    session: AsyncSession, admin: User, user_id: str, *, origin: audit.Origin | None, now: datetime
) -> User:
    user = await _request(session, admin, user_id)
    _open(user)
    user.updated_at = now
    await audit.record(
        session,
        action="signup_approved",
        actor=admin,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        details={"username": user.username},
    )
    return user


@dataclass(frozen=True, kw_only=True)
class Rejected:
    username: str
    email: str | None


async def reject(
    session: AsyncSession, admin: User, user_id: str, *, origin: audit.Origin | None, now: datetime
) -> Rejected:
    """Refuse a request: the account goes (its username becomes free again)."""
    user = await _request(session, admin, user_id)
    gone = Rejected(username=user.username, email=user.email)
    await audit.record(
        session,
        action="signup_rejected",
        actor=admin,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
        details={"username": user.username},
    )
    await session.delete(user)
    await session.flush()
    return gone


async def sweep_unverified(session: AsyncSession, *, now: datetime) -> int:
    """Requests whose address was never verified, after UNVERIFIED_KEEP."""
    result = await session.execute(
        delete(User).where(
            User.signup_status == SignupStatus.UNVERIFIED.value,
            User.created_at < now - UNVERIFIED_KEEP,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
