"""The per-process event feed: one reader for every live stream, on the real database.

The feed's own loop is given an hour-long interval so the tests tick it by hand: what a
tick reads and hands out is then exact, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.domain.jobs import JobStatus
from imputehub.notify import live
from imputehub.notify.event_feed import EventFeed, Subscription
from imputehub.runtime import Runtime, build_runtime
from tests.integration.notify.test_events_stream import record
from tests.integration.worker.support import new_job
from tests.support.api import Actor

HOUR = 3600.0
WAIT = 15.0


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    quiet = settings.model_copy(
        update={
            "events_poll_seconds": HOUR,
            "events_keepalive_seconds": HOUR,
            "events_recheck_seconds": HOUR,
        }
    )
    rt = build_runtime(quiet, clock=clock)
    yield rt
    await rt.close()


async def allow(session: AsyncSession) -> live.Refusal | None:
    return None


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements the runtime's engine sends while the block runs."""
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def ids(sub: Subscription) -> list[int | None]:
    return [message.id for message in sub.pending]


async def test_a_tick_costs_the_same_queries_for_two_streams_as_for_a_hundred(
    runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    feed = EventFeed(runtime.db, poll_seconds=HOUR, recheck_seconds=HOUR)
    jobs = [await new_job(runtime, alice.id) for _ in range(3)]
    try:
        first = [
            await feed.join(alice.id, job_id=None, key="a", check=allow),
            await feed.join(alice.id, job_id=jobs[0].id, key="a0", check=allow),
        ]
        await record(runtime, jobs[0].id, JobStatus.QUEUED)
        with statements(runtime) as few:
            await feed.tick()

        more = [
            await feed.join(user, job_id=job, key=(user, job), check=allow)
            for n in range(98)
            for user in [(alice.id, bob.id)[n % 2]]
            for job in [jobs[n % 3].id if user == alice.id and n % 4 else None]
        ]
        await record(runtime, jobs[0].id, JobStatus.RUNNING)
        with statements(runtime) as many:
            await feed.tick()
    finally:
        await feed.close()

    assert len(many) == len(few)  # one read of events, one of the watched jobs
    assert len(few) == 2
    # Every stream of alice's that shows the job has both events, in order; bob's nothing.
    queued, running = ids(first[0])
    assert queued is not None
    assert running is not None
    assert queued < running
    assert ids(first[1]) == [queued, running]
    for sub in more:
        if sub.user_id == bob.id or sub.job_id not in (None, jobs[0].id):
            assert ids(sub) == []
        else:
            assert ids(sub) == [running]
    # The job streams were told their job's progress.
    assert first[1].state is not None
    assert first[1].state.status == "running"


async def test_a_stream_that_falls_behind_reads_its_backlog_and_skips_nothing(
    runtime: Runtime, alice: Actor
) -> None:
    feed = EventFeed(runtime.db, poll_seconds=HOUR, recheck_seconds=HOUR, queue_limit=3)
    runtime.live_feed = feed  # closed with the runtime
    job = await new_job(runtime, alice.id)
    after = await live.latest_event_id(runtime, alice.id)
    stream = live.user_stream(runtime, alice.id, after=after, recheck=allow, key="k")

    async def take(count: int) -> list[live.Message]:
        async with asyncio.timeout(WAIT):
            return [await anext(stream) for _ in range(count)]

    taking = asyncio.create_task(take(1))
    while not feed.subscribers:  # the stream has joined  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.01)
    await record(runtime, job.id, JobStatus.QUEUED)
    await feed.tick()
    got = await taking

    # The client reads nothing for a while: more events come than its queue holds.
    for status in [JobStatus.RUNNING, JobStatus.QUEUED] * 5:
        await record(runtime, job.id, status)
    await feed.tick()
    await record(runtime, job.id, JobStatus.FAILED)
    await feed.tick()
    got += await take(11)  # from the database: the queue had overflowed

    await record(runtime, job.id, JobStatus.CANCELLED)
    await feed.tick()
    got += await take(1)  # and live again from the feed
    await stream.aclose()

    events = [m.event for m in got]
    assert events == [
        "job.queued",
        *["job.running", "job.queued"] * 5,
        "job.failed",
        "job.cancelled",
    ]
    numbers = [m.id for m in got]
    assert None not in numbers
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 13  # none twice, none skipped
    assert feed.subscribers == 0  # the closed stream left the feed


async def test_streams_of_one_caller_share_one_recheck_and_all_end_on_a_no(
    runtime: Runtime, alice: Actor
) -> None:
    feed = EventFeed(runtime.db, poll_seconds=HOUR, recheck_seconds=5.0)
    asked: list[str] = []

    def check(name: str, answer: live.Refusal | None) -> live.Recheck:
        async def recheck(session: AsyncSession) -> live.Refusal | None:
            asked.append(name)
            return answer

        return recheck

    revoked = live.Refusal(code="token_revoked", reason="session ended; log in again")
    try:
        same = [
            await feed.join(alice.id, job_id=None, key="tab", check=check("tab", revoked))
            for _ in range(5)
        ]
        others = [
            await feed.join(alice.id, job_id=None, key=n, check=check(f"other{n}", None))
            for n in range(2)
        ]
        await feed.tick()
        assert asked == []  # let in just now: nothing due yet

        for sub in [*same, *others]:
            sub.checked_at -= 5.0  # the recheck interval has passed
        await feed.tick()
    finally:
        await feed.close()

    assert sorted(asked) == ["other0", "other1", "tab"]  # one check per caller
    assert all(sub.refusal == revoked for sub in same)
    assert all(sub.refusal is None for sub in others)
