"""Service slots: how many jobs one account may have at a service at once, and who is next.

A Michigan server runs at most a few jobs per account at a time (Cloudgene's default 2,
TOPMed 3) and refuses more only after reading the whole upload. With a platform credential
every hub user shares that one account, so the hub keeps the jobs beyond the free slots
waiting on its side and hands slots out fairly as jobs finish: round-robin by user (a user's
jobs already at the service count against their turn), then oldest first. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The api_config key an admin sets (and the hub updates when a server says otherwise).
LIMIT_KEY = "max_jobs_per_user"
# What a service allows per account when its api_config does not say; types not listed have
# no limit the hub knows of.
DEFAULT_LIMITS: Mapping[str, int] = {"michigan": 2}


def slot_limit(api_type: str, api_config: Mapping[str, Any]) -> int | None:
    """Jobs one account may have at the service at once; None: no limit known."""
    value = api_config.get(LIMIT_KEY)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_LIMITS.get(api_type)


@dataclass(frozen=True, kw_only=True)
class Waiting:
    """A job waiting in the hub for a slot."""

    job_id: str
    user_id: str
    created_at: datetime


def fair_order(waiting: Iterable[Waiting], held: Mapping[str, int]) -> list[str]:
    """The waiting jobs' ids in the order they get slots.

    A job's turn is the number of its owner's jobs ahead of it: those holding a slot now
    (`held`, by user) plus the owner's older waiting ones. Lower turns go first, the oldest
    first within a turn, so one user's hundred jobs never hold up another user's one.
    """
    seen: dict[str, int] = {}
    ranked: list[tuple[int, datetime, str]] = []
    for job in sorted(waiting, key=lambda w: (w.created_at, w.job_id)):
        turn = held.get(job.user_id, 0) + seen.get(job.user_id, 0)
        seen[job.user_id] = seen.get(job.user_id, 0) + 1
        ranked.append((turn, job.created_at, job.job_id))
    return [job_id for _, _, job_id in sorted(ranked)]


@dataclass(frozen=True, kw_only=True)
class SlotWait:
    """Where a waiting job stands: `place` 1 is next."""

    in_use: int
    limit: int
    place: int

    def message(self, service_name: str) -> str:
        return (
            f"waiting for a free slot at {service_name}: {self.in_use} of {self.limit} in use; "
            f"{ordinal(self.place)} in line"
        )


def standing(order: Sequence[str], job_id: str, *, in_use: int, limit: int) -> SlotWait | None:
    """None when `job_id` may take a slot now, else where it waits."""
    free = max(0, limit - in_use)
    index = order.index(job_id) if job_id in order else len(order)
    if index < free:
        return None
    # The free slots are the jobs ahead's: from this job's place, every slot is taken.
    return SlotWait(in_use=max(in_use, limit), limit=limit, place=index - free + 1)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
