"""Live event streams read from the database: a user's events, or one job's.

Every API process polls the events table (`Event.id > last_sent`) instead of holding events
in memory, so behind a load balancer each process delivers every event, and a client that
reconnects with the last id it saw gets exactly what it missed. Ids are safe to resume from:
event writers commit in id order (see `outbox.py`).

The job stream also reports the job's progress, which moves without events (the service's
own percentage): a message without an id, so it never moves a client's resume point. It ends
once the job is in a final state and every event up to that state has been sent.

Being let in once is not enough: a stream asks again whether its caller may still see what
it streams (`Recheck`: the token, the account, the job) at least every
`events_recheck_seconds`, however busy it is, and ends with a `stream.closed` message
saying why once the answer is no.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from imputehub.db.models import Event, Job
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.domain.notifications import EventKind, describe
from imputehub.runtime import Runtime

logger = logging.getLogger("imputehub.notify")

BATCH = 100
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


# None while the caller may still see the stream, else why not. It is asked again every
# `events_recheck_seconds`: a token revoked, an account deactivated, a job deleted or given
# to someone else must not keep flowing for as long as the connection stays open.
Recheck = Callable[[], Awaitable[Refusal | None]]


async def latest_event_id(runtime: Runtime, user_id: str) -> int:
    async with runtime.db.session() as session:
        found = await session.scalar(select(func.max(Event.id)).where(Event.user_id == user_id))
    return int(found or 0)


async def user_stream(
    runtime: Runtime, user_id: str, *, after: int, recheck: Recheck
) -> AsyncIterator[Message]:
    """The user's events with ids above `after`, as they are committed, until cancelled."""
    ticker = _Ticker(runtime)
    guard = _Guard(runtime, recheck)
    last = after
    while True:
        if refusal := await guard.refusal():
            yield closed(refusal, job_id=None)
            return
        events = await _events(runtime, user_id=user_id, job_id=None, after=last)
        if events is None:
            return
        for event in events:
            if refusal := await guard.refusal():
                yield closed(refusal, job_id=None)
                return
            last = event.id
            yield event_message(event)
        if len(events) == BATCH:
            continue  # more are waiting: no pause
        if await ticker.wait(bool(events)):
            yield KEEP_ALIVE


async def job_stream(
    runtime: Runtime, user_id: str, job_id: str, *, after: int, recheck: Recheck
) -> AsyncIterator[Message]:
    """One job's events above `after` and its progress; ends after its final state."""
    ticker = _Ticker(runtime)
    guard = _Guard(runtime, recheck)
    last = after
    sent_state: tuple[str, float] | None = None
    while True:
        if refusal := await guard.refusal():
            yield closed(refusal, job_id=job_id)
            return
        try:
            # The job first: its events are read afterwards, so a final status seen here
            # has all of its events (written in the same transaction) in the read below.
            async with runtime.db.session() as session:
                job = await session.get(Job, job_id)
        except SQLAlchemyError:
            logger.warning("live stream could not read the job", extra=_log(job_id))
            return
        if job is None:
            yield closed(Refusal(code="not_found", reason="the job was deleted"), job_id=job_id)
            return
        events = await _events(runtime, user_id=user_id, job_id=job_id, after=last)
        if events is None:
            return  # the database is away: the client reconnects
        for event in events:
            if refusal := await guard.refusal():
                yield closed(refusal, job_id=job_id)
                return
            last = event.id
            yield event_message(event)
        if len(events) == BATCH:
            continue
        state = (job.status, float(job.progress))
        moved = state != sent_state
        if moved:
            sent_state = state
            yield Message(
                event=PROGRESS,
                data={
                    "kind": PROGRESS,
                    "job_id": job.id,
                    "created_at": None,
                    "payload": {
                        "job_id": job.id,
                        "job_name": job.name,
                        "status": job.status,
                        "progress": float(job.progress),
                    },
                },
            )
        if JobStatus(job.status) in TERMINAL:
            return
        if await ticker.wait(bool(events) or moved):
            yield KEEP_ALIVE


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


async def _events(
    runtime: Runtime, *, user_id: str, job_id: str | None, after: int
) -> list[Event] | None:
    query = select(Event).where(Event.user_id == user_id, Event.id > after)
    if job_id is not None:
        query = query.where(Event.job_id == job_id)
    try:
        async with runtime.db.session() as session:
            return list(await session.scalars(query.order_by(Event.id).limit(BATCH)))
    except SQLAlchemyError:
        logger.warning("live stream could not read events", extra=_log(job_id))
        return None


def _log(job_id: str | None) -> dict[str, Any]:
    return {"action": "live_stream_failed", "job_id": job_id}


class _Ticker:
    """Sleeps one poll interval; says when a keep-alive is due (nothing sent for a while)."""

    def __init__(self, runtime: Runtime) -> None:
        self.poll = runtime.settings.events_poll_seconds
        self.keep_alive = runtime.settings.events_keepalive_seconds
        self.loop = asyncio.get_running_loop()
        self.quiet_since = self.loop.time()

    async def wait(self, sent: bool) -> bool:
        if sent:
            self.quiet_since = self.loop.time()
        await asyncio.sleep(self.poll)
        if self.loop.time() - self.quiet_since >= self.keep_alive:
            self.quiet_since = self.loop.time()
            return True
        return False


class _Guard:
    """Asks `recheck` again once `events_recheck_seconds` have passed since it last did."""

    def __init__(self, runtime: Runtime, recheck: Recheck) -> None:
        self.recheck = recheck
        self.every = runtime.settings.events_recheck_seconds
        self.loop = asyncio.get_running_loop()
        # The route let the caller in just now.
        self.checked = self.loop.time()

    async def refusal(self) -> Refusal | None:
        if self.loop.time() - self.checked < self.every:
            return None
        found = await self.recheck()
        self.checked = self.loop.time()
        return found
