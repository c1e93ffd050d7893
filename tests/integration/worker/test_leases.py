"""Leases: one claim per job, expiry lets another worker take over, a loser never writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from imputehub.worker import leases
from imputehub.worker.loop import Worker
from tests.integration.worker.conftest import make_hub
from tests.integration.worker.support import (
    drive,
    eventually,
    load_job,
    new_job,
    result_files,
    status_updates,
)
from tests.support.fake_connector import SAMPLE_SERVICE, FakeConnector, sample_spec

LEASE = 60.0


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock, fake: FakeConnector) -> AsyncIterator[Runtime]:
    # Long leases: lease heartbeats (every third of a lease, in real time) must not fire
    # while these tests move the fake clock past a lease by hand.
    async with make_hub(settings, clock, fake, worker_lease_seconds=LEASE) as runtime:
        yield runtime


async def test_claims_take_due_unleased_jobs_oldest_first_up_to_the_limit(
    hub: Runtime, clock: FakeClock, user_id: str
) -> None:
    now = clock.now()
    later = await new_job(hub, user_id, next_run_at=now - timedelta(seconds=1))
    first = await new_job(hub, user_id, next_run_at=now - timedelta(seconds=5))
    await new_job(hub, user_id, next_run_at=now + timedelta(seconds=5))  # not due
    await new_job(hub, user_id, next_step=None, next_run_at=None)  # nothing to do
    await new_job(  # leased by a live worker
        hub,
        user_id,
        lease_owner="other#1",
        lease_expires_at=now + timedelta(seconds=30),
    )

    async with hub.db.session() as session:
        claims = await leases.claim_due_jobs(
            session, owner="me#1", now=now, lease_seconds=60, limit=1
        )
    async with hub.db.session() as session:
        more = await leases.claim_due_jobs(
            session, owner="me#2", now=now, lease_seconds=60, limit=10
        )
    async with hub.db.session() as session:
        none_left = await leases.claim_due_jobs(
            session, owner="me#3", now=now, lease_seconds=60, limit=10
        )

    assert [(c.job_id, c.step, c.owner) for c in claims] == [(first.id, "submit", "me#1")]
    assert [c.job_id for c in more] == [later.id]
    assert none_left == []
    held = await load_job(hub, first.id)
    assert held.lease_owner == "me#1"
    assert held.lease_expires_at == now + timedelta(seconds=60)


async def test_an_expired_lease_lets_another_worker_take_over_without_resubmitting(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    # A worker claims the job, records its intent, reaches the service - and dies.
    async with hub.db.session() as session:
        [claim] = await leases.claim_due_jobs(
            session, owner="dead#1", now=clock.now(), lease_seconds=30, limit=5
        )
        row = await leases.lock_leased_job(session, claim)
        assert row is not None
        row.submit_started_at = clock.now()
    await fake.submit(SAMPLE_SERVICE, sample_spec(job.id), None, job.id)
    survivor = Worker(hub)

    assert await survivor.run_once() == 0  # the lease still holds
    clock.advance(31)
    done = await drive(hub, survivor, clock, job.id)

    assert done.status == "completed"
    assert fake.submissions(job.id) == 1
    assert [c["op"] for c in fake.calls(key=job.id)][:2] == ["submit", "find"]


async def test_a_worker_that_lost_its_lease_does_not_undo_later_progress(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    gate = fake.hold("submit")
    slow, fast = Worker(hub, worker_id="slow"), Worker(hub, worker_id="fast")
    stuck = asyncio.create_task(slow.run_once())
    await eventually(lambda: _submitted(fake, job.id), what="the submission")

    # The slow worker's lease runs out while it waits for the service's answer...
    clock.advance(hub.settings.worker_lease_seconds + 1)
    done = await drive(hub, fast, clock, job.id)
    assert done.status == "completed"
    before = [(u.status, u.message) for u in await status_updates(hub, job.id)]

    # ...and when the answer finally comes, what it learnt is dropped.
    gate.set()
    await asyncio.wait_for(stuck, 10)

    after = await load_job(hub, job.id)
    assert after.status == "completed"
    assert after.progress == 100.0
    assert after.lease_owner is None
    assert [(u.status, u.message) for u in await status_updates(hub, job.id)] == before
    assert fake.submissions(job.id) == 1
    assert len(await result_files(hub, job.id)) == 2


async def test_a_worker_that_lost_its_lease_leaves_the_job_to_the_new_holder(
    settings: Settings, hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    first = Worker(hub, worker_id="first")
    await drive(hub, first, clock, job.id, until=frozenset({JobStatus.QUEUED}))
    clock.advance(1)
    before = await status_updates(hub, job.id)
    first_gate = fake.hold("poll")
    first_poll = asyncio.create_task(first.run_once())
    await eventually(lambda: _polls(fake, job.id, 1), what="the first poll")

    # The first worker's lease lapses; a second worker (own process, own connector
    # instance on the same service) claims the same poll step and is still at it...
    clock.advance(hub.settings.worker_lease_seconds + 1)
    other_fake = FakeConnector(fake.state_path, label="second")
    async with make_hub(settings, clock, other_fake, worker_lease_seconds=LEASE) as other_hub:
        second_gate = other_fake.hold("poll")
        second = Worker(other_hub, worker_id="second")
        second_poll = asyncio.create_task(second.run_once())
        await eventually(lambda: _polls(fake, job.id, 2), what="the second poll")

        # ...when the first worker's answer arrives: it records nothing.
        first_gate.set()
        await asyncio.wait_for(first_poll, 10)
        held = await load_job(hub, job.id)
        assert held.lease_owner is not None
        assert held.lease_owner.startswith("second#")
        assert len(await status_updates(hub, job.id)) == len(before)

        second_gate.set()
        await asyncio.wait_for(second_poll, 10)

    after = await load_job(hub, job.id)
    assert after.lease_owner is None
    assert after.status == "running"  # the second poll's answer, recorded once
    assert [u.status for u in await status_updates(hub, job.id)][len(before) :] == ["running"]


async def _polls(fake: FakeConnector, job_id: str, count: int) -> bool:
    return len(fake.calls("poll", job_id)) == count


async def _submitted(fake: FakeConnector, job_id: str) -> bool:
    return fake.submissions(job_id) == 1


async def test_two_workers_racing_never_claim_the_same_job(
    settings: Settings, fake: FakeConnector, clock: FakeClock, hub: Runtime, user_id: str
) -> None:
    jobs = [await new_job(hub, user_id) for _ in range(12)]
    async with (
        make_hub(settings, clock, fake) as first,
        make_hub(settings, clock, fake) as second,
    ):
        a, b = Worker(first, worker_id="a"), Worker(second, worker_id="b")
        counts = await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())

    assert sum(counts) == 12
    for job in jobs:
        assert fake.submissions(job.id) == 1
        assert (await load_job(hub, job.id)).status == JobStatus.QUEUED


async def test_a_long_step_keeps_its_lease_alive(
    settings: Settings, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1)
    async with make_hub(settings, clock, fake, worker_lease_seconds=0.3) as hub:
        job = await new_job(hub, user_id)
        worker, other = Worker(hub), Worker(hub)
        await drive(hub, worker, clock, job.id, until=frozenset({JobStatus.RUNNING}))
        gate = fake.hold("fetch")
        fetching = asyncio.create_task(worker.run_once())
        await eventually(lambda: _called(fake, "fetch", job.id), what="the fetch")

        # Far past the original lease; the heartbeat extends it from the current time.
        clock.advance(60)

        async def renewed() -> bool:
            held = await load_job(hub, job.id)
            return held.lease_expires_at is not None and held.lease_expires_at > clock.now()

        await eventually(renewed, what="the lease to be renewed")
        assert await other.run_once() == 0
        gate.set()
        await asyncio.wait_for(fetching, 10)
        done = await load_job(hub, job.id)

    assert done.status == "completed"
    assert len(fake.calls("fetch", job.id)) == 1


async def _called(fake: FakeConnector, op: str, job_id: str) -> bool:
    return bool(fake.calls(op, job_id))


async def test_claims_given_back_by_a_stopping_worker_are_claimable_at_once(
    hub: Runtime, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    now = clock.now()
    async with hub.db.session() as session:
        claims = await leases.claim_due_jobs(
            session, owner="stopping#1", now=now, lease_seconds=60, limit=10
        )
    async with hub.db.session() as session:
        await leases.give_back(session, claims)

    back = await load_job(hub, job.id)
    assert (back.lease_owner, back.lease_expires_at) == (None, None)
    assert (back.status, back.next_step) == ("pending", "submit")  # nothing else changed
    async with hub.db.session() as session:
        again = await leases.claim_due_jobs(
            session, owner="next#1", now=now, lease_seconds=60, limit=10
        )
    assert [c.job_id for c in again] == [job.id]


async def test_claims_share_each_batch_between_new_jobs_and_finishing_ones(
    hub: Runtime, clock: FakeClock, user_id: str
) -> None:
    now = clock.now()
    # A burst of 12 new jobs, due long before the 6 running jobs' next polls.
    burst = [
        await new_job(hub, user_id, next_run_at=now - timedelta(minutes=60 - i)) for i in range(12)
    ]
    polls = [
        await new_job(
            hub, user_id, status="running", next_step="poll", next_run_at=now - timedelta(seconds=i)
        )
        for i in range(6, 0, -1)
    ]

    async def claim(owner: str, limit: int, submit_limit: int | None = None) -> list[str]:
        async with hub.db.session() as session:
            claims = await leases.claim_due_jobs(
                session,
                owner=owner,
                now=now,
                lease_seconds=60,
                limit=limit,
                submit_limit=submit_limit,
            )
        return [c.job_id for c in claims]

    # A quarter of the batch for new jobs (the oldest), the rest for the polls, in due order.
    assert await claim("w#1", 8) == [job.id for job in polls] + [job.id for job in burst[:2]]
    # No poll left: the whole batch goes to new jobs, unless the submit slots are full.
    assert await claim("w#2", 8, submit_limit=3) == [job.id for job in burst[2:5]]
    assert await claim("w#3", 8, submit_limit=0) == []
    assert await claim("w#4", 8) == [job.id for job in burst[5:12]]
