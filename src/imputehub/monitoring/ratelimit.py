"""Rate limits: N requests per client per fixed window, answering 429 with Retry-After.

Login attempts count in the database (MetricCounter rows named `ratelimit:login:<window>`,
never exposed at /metrics) so the limit holds across every API process of a deployment.
Other API calls count in each process's memory: with N processes behind a load balancer a
client may make up to N times the limit, which is what a per-process guard against runaway
clients needs, at no database cost per request. They count per bearer token only once that
token has been seen to work (ApiLimiter); until then, and without credentials, per address.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import MetricCounter
from imputehub.monitoring import counters

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}
LOGIN_PREFIX = "ratelimit:"


@dataclass(frozen=True, kw_only=True)
class Limit:
    count: int  # 0: unlimited
    period: int  # seconds

    @property
    def enabled(self) -> bool:
        return self.count > 0


def parse(text: str) -> Limit:
    """'10/minute' -> Limit(10, 60); '0' (or '0/…') disables."""
    count_text, _, unit = text.strip().partition("/")
    if not count_text.strip().isdigit():
        raise ValueError(f"a rate limit is 'N/second', 'N/minute' or 'N/hour': {text!r}")
    count = int(count_text)
    if count == 0:
        return Limit(count=0, period=1)
    unit = unit.strip().lower().removesuffix("s") or "minute"
    if unit not in _PERIODS:
        raise ValueError(f"a rate limit is 'N/second', 'N/minute' or 'N/hour': {text!r}")
    return Limit(count=count, period=_PERIODS[unit])


@dataclass(frozen=True, kw_only=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window ends (when not allowed)


def _window(limit: Limit, now: datetime) -> tuple[int, int]:
    """The window's number, and whole seconds until it ends (at least 1)."""
    stamp = now.timestamp()
    number = math.floor(stamp / limit.period)
    return number, max(1, math.ceil((number + 1) * limit.period - stamp))


def decide(limit: Limit, used: float, now: datetime) -> Decision:
    """Whether the `used`-th request of this window is within `limit`."""
    _, left = _window(limit, now)
    return Decision(allowed=used <= limit.count, retry_after=left)


class MemoryLimiter:
    """Fixed-window counts in this process's memory, forgotten when their window ends."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._window = -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str, now: datetime) -> Decision:
        number, _ = _window(self.limit, now)
        if number != self._window:
            self._window, self._counts = number, {}
        self._counts[key] = self._counts.get(key, 0) + 1
        return decide(self.limit, self._counts[key], now)


def _worse(first: Decision, second: Decision) -> Decision:
    if first.allowed and second.allowed:
        return first
    refused = [d for d in (first, second) if not d.allowed]
    return Decision(allowed=False, retry_after=max(d.retry_after for d in refused))


class ApiLimiter:
    """API calls per bearer token, and per client address for everything unproven.

    Counting only per token would let a client with a fresh made-up bearer on every request
    never reach a limit. So a bearer counts against its address's budget too until it has
    been answered with anything but 401 (it works); a 401 makes it unproven again. Proven
    bearers are remembered across windows, the most recently used `remember` of them.
    """

    def __init__(self, limit: Limit, *, remember: int = 10_000) -> None:
        self.limit = limit
        self._counts = MemoryLimiter(limit)
        self._remember = remember
        self._proven: OrderedDict[str, None] = OrderedDict()

    def hit(self, authorization: str | None, address: str, now: datetime) -> Decision:
        by_address = f"ip:{address}"
        if not authorization:
            return self._counts.hit(by_address, now)
        key = token_key(authorization)
        decision = self._counts.hit(key, now)
        if key in self._proven:
            self._proven.move_to_end(key)
            return decision
        return _worse(decision, self._counts.hit(by_address, now))

    def answered(self, authorization: str | None, status: int) -> None:
        """Learn from the answer to a request whether its bearer works."""
        if not authorization:
            return
        key = token_key(authorization)
        if status == 401:
            self._proven.pop(key, None)
            return
        self._proven[key] = None
        self._proven.move_to_end(key)
        while len(self._proven) > self._remember:
            self._proven.popitem(last=False)


async def hit_shared(
    session: AsyncSession, scope: str, limit: Limit, key: str, now: datetime
) -> Decision:
    """Count one request of `key` in the database (all processes share it)."""
    number, _ = _window(limit, now)
    name = f"{LOGIN_PREFIX}{scope}:{number}"
    # Past windows are of no further use; dropping them keeps the table small.
    await session.execute(
        delete(MetricCounter).where(
            MetricCounter.name.like(f"{LOGIN_PREFIX}{scope}:%"), MetricCounter.name != name
        )
    )
    used = await counters.increment(session, name, {"client": key})
    return decide(limit, used, now)


def token_key(authorization: str) -> str:
    """A bearer credential's bucket name: a digest, so no token sits in memory twice."""
    return "token:" + hashlib.sha256(authorization.encode()).hexdigest()[:24]
