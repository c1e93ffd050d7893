"""A forgotten password: a mailed single-use link (account_links) that sets a new one.

Asking gives the same answer whether or not an account has the address (the mail goes out
after the answer, so neither its content nor its timing tells). Setting the new password
ends every session and personal token of the account, like a password change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import account_links, passwords, users
from imputehub.accounts.account_links import Purpose
from imputehub.db.models import User
from imputehub.domain.errors import Conflict
from imputehub.monitoring import audit

ANSWER = (
    "If an account has that address, a link to set a new password is on its way; "
    f"it works once, within {account_links.describe_lifetime(Purpose.RESET_PASSWORD)}."
)


@dataclass(frozen=True, kw_only=True)
class ResetLink:
    user: User
    token: str


async def request_reset(
    session: AsyncSession, address: str, *, origin: audit.Origin | None, now: datetime
) -> ResetLink | None:
    """A reset link for the active account with this address (or username), if any."""
    address = address.strip()[: users.MAX_EMAIL_LENGTH]
    user = await users.find_for_login(session, address) if address else None
    if user is None or not user.is_active or not user.email:
        return None
    token = await account_links.issue(session, user, Purpose.RESET_PASSWORD, now=now)
    await audit.record(
        session,
        action="password_reset_requested",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
    )
    return ResetLink(user=user, token=token)


async def send_reset(
    session: AsyncSession, admin: User, user_id: str, *, origin: audit.Origin | None, now: datetime
) -> ResetLink:
    """An admin sends a user the reset mail (the admin never sees the link)."""
    users.require_admin(admin)
    user = await users.get_user(session, user_id)
    if not user.email:
        raise Conflict(f"{user.username} has no e-mail address to send a link to", code="no_email")
    if not user.is_active:
        raise Conflict(f"{user.username}'s account is not active", code="inactive_account")
    token = await account_links.issue(session, user, Purpose.RESET_PASSWORD, now=now)
    await audit.record(
        session,
        action="password_reset_sent",
        actor=admin,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
    )
    return ResetLink(user=user, token=token)


async def reset_password(
    session: AsyncSession,
    token: str,
    new_password: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> User:
    passwords.check_password_rules(new_password)
    user = await account_links.redeem(session, token, Purpose.RESET_PASSWORD, now=now)
    await users.set_password(session, user.username, new_password, now=now)
    # The mail reached its owner: the address is theirs.
    user.email_verified_at = user.email_verified_at or now
    await audit.record(
        session,
        action="password_reset",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
    )
    return user
