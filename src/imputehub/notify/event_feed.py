"""One reader of the events table per process, shared by every live stream it serves.

A stream used to poll the database itself: 1,000 open streams were 1,000 queries per poll
interval, plus their callers' rechecks. The feed reads `Event.id > cursor` once per tick for
all of them and hands each subscriber the events of its user (or job) through a bounded
queue; the progress of every watched job is read in one query per tick as well, and the
rechecks that fall due are run together in one transaction, once per distinct caller.

Exactness (`Last-Event-ID`) holds because event ids become visible in commit order
(`outbox.py`): everything at or below the feed's cursor has been read, everything above it
will be handed to the subscribers registered at that moment. A subscriber therefore reads
from the database itself only what lies below the cursor when it joins (its resume point's
backlog), or again after its queue overflowed (it fell behind: the queue was emptied and it
re-reads from its last id) — memory stays bounded whatever a slow client does.

A job state handed out in a tick was read before that tick's events, so once a subscriber
has taken every event handed to it, a final state it sees has all of its events delivered.

Started by the first subscriber; it stops reading while nobody listens (and forgets its
cursor: the next subscriber starts it from the newest event) and ends with the runtime.
Behind a load balancer every process runs its own feed, so each delivers every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Event, Job
from imputehub.db.session import Database
from imputehub.notify.live_messages import Message, Refusal, event_message

logger = logging.getLogger("imputehub.notify")

BATCH = 500  # events read per query; the feed reads on at once while batches come full
JOBS_PER_QUERY = 500  # ids in one `IN (...)`: well inside every database's parameter limit
QUEUE_LIMIT = 1000  # messages waiting per subscriber before it must re-read for itself

# None while the caller may still see the stream, else why not; given a session shared with
# the other rechecks due in the same tick.
Check = Callable[[AsyncSession], Awaitable[Refusal | None]]


@dataclass(frozen=True, kw_only=True)
class JobState:
    """What a job stream reports as progress; `deleted` once the job is gone."""

    id: str
    name: str = ""
    status: str = ""
    progress: float = 0.0
    deleted: bool = False


@dataclass(eq=False, kw_only=True)
class Subscription:
    """One stream's place at the feed: what it is handed, and what it must do itself."""

    user_id: str
    job_id: str | None
    key: Hashable  # streams with equal keys share one recheck (same caller, same job)
    check: Check
    joined_at: int  # the feed's cursor when it joined: ids at or below come from the database
    checked_at: float  # loop time of the last recheck
    pending: deque[Message] = field(default_factory=deque)
    behind: bool = False  # the queue overflowed and was emptied: re-read from the database
    state: JobState | None = None
    refusal: Refusal | None = None
    # The server is stopping: the stream ends without a closing message, so its client
    # reconnects (to this hub once restarted, or another process) from its last event id.
    stopping: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def _hand(self, message: Message, limit: int) -> None:
        if self.behind:
            return
        if len(self.pending) >= limit:
            self.behind = True
            self.pending.clear()
        else:
            self.pending.append(message)
        self.wake.set()


class EventFeed:
    """The process's one reader of new events (and of watched jobs' progress)."""

    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float,
        recheck_seconds: float,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.db = db
        self.queue_limit = queue_limit
        self.poll = poll_seconds
        self.recheck_every = recheck_seconds
        self.cursor: int | None = None  # None while nobody listens
        self.by_user: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return sum(len(subs) for subs in self.by_user.values())

    async def join(
        self, user_id: str, *, job_id: str | None, key: Hashable, check: Check
    ) -> Subscription:
        """A new subscriber; the caller was checked just now. May raise SQLAlchemyError."""
        if self._closed:
            raise RuntimeError("the event feed is closed")
        async with self._starting:
            if self.cursor is None:
                self.cursor = await self._newest()
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="imputehub-event-feed")
        # No await from reading the cursor to registering: nothing handed out in between.
        sub = Subscription(
            user_id=user_id,
            job_id=job_id,
            key=key,
            check=check,
            joined_at=self.cursor,
            checked_at=asyncio.get_running_loop().time(),
        )
        self.by_user.setdefault(user_id, set()).add(sub)
        return sub

    def leave(self, sub: Subscription) -> None:
        subs = self.by_user.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.by_user[sub.user_id]

    def end_streams(self) -> None:
        """End every open stream now (the server is shutting down): an open stream never
        ends by itself, and the server waits for every response to end before it stops."""
        for subs in self.by_user.values():
            for sub in subs:
                sub.stopping = True
                sub.wake.set()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _newest(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.max(Event.id))) or 0)

    async def _run(self) -> None:
        while True:
            # Sleep first: a subscriber reads what came before it joined for itself.
            await asyncio.sleep(self.poll)
            if not self.by_user:
                self.cursor = None  # the next subscriber starts from the newest event
            else:
                try:
                    await self.tick()
                except SQLAlchemyError:
                    # The streams keep their connections; the next tick tries again.
                    logger.warning("live event feed could not read", extra=_FAILED)
                except Exception:
                    # Anything else must not end the one task every stream depends on.
                    logger.exception("live event feed tick failed", extra=_FAILED)

    async def tick(self) -> None:
        """Read once for everyone: watched jobs, then new events, then due rechecks."""
        watched = sorted({s.job_id for s in self._all() if s.job_id is not None})
        # Jobs before events: a final state read here has its events in the reads below.
        states = await self._job_states(watched) if watched else {}
        while self.by_user and self.cursor is not None:
            async with self.db.session() as session:
                rows = list(
                    await session.scalars(
                        select(Event).where(Event.id > self.cursor).order_by(Event.id).limit(BATCH)
                    )
                )
            for event in rows:
                self._dispatch(event)
            if rows:
                self.cursor = rows[-1].id
            if len(rows) < BATCH:
                break
        for sub in self._all():
            if sub.job_id is not None and sub.job_id in watched:
                sub.state = states.get(sub.job_id) or JobState(id=sub.job_id, deleted=True)
                sub.wake.set()
        await self._recheck_due()

    def _dispatch(self, event: Event) -> None:
        subs = self.by_user.get(event.user_id)
        if not subs:
            return
        message = event_message(event)  # built once, shared by every subscriber
        for sub in subs:
            if sub.job_id is None or sub.job_id == event.job_id:
                sub._hand(message, self.queue_limit)

    async def _job_states(self, job_ids: list[str]) -> dict[str, JobState]:
        found: dict[str, JobState] = {}
        async with self.db.session() as session:
            for start in range(0, len(job_ids), JOBS_PER_QUERY):
                chunk = job_ids[start : start + JOBS_PER_QUERY]
                rows = await session.execute(
                    select(Job.id, Job.name, Job.status, Job.progress).where(Job.id.in_(chunk))
                )
                for job_id, name, status, progress in rows:
                    found[job_id] = JobState(
                        id=job_id, name=name, status=status, progress=float(progress)
                    )
        return found

    async def _recheck_due(self) -> None:
        """Recheck, one transaction for all, every stream whose recheck falls due before
        the next tick; streams of one caller (and job) share one check."""
        now = asyncio.get_running_loop().time()
        # Due a tick early (the next may come too late), but never more than twice as often.
        early = min(self.poll, self.recheck_every / 2)
        due: dict[Hashable, list[Subscription]] = {}
        for sub in self._all():
            if now - sub.checked_at >= self.recheck_every - early:
                due.setdefault(sub.key, []).append(sub)
        if not due:
            return
        verdicts: dict[Hashable, Refusal | None] = {}
        try:
            async with self.db.session() as session:
                for key, subs in due.items():
                    verdicts[key] = await subs[0].check(session)
        except SQLAlchemyError:
            # Unchecked is not allowed; the clients reconnect and are checked afresh.
            unavailable = Refusal(code="unavailable", reason="could not check access; reconnect")
            verdicts = dict.fromkeys(due, unavailable)
        for key, subs in due.items():
            for sub in subs:
                sub.checked_at = now
                if verdicts[key] is not None and sub.refusal is None:
                    sub.refusal = verdicts[key]
                    sub.wake.set()

    def _all(self) -> Iterable[Subscription]:
        return [sub for subs in self.by_user.values() for sub in subs]


_FAILED = {"action": "live_feed_failed"}
