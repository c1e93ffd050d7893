"""What a live event stream sends: messages built from events, refusals, keep-alives.

Apart from `live.py` so that the per-process feed (`event_feed.py`), which builds each
event's message once for all its subscribers, shares them without an import cycle.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from imputehub.db.models import Event
from imputehub.domain.notifications import EventKind, describe

PROGRESS = "job.progress"
CLOSED = "stream.closed"


@dataclass(frozen=True, kw_only=True)
class Message:
    """One server-sent event; `id` None for messages a client need not resume from."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


# Yielded when nothing happened for a keep-alive interval: the route sends a comment.
KEEP_ALIVE = Message(event="")


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """Why a stream may not go on: a stable code and words for people."""

    code: str
    reason: str


def closed(refusal: Refusal, *, job_id: str | None) -> Message:
    """The last message of a stream its caller may no longer see (no id: not a resume point)."""
    return Message(
        event=CLOSED,
        data={
            "kind": CLOSED,
            "job_id": job_id,
            "created_at": None,
            "payload": {"code": refusal.code, "reason": refusal.reason},
        },
    )


def event_message(event: Event) -> Message:
    data: dict[str, Any] = {
        "kind": event.kind,
        "job_id": event.job_id,
        "created_at": event.created_at.isoformat(),
        "payload": event.payload,
    }
    # A kind this version does not know is sent without words.
    with contextlib.suppress(ValueError):
        data["title"], data["body"] = describe(EventKind(event.kind), event.payload)
    return Message(id=event.id, event=event.kind, data=data)
