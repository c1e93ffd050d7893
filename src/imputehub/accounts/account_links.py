"""Single-use links mailed to an account's address: verify the address, set a new password.

A link carries 256 random bits; the database keeps only their SHA-256, so a copy of the
database opens nothing, and the row is what makes the link single-use and expiring (a
stateless signed link could not be used only once). Using a password-reset link ends every
other reset link of the account.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import AccountLink, User
from imputehub.db.session import lock_row
from imputehub.domain.errors import Gone, InvalidInput

MAX_TOKEN_LENGTH = 100  # what a link may carry; longer is not one of ours


class Purpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password


LIFETIMES = {
    Purpose.VERIFY_EMAIL: timedelta(hours=24),
    Purpose.RESET_PASSWORD: timedelta(minutes=30),
}
# Used and expired links are kept this long (an answer better than "not valid"), then go.
KEEP_AFTER_EXPIRY = timedelta(days=7)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def describe_lifetime(purpose: Purpose) -> str:
    minutes = int(LIFETIMES[purpose].total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes % 60 == 0 else f"{minutes} minutes"


async def issue(session: AsyncSession, user: User, purpose: Purpose, *, now: datetime) -> str:
    """A new link's token (shown only in the mail)."""
    token = secrets.token_urlsafe(32)
    session.add(
        AccountLink(
            id=_hash(token),
            user_id=user.id,
            purpose=purpose.value,
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    await session.flush()
    return token


async def redeem(session: AsyncSession, token: str, purpose: Purpose, *, now: datetime) -> User:
    """The account a link is for, marking it used; refused when unknown, used or expired."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidInput("this link is not valid; ask for a new one", field="token")
    key = _hash(token)
    await lock_row(session, AccountLink, key)
    link = await session.get(AccountLink, key, populate_existing=True)
    if link is None or link.purpose != purpose.value:
        raise Gone("this link is not valid; ask for a new one", code="link_invalid")
    if link.used_at is not None:
        raise Gone("this link was used already; ask for a new one", code="link_used")
    if link.expires_at <= now:
        raise Gone(
            f"this link has expired (links last {describe_lifetime(purpose)}); ask for a new one",
            code="link_expired",
        )
    user = await session.get(User, link.user_id)
    if user is None:  # the account went meanwhile (cascade makes this rare)
        raise Gone("this link is not valid; ask for a new one", code="link_invalid")
    link.used_at = now
    if purpose is Purpose.RESET_PASSWORD:
        await session.execute(
            update(AccountLink)
            .where(
                AccountLink.user_id == user.id,
                AccountLink.purpose == purpose.value,
                AccountLink.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
    await session.flush()
    return user


async def sweep(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(AccountLink).where(AccountLink.expires_at < now - KEEP_AFTER_EXPIRY)
    )
    return int(getattr(result, "rowcount", 0) or 0)
