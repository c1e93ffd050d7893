"""Throttling of password guesses: failures slow their source down, nobody is locked out.

Three counters of recent failures are kept, for the client address, for the account name
(as typed: unknown names count exactly like real ones, so answers never tell them apart)
and for the two together. After `free_failures` failures a counter is in backoff: the
next attempt must wait 1 s, then 2, 4, 8, ... up to `max_seconds`, doubling with each
further failure. While in backoff:

- the address's counter refuses every attempt from that address, right password or not;
- the account's counter refuses only addresses that have themselves failed for that
  account recently. An address that has not failed (the owner at home, while someone
  guesses from elsewhere) is let through to the password check, so guessing at an account
  can never lock its owner out; each guessing address must fail once to be held back.

A success clears the (account, address) counter but neither of the others: logging in to
one's own account between guesses must not reset the guessing budget. A counter without a
failure for `forget_after` starts again from zero.

Attempts are checked before the password is verified and counted after, so concurrent
attempts from one source may all be checked before any is counted; the per-address request
limit (IMPUTEHUB_RATE_LIMIT_LOGIN, monitoring/ratelimit.py) bounds such bursts.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import AuthThrottle
from imputehub.domain.errors import TooManyAttempts

FIRST_DELAY_SECONDS = 1


@dataclass(frozen=True, kw_only=True)
class Policy:
    free_failures: int = 5
    max_seconds: int = 15 * 60
    forget_after: timedelta = timedelta(hours=1)


def backoff_seconds(failures: int, policy: Policy) -> int:
    """How long a source with `failures` recent failures waits before its next attempt."""
    beyond = failures - policy.free_failures
    if beyond <= 0:
        return 0
    # Capped before the shift: a counter in the millions must not build a huge integer.
    return min(FIRST_DELAY_SECONDS << min(beyond - 1, 62), policy.max_seconds)


@dataclass(frozen=True, kw_only=True)
class Source:
    """Who is attempting: the client address and the account name they gave."""

    address: str
    account: str

    def keys(self) -> tuple[str, str, str]:
        """Digests for the address, the account and the pair, in that order."""
        return (
            _digest("address", self.address),
            _digest("account", self.account),
            _digest("pair", f"{self.account}\n{self.address}"),
        )


def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


async def check(session: AsyncSession, source: Source, *, now: datetime, policy: Policy) -> None:
    """Raise TooManyAttempts while `source` must wait; the same answer for every name."""
    address_key, account_key, pair_key = source.keys()
    rows = {
        row.key: row
        for row in await session.scalars(
            select(AuthThrottle).where(AuthThrottle.key.in_(source.keys()))
        )
    }
    waits = [_blocked_for(rows.get(address_key), now)]
    pair = rows.get(pair_key)
    if pair is not None and pair.last_failure_at > now - policy.forget_after:
        waits.append(_blocked_for(rows.get(account_key), now))
    wait = max(waits)
    if wait > 0:
        raise TooManyAttempts(
            f"too many failed password attempts; try again in {wait} seconds", retry_after=wait
        )


def _blocked_for(row: AuthThrottle | None, now: datetime) -> int:
    if row is None or row.blocked_until is None or row.blocked_until <= now:
        return 0
    return max(1, math.ceil((row.blocked_until - now).total_seconds()))


async def record_failure(
    session: AsyncSession, source: Source, *, now: datetime, policy: Policy
) -> None:
    """Count a failed attempt against the address, the account and the pair."""
    address_key, account_key, _ = source.keys()
    stale = now - policy.forget_after
    # Counters long quiet are of no further use; dropping them keeps the table small.
    await session.execute(
        delete(AuthThrottle).where(
            AuthThrottle.last_failure_at < stale,
            or_(AuthThrottle.blocked_until.is_(None), AuthThrottle.blocked_until < now),
        )
    )
    # One upsert, keys in order so concurrent writers lock rows in the same order; the
    # count is bumped in the database so failures in other processes are not lost.
    insert: Any = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    keys = sorted(source.keys())
    statement = insert(AuthThrottle).values(
        [{"key": key, "failures": 1, "last_failure_at": now} for key in keys]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[AuthThrottle.key],
        set_={
            "failures": case(
                (AuthThrottle.last_failure_at < stale, 1), else_=AuthThrottle.failures + 1
            ),
            "last_failure_at": now,
        },
    ).returning(AuthThrottle.key, AuthThrottle.failures)
    counts = {key: int(failures) for key, failures in await session.execute(statement)}
    for key in (address_key, account_key):  # the pair only marks who has failed
        wait = backoff_seconds(counts[key], policy)
        if wait:
            until = now + timedelta(seconds=wait)
            await session.execute(
                update(AuthThrottle)
                .where(
                    AuthThrottle.key == key,
                    or_(AuthThrottle.blocked_until.is_(None), AuthThrottle.blocked_until < until),
                )
                .values(blocked_until=until)
            )


async def record_success(session: AsyncSession, source: Source) -> None:
    """The address knows the account's password: it is no longer held back for it."""
    _, _, pair_key = source.keys()
    await session.execute(delete(AuthThrottle).where(AuthThrottle.key == pair_key))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
