"""Polls that hear nothing new: gathered by the worker loop and written many at once.

Each test runs the loop's poll path by hand (claim with the polls' rows, steps with the
loop's write batch, then the batch's flush), so what the database holds at each moment
is deterministic.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from imputehub.clock import FakeClock
from imputehub.connectors.base import ExternalRef, ExternalState, ExternalStatus, ServiceInfo
from imputehub.db.models import Event, Job
from imputehub.runtime import Runtime
from imputehub.worker import leases, poll_context, steps
from imputehub.worker.loop import Worker
from imputehub.worker.write_batch import WriteBatch
from tests.integration.worker.support import load_job, new_job, request_cancel, status_updates
from tests.support.fake_connector import FakeConnector

POLL_EVERY = 0.05  # the test settings' poll_interval_seconds


class SteadyService(FakeConnector):
    """The fake service, except that a poll always says the same: running at `progress`."""

    progress = 50.0
    polls = 0

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        self.polls += 1
        return ExternalStatus(state=ExternalState.RUNNING, progress=self.progress, logs=("qc ok",))


@pytest.fixture
def fake(tmp_path: Path) -> SteadyService:
    return SteadyService(tmp_path / "fake.json")


async def poll_round(hub: Runtime, owner: str) -> WriteBatch:
    """One claim of due polls and their steps, as the loop runs them; not flushed."""
    batch = WriteBatch(hub.db)
    async with hub.db.session() as session:
        claims = await leases.claim_due_jobs(
            session, owner=owner, now=hub.clock.now(), lease_seconds=120, limit=10
        )
        rows = await poll_context.load(session, claims)
    for claim in claims:
        await steps.run_step(hub, claim, batch, rows.get(claim.job_id))
    return batch


async def running_job(hub: Runtime, clock: FakeClock, user_id: str) -> str:
    """A job submitted and seen running once (that first poll is a change, written)."""
    job = await new_job(hub, user_id)
    worker = Worker(hub)
    assert await worker.run_once() == 1  # submit
    clock.advance(1)
    assert await worker.run_once() == 1  # poll: queued -> running
    assert (await load_job(hub, job.id)).status == "running"
    return job.id


async def events(hub: Runtime) -> int:
    async with hub.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def test_a_poll_that_hears_nothing_new_writes_no_status_and_moves_the_next_poll_on(
    hub: Runtime, clock: FakeClock, fake: SteadyService, user_id: str
) -> None:
    job_id = await running_job(hub, clock, user_id)
    updates, events_before = len(await status_updates(hub, job_id)), await events(hub)
    clock.advance(1)

    batch = await poll_round(hub, "w#1")
    assert fake.polls == 2
    assert len(batch) == 1
    # Until the flush, the job stays leased to the poll: nobody claims it twice.
    assert (await load_job(hub, job_id)).lease_owner == "w#1"
    await batch.flush()

    job = await load_job(hub, job_id)
    assert job.lease_owner is None
    assert job.lease_expires_at is None
    assert job.next_run_at == hub.clock.now() + timedelta(seconds=POLL_EVERY)
    assert (job.status, job.progress) == ("running", 50.0)
    assert len(await status_updates(hub, job_id)) == updates
    assert await events(hub) == events_before


async def test_a_poll_that_hears_progress_is_written_at_once_with_its_status_and_event(
    hub: Runtime, clock: FakeClock, fake: SteadyService, user_id: str
) -> None:
    job_id = await running_job(hub, clock, user_id)
    updates = len(await status_updates(hub, job_id))
    fake.progress = 75.0
    clock.advance(1)

    batch = await poll_round(hub, "w#1")

    assert len(batch) == 0
    job = await load_job(hub, job_id)
    assert job.lease_owner is None
    assert job.progress > 50.0
    assert len(await status_updates(hub, job_id)) == updates + 1


async def test_a_lease_lost_before_the_flush_is_left_to_its_new_holder(
    hub: Runtime, clock: FakeClock, fake: SteadyService, user_id: str
) -> None:
    job_id = await running_job(hub, clock, user_id)
    clock.advance(1)
    batch = await poll_round(hub, "w#1")
    due = (await load_job(hub, job_id)).next_run_at
    async with hub.db.session() as session:  # the lease lapsed and another worker took it
        await session.execute(update(Job).where(Job.id == job_id).values(lease_owner="w#2"))

    await batch.flush()

    job = await load_job(hub, job_id)
    assert job.lease_owner == "w#2"
    assert job.next_run_at == due


async def test_a_cancel_arriving_before_the_flush_runs_next(
    hub: Runtime, clock: FakeClock, fake: SteadyService, user_id: str
) -> None:
    job_id = await running_job(hub, clock, user_id)
    clock.advance(1)
    batch = await poll_round(hub, "w#1")
    await request_cancel(hub, job_id)

    await batch.flush()

    job = await load_job(hub, job_id)
    assert job.next_step == "cancel"
    assert job.lease_owner is None
    assert job.next_run_at is not None
    assert job.next_run_at <= hub.clock.now()
    assert await Worker(hub).run_once() == 1
    assert (await load_job(hub, job_id)).status == "cancelled"


async def test_a_worker_killed_before_the_flush_polls_the_job_again_once_the_lease_lapses(
    hub: Runtime, clock: FakeClock, fake: SteadyService, user_id: str
) -> None:
    job_id = await running_job(hub, clock, user_id)
    clock.advance(1)
    await poll_round(hub, "w#1")  # never flushed: the process died

    assert len(await poll_round(hub, "w#2")) == 0  # still leased: nobody else polls it
    clock.advance(121)
    batch = await poll_round(hub, "w#2")
    await batch.flush()

    assert fake.polls == 3
    assert (await load_job(hub, job_id)).lease_owner is None
