"""Browser sessions for the web pages: a random cookie, its SHA-256 stored, and a CSRF token.

The REST API stays bearer-only; a cookie opens the pages (web/) and nothing under /api/.
A session ends at sign-out, after `idle` without a request, at an absolute limit after
sign-in, or when the user's token_version moves on (password change or reset, account
deactivated), which also ends their access tokens.

CSRF: every state-changing request from a page carries a token derived from the session
(HMAC of the session's id under the hub's secret key), in a form field or a header. It needs
no storage, changes with each session, and cannot be computed from the cookie alone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import BrowserSession, User
from imputehub.domain.errors import AuthenticationRequired, PermissionDenied

# A request refreshes last_seen_at at most this often: not one write per page view.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True)
class Lifetime:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True, kw_only=True)
class OpenSession:
    user: User
    session_id: str  # the stored SHA-256, never the cookie itself
    csrf_token: str


def _hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def csrf_token(session_id: str, *, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def check_csrf(opened: OpenSession, presented: str | None) -> None:
    """Refuse a state-changing request whose CSRF token is missing or not this session's."""
    if not presented or not hmac.compare_digest(presented, opened.csrf_token):
        raise PermissionDenied(
            "this form has expired or came from another site; reload the page and try again",
            code="csrf_failed",
        )


async def start(
    session: AsyncSession, user: User, *, now: datetime, lifetime: Lifetime
) -> tuple[str, BrowserSession]:
    """A new session for `user`: the cookie value (shown to the browser once) and its row."""
    cookie = secrets.token_urlsafe(32)
    record = BrowserSession(
        id=_hash(cookie),
        user_id=user.id,
        token_version=user.token_version,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime.absolute,
    )
    session.add(record)
    # Ended sessions go as new ones start: the table stays the size of who is signed in.
    await session.execute(
        delete(BrowserSession).where(
            BrowserSession.user_id == user.id,
            BrowserSession.expires_at <= now,
        )
    )
    await session.flush()
    return cookie, record


async def resolve(
    session: AsyncSession,
    cookie: str | None,
    *,
    now: datetime,
    lifetime: Lifetime,
    secret_key: str,
    active: bool = True,
) -> OpenSession:
    """The signed-in user behind a session cookie, or AuthenticationRequired.

    `active`: the request is the user's doing and keeps the session from idling out. A live
    stream checking itself again is not (an open tab alone must not keep a session alive).
    """
    if not cookie or len(cookie) > 200:
        raise AuthenticationRequired("sign in first", code="not_signed_in")
    row = await session.get(BrowserSession, _hash(cookie))
    if row is None:
        raise AuthenticationRequired("sign in first", code="not_signed_in")
    user = await session.get(User, row.user_id)
    ended = (
        user is None
        or not user.is_active
        or user.token_version != row.token_version
        or row.expires_at <= now
        or row.last_seen_at + lifetime.idle <= now
    )
    if ended:
        await session.delete(row)
        await session.flush()
        raise AuthenticationRequired(
            "your session has ended; sign in again", code="session_expired"
        )
    assert user is not None
    if active and now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        await session.flush()
    return OpenSession(
        user=user, session_id=row.id, csrf_token=csrf_token(row.id, secret_key=secret_key)
    )


async def end(session: AsyncSession, cookie: str | None) -> None:
    """Sign out: the session is gone, whatever state it was in."""
    if cookie and len(cookie) <= 200:
        await session.execute(delete(BrowserSession).where(BrowserSession.id == _hash(cookie)))


async def end_all(session: AsyncSession, user: User) -> None:
    await session.execute(delete(BrowserSession).where(BrowserSession.user_id == user.id))


async def sweep(session: AsyncSession, *, now: datetime, lifetime: Lifetime) -> int:
    """Delete sessions past their absolute or idle limit (a worker chore)."""
    result = await session.execute(
        delete(BrowserSession).where(
            (BrowserSession.expires_at <= now)
            | (BrowserSession.last_seen_at <= now - lifetime.idle)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def lifetime_of(idle_minutes: int, max_hours: int) -> Lifetime:
    return Lifetime(idle=timedelta(minutes=idle_minutes), absolute=timedelta(hours=max_hours))
