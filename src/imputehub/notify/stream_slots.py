"""How many live event streams each user holds open in this process, within a cap.

A stream holds a connection and polls the database for as long as the client keeps it
open, so one user opening thousands would cost every other user. The count lives in the
process's memory: the cap holds per API process (N processes behind a load balancer let a
user hold up to N times the cap), which bounds what any one process spends on one user.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from imputehub.domain.errors import LimitExceeded


class TooManyStreams(LimitExceeded):
    """The user has as many live event streams open as allowed (HTTP 429)."""

    code = "too_many_streams"


@dataclass(eq=False)
class Lease:
    """One open stream's place; `release` frees it (more calls do nothing)."""

    slots: StreamSlots
    user_id: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots.free(self.user_id)


@dataclass
class StreamSlots:
    """Open streams per user id. One event loop uses it: no lock is needed."""

    open: Counter[str] = field(default_factory=Counter)

    def take(self, user_id: str, *, limit: int) -> Lease:
        """A place for one more stream of `user_id`, or TooManyStreams."""
        if self.open[user_id] >= limit:
            raise TooManyStreams(
                f"you already have {limit} live event streams open, the most allowed "
                "(IMPUTEHUB_MAX_STREAMS_PER_USER); close one before opening another",
                limit=limit,
            )
        self.open[user_id] += 1
        return Lease(slots=self, user_id=user_id)

    def free(self, user_id: str) -> None:
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]
