"""Time comes from one place: read `now()` at the edge, pass it down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@dataclass
class Interval:
    """When a chore done at most once per interval in one process is due again."""

    next_at: datetime | None = None

    def due(self, now: datetime, every: timedelta) -> bool:
        """Whether it is due at `now`; if so, the next time is set at once, so a run that
        fails waits for the next interval too."""
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + every
        return True
