"""Personal API tokens and resolving a bearer token to its user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from imputehub.accounts import tokens
from imputehub.accounts.caller_cache import CallerCache
from imputehub.db.models import ApiToken, User
from imputehub.domain.errors import AuthenticationRequired, InvalidInput, LimitExceeded, NotFound

MAX_TOKEN_DAYS = 3650
# The API passes IMPUTEHUB_MAX_API_TOKENS_PER_USER; this is its default, for other callers.
DEFAULT_MAX_TOKENS = 20


@dataclass(frozen=True, kw_only=True)
class NewToken:
    record: ApiToken
    token: str  # shown once, never stored


async def create_token(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    now: datetime,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    expires_in_days: int | None = None,
) -> NewToken:
    """A new token for `user`, who may hold at most `max_tokens` unexpired ones."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("token name must be 1-100 characters", field="name")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise InvalidInput(
            f"expires_in_days must be between 1 and {MAX_TOKEN_DAYS}", field="expires_in_days"
        )
    # Expired tokens no longer open anything, so they do not count (and stay listed until
    # deleted). Two requests at once may both pass: the cap bounds growth, it is no quota.
    live = await session.scalar(
        select(func.count())
        .select_from(ApiToken)
        .where(
            ApiToken.user_id == user.id,
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    )
    if (live or 0) >= max_tokens:
        raise LimitExceeded(
            f"you have {max_tokens} API tokens, the most one user may have; delete one first",
            code="too_many_tokens",
            limit=max_tokens,
        )
    plaintext = tokens.new_api_token()
    record = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=tokens.hash_api_token(plaintext),
        prefix=plaintext[:10],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(record)
    await session.flush()
    return NewToken(record=record, token=plaintext)


async def list_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    )
    return list(rows)


async def delete_token(session: AsyncSession, user: User, token_id: str) -> None:
    record = await session.get(ApiToken, token_id)
    if record is None or record.user_id != user.id:
        raise NotFound("no such token")
    await session.delete(record)


async def revoke_all(session: AsyncSession, user: User) -> None:
    """Delete every token of `user` (their password changed)."""
    await session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))


async def resolve_bearer(
    session: AsyncSession, bearer: str, *, secret_key: str, now: datetime
) -> User:
    """The active user a bearer token (JWT access token or API token) stands for."""
    user, _ = await _resolve(session, bearer, secret_key=secret_key, now=now)
    return user


async def resolve_bearer_cached(
    session: AsyncSession, bearer: str, *, secret_key: str, now: datetime, cache: CallerCache
) -> User:
    """`resolve_bearer` for a read: remembered for a few seconds (accounts/caller_cache.py).

    The user comes back attached to `session` (a copy of the remembered one: requests never
    share an instance), so a route uses it as it would a freshly loaded one.
    """
    key = cache.key(bearer)
    entry = cache.get(key, now=now)
    if entry is not None:
        return await session.merge(entry.user, load=False)
    generation = cache.generation()
    user, expires_at = await _resolve(session, bearer, secret_key=secret_key, now=now)
    cache.put(key, _detached_copy(user), expires_at=expires_at, generation=generation)
    return user


def _detached_copy(user: User) -> User:
    copy = User(**{attr.key: getattr(user, attr.key) for attr in inspect(User).column_attrs})
    make_transient_to_detached(copy)
    return copy


async def _resolve(
    session: AsyncSession, bearer: str, *, secret_key: str, now: datetime
) -> tuple[User, datetime | None]:
    """The active user and when the bearer stops working by itself (None: never)."""
    if tokens.looks_like_api_token(bearer):
        # The token and its owner in one round trip: every authenticated request pays it.
        row = (
            await session.execute(
                select(ApiToken, User)
                .outerjoin(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == tokens.hash_api_token(bearer))
            )
        ).first()
        if row is None:
            raise AuthenticationRequired("invalid API token")
        record, owner = row
        user: User | None = owner
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationRequired("API token expired", code="token_expired")
        expires_at = record.expires_at
        # Touch last_used_at at most once a minute to keep reads from becoming writes.
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            record.last_used_at = now
    else:
        claims = tokens.decode_access_token(bearer, secret_key=secret_key, now=now)
        expires_at = claims.expires_at
        user = await session.get(User, claims.user_id)
        if user is not None and user.token_version != claims.token_version:
            raise AuthenticationRequired("session ended; log in again", code="token_revoked")
    if user is None or not user.is_active:
        raise AuthenticationRequired("account not found or deactivated")
    return user, expires_at
