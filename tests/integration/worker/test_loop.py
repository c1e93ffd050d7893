"""The worker loop as `serve` and `imputehub worker` run it, on the real clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from imputehub.config import Settings
from imputehub.db.models import WorkerHeartbeat
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import eventually, load_job, new_job
from tests.support.fake_connector import FakeConnector


@pytest.fixture
async def live(settings: Settings, fake: FakeConnector) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, connectors={"michigan": fake})
    yield runtime
    await runtime.close()


async def until_status(runtime: Runtime, job_id: str, wanted: frozenset[JobStatus]) -> str:
    async def reached() -> bool:
        return (await load_job(runtime, job_id)).status in wanted

    await eventually(reached, what=f"the job to become one of {sorted(wanted)}", within=20)
    return (await load_job(runtime, job_id)).status


async def heartbeats(runtime: Runtime) -> list[WorkerHeartbeat]:
    async with runtime.db.session() as session:
        return list(await session.scalars(select(WorkerHeartbeat)))


async def test_the_loop_completes_jobs_and_keeps_a_heartbeat_until_stopped(
    live: Runtime, fake: FakeConnector, user_id: str
) -> None:
    jobs = [await new_job(live, user_id) for _ in range(3)]
    stop = asyncio.Event()
    worker = Worker(live, worker_id="loop-test")
    running = asyncio.create_task(worker.run(stop))

    for job in jobs:
        assert await until_status(live, job.id, TERMINAL) == "completed"
    [beat] = await heartbeats(live)
    assert beat.worker_id == "loop-test"
    assert beat.last_seen_at >= beat.started_at

    stop.set()
    await asyncio.wait_for(running, 10)
    assert await heartbeats(live) == []
    assert all(fake.submissions(job.id) == 1 for job in jobs)


async def test_stopping_finishes_running_steps_and_claims_nothing_new(
    live: Runtime, fake: FakeConnector, user_id: str
) -> None:
    first = await new_job(live, user_id)
    gate = fake.hold("submit")
    stop = asyncio.Event()
    running = asyncio.create_task(Worker(live).run(stop))
    await eventually(lambda: _submitted(fake, first.id), what="the submission")

    stop.set()
    second = await new_job(live, user_id)
    gate.set()
    await asyncio.wait_for(running, 10)

    finished = await load_job(live, first.id)
    assert finished.status == "queued"  # the step in flight was completed and recorded
    assert finished.lease_owner is None
    assert fake.submissions(second.id) == 0
    assert (await load_job(live, second.id)).status == "pending"


async def test_failing_health_checks_do_not_stop_the_loop(live: Runtime, user_id: str) -> None:
    calls = 0

    async def broken(runtime: Runtime) -> int:
        nonlocal calls
        calls += 1
        raise RuntimeError("health check bug")

    job = await new_job(live, user_id)
    stop = asyncio.Event()
    running = asyncio.create_task(Worker(live, health_checks=broken).run(stop))

    assert await until_status(live, job.id, TERMINAL) == "completed"
    stop.set()
    await asyncio.wait_for(running, 10)
    assert calls >= 1


async def _submitted(fake: FakeConnector, job_id: str) -> bool:
    return fake.submissions(job_id) > 0


async def test_a_step_due_at_once_does_not_wait_for_the_next_round(
    settings: Settings, fake: FakeConnector, user_id: str
) -> None:
    # A long round: only the wake-up when a step ends can make the fetch follow the poll.
    runtime = build_runtime(
        settings.model_copy(update={"worker_poll_interval": 60.0}), connectors={"michigan": fake}
    )
    try:
        fake.configure(polls_to_finish=1)
        job = await new_job(runtime, user_id)
        await Worker(runtime).run_once()  # submitted; the poll is due 0.05 s later
        await asyncio.sleep(0.1)
        stop = asyncio.Event()
        running = asyncio.create_task(Worker(runtime).run(stop))

        # Poll (finished at the service) -> fetch, due at once -> completed, within seconds.
        assert await until_status(runtime, job.id, TERMINAL) == "completed"
        stop.set()
        await asyncio.wait_for(running, 10)
    finally:
        await runtime.close()


async def test_a_burst_of_new_jobs_does_not_hold_up_the_jobs_that_are_finishing(
    settings: Settings, fake: FakeConnector, user_id: str
) -> None:
    runtime = build_runtime(
        settings.model_copy(update={"worker_concurrency": 4}), connectors={"michigan": fake}
    )
    try:
        running_job = await new_job(runtime, user_id)
        assert await Worker(runtime).run_once() == 1  # submitted: now it only needs polls
        # Then a burst of new jobs, all due before the running job's next poll, whose
        # uploads take as long as the test wants (the gate stays shut).
        gate = fake.hold("submit")
        long_due = datetime.now(UTC) - timedelta(hours=1)
        burst = [await new_job(runtime, user_id, next_run_at=long_due) for _ in range(12)]

        stop = asyncio.Event()
        loop = asyncio.create_task(Worker(runtime).run(stop))
        try:
            # Three of the four slots upload; the fourth polls and fetches the running job.
            assert await until_status(runtime, running_job.id, TERMINAL) == "completed"

            async def three_in_flight() -> bool:
                return len(fake.calls("submit")) >= 1 + 3  # the first job's, then three

            # (A loaded machine may not have started the third upload yet when the running
            # job completes: wait for it, then see that no fourth joined them.)
            await eventually(three_in_flight, what="three uploads in flight")
            assert len(fake.calls("submit")) == 1 + 3
            gate.set()
            for job in burst:  # and the burst is not starved either
                assert await until_status(runtime, job.id, TERMINAL) == "completed"
        finally:
            gate.set()
            stop.set()
            await asyncio.wait_for(loop, 10)
    finally:
        await runtime.close()
