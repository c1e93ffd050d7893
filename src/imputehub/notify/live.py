"""Live event streams read from the database: a user's events, or one job's.

Every API process reads the events table (`Event.id > last`) instead of holding events in
memory, so behind a load balancer each process delivers every event, and a client that
reconnects with the last id it saw gets exactly what it missed. Ids are safe to resume from:
event writers commit in id order (see `outbox.py`). One reader per process serves every
stream (`event_feed.py`): a stream reads the database itself only for its backlog (what
lies before its resume point) or after it fell behind.

The job stream also reports the job's progress, which moves without events (the service's
own percentage): a message without an id, so it never moves a client's resume point. It ends
once the job is in a final state and every event up to that state has been sent.

Being let in once is not enough: a stream asks again whether its caller may still see what
it streams (`Recheck`: the token, the account, the job) at least every
`events_recheck_seconds`, however busy it is, and ends with a `stream.closed` message
saying why once the answer is no. The feed runs the rechecks that fall due together (one
transaction per tick, one check per caller); a stream whose check is overdue (the feed
could not keep up) runs its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Hashable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from imputehub.db.models import Event, Job
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.notify.event_feed import Check, EventFeed, JobState, Subscription
from imputehub.notify.live_messages import (
    CLOSED,
    KEEP_ALIVE,
    PROGRESS,
    Message,
    Refusal,
    closed,
    event_message,
)
from imputehub.runtime import Runtime

__all__ = [
    "CLOSED",
    "KEEP_ALIVE",
    "PROGRESS",
    "Message",
    "Recheck",
    "Refusal",
    "closed",
    "event_message",
    "job_stream",
    "latest_event_id",
    "user_stream",
]

logger = logging.getLogger("imputehub.notify")

BATCH = 100  # events a stream reads at once from its own backlog

# None while the caller may still see the stream, else why not. It is asked again every
# `events_recheck_seconds`: a token revoked, an account deactivated, a job deleted or given
# to someone else must not keep flowing for as long as the connection stays open.
Recheck = Check


def feed(runtime: Runtime) -> EventFeed:
    """The process's event feed, made on first use; `Runtime.close` stops it."""
    if runtime.live_feed is None:
        runtime.live_feed = EventFeed(
            runtime.db,
            poll_seconds=runtime.settings.events_poll_seconds,
            recheck_seconds=runtime.settings.events_recheck_seconds,
        )
    return runtime.live_feed


async def latest_event_id(runtime: Runtime, user_id: str) -> int:
    async with runtime.db.session() as session:
        found = await session.scalar(select(func.max(Event.id)).where(Event.user_id == user_id))
    return int(found or 0)


def user_stream(
    runtime: Runtime, user_id: str, *, after: int, recheck: Recheck, key: Hashable
) -> AsyncGenerator[Message]:
    """The user's events with ids above `after`, as they are committed, until closed."""
    return _stream(runtime, user_id, None, after=after, recheck=recheck, key=key)


def job_stream(
    runtime: Runtime,
    user_id: str,
    job_id: str,
    *,
    after: int,
    recheck: Recheck,
    key: Hashable,
) -> AsyncGenerator[Message]:
    """One job's events above `after` and its progress; ends after its final state."""
    return _stream(runtime, user_id, job_id, after=after, recheck=recheck, key=key)


async def _stream(
    runtime: Runtime,
    user_id: str,
    job_id: str | None,
    *,
    after: int,
    recheck: Recheck,
    key: Hashable,
) -> AsyncGenerator[Message]:
    shared = feed(runtime)
    try:
        sub = await shared.join(user_id, job_id=job_id, key=key, check=recheck)
    except SQLAlchemyError:
        logger.warning("live stream could not start", extra=_log(job_id))
        return
    try:
        # Closed with this stream (not whenever it is collected): the feed forgets it now.
        async with contextlib.aclosing(_follow(runtime, sub, after=after)) as messages:
            async for message in messages:
                yield message
    finally:
        shared.leave(sub)


async def _follow(runtime: Runtime, sub: Subscription, *, after: int) -> AsyncGenerator[Message]:
    settings = runtime.settings
    loop = asyncio.get_running_loop()
    job_id = sub.job_id
    last = after
    # Below the feed's cursor when joining: this stream's backlog, read by itself.
    backlog = after < sub.joined_at
    if job_id is not None and sub.state is None:
        # The job first, then its backlog: a final state read here has all its events there.
        try:
            async with runtime.db.session() as session:
                job = await session.get(Job, job_id)
        except SQLAlchemyError:
            logger.warning("live stream could not read the job", extra=_log(job_id))
            return
        if sub.state is None:  # the feed's, if it came meanwhile, is newer
            sub.state = (
                JobState(id=job_id, deleted=True)
                if job is None
                else JobState(
                    id=job.id, name=job.name, status=job.status, progress=float(job.progress)
                )
            )
    sent_state: JobState | None = None
    quiet_since = loop.time()

    # The feed rechecks a tick before the interval ends; a stream whose recheck is a tick
    # late (the feed stalled) does it itself: at worst every recheck + poll seconds, as a
    # stream polling for itself used to.
    overdue = settings.events_recheck_seconds + settings.events_poll_seconds

    async def refusal() -> Refusal | None:
        if sub.refusal is None and loop.time() - sub.checked_at >= overdue:
            sub.refusal = await _own_recheck(runtime, sub)
            sub.checked_at = loop.time()
        return sub.refusal

    while True:
        sub.wake.clear()  # whatever the feed hands over from here on wakes this stream
        if sub.stopping:
            return
        if found := await refusal():
            yield closed(found, job_id=job_id)
            return
        if sub.behind:  # fell behind: its queue was emptied, the database has it all
            sub.behind = False
            backlog = True
        if backlog:
            events = await _events(runtime, sub, after=last)
            if events is None:
                return  # the database is away: the client reconnects
            for message in events:
                if found := await refusal():
                    yield closed(found, job_id=job_id)
                    return
                last = message.id or last
                yield message
            quiet_since = loop.time()
            if len(events) == BATCH:
                continue  # more are waiting: no pause
            backlog = False
        while sub.pending and not sub.behind:
            message = sub.pending.popleft()
            if message.id is None or message.id <= last:
                continue  # already read from the backlog
            if found := await refusal():
                yield closed(found, job_id=job_id)
                return
            last = message.id
            quiet_since = loop.time()
            yield message
        if sub.behind:
            continue
        state = sub.state
        if job_id is not None and state is not None:
            # Every event handed over before this state has been sent (see event_feed.py).
            if state.deleted:
                yield closed(Refusal(code="not_found", reason="the job was deleted"), job_id=job_id)
                return
            if state != sent_state:
                sent_state = state
                quiet_since = loop.time()
                yield _progress(state)
            if JobStatus(state.status) in TERMINAL:
                return
        # Asleep until the feed hands something over, a keep-alive or a recheck falls due.
        now = loop.time()
        keep_alive_at = quiet_since + settings.events_keepalive_seconds
        overdue_at = sub.checked_at + overdue
        timeout = max(0.0, min(keep_alive_at, overdue_at) - now)
        try:
            async with asyncio.timeout(timeout):
                await sub.wake.wait()
        except TimeoutError:
            if loop.time() >= keep_alive_at:
                quiet_since = loop.time()
                yield KEEP_ALIVE


def _progress(state: JobState) -> Message:
    return Message(
        event=PROGRESS,
        data={
            "kind": PROGRESS,
            "job_id": state.id,
            "created_at": None,
            "payload": {
                "job_id": state.id,
                "job_name": state.name,
                "status": state.status,
                "progress": state.progress,
            },
        },
    )


async def _own_recheck(runtime: Runtime, sub: Subscription) -> Refusal | None:
    try:
        async with runtime.db.session() as session:
            return await sub.check(session)
    except SQLAlchemyError:
        return Refusal(code="unavailable", reason="could not check access; reconnect")


async def _events(runtime: Runtime, sub: Subscription, *, after: int) -> list[Message] | None:
    query = select(Event).where(Event.user_id == sub.user_id, Event.id > after)
    if sub.job_id is not None:
        query = query.where(Event.job_id == sub.job_id)
    try:
        async with runtime.db.session() as session:
            rows = await session.scalars(query.order_by(Event.id).limit(BATCH))
            return [event_message(event) for event in rows]
    except SQLAlchemyError:
        logger.warning("live stream could not read events", extra=_log(sub.job_id))
        return None


def _log(job_id: str | None) -> dict[str, Any]:
    return {"action": "live_stream_failed", "job_id": job_id}
