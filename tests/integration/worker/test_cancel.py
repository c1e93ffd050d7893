"""Cancelling queued and running jobs reaches the service; the job ends cancelled."""

from __future__ import annotations

import asyncio

from imputehub.clock import FakeClock
from imputehub.db.models import Job
from imputehub.domain.jobs import JobStatus
from imputehub.jobs import lifecycle
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import (
    drive,
    eventually,
    load_job,
    new_job,
    request_cancel,
    status_updates,
)
from tests.support.fake_connector import SAMPLE_SERVICE, FakeConnector, sample_spec


async def test_cancelling_a_queued_job_cancels_it_at_the_service(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    worker = Worker(hub)
    await drive(hub, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))

    await request_cancel(hub, job.id)
    done = await drive(hub, worker, clock, job.id)

    assert done.status == "cancelled"
    assert fake.cancels() == [job.id]
    updates = await status_updates(hub, job.id)
    assert [u.status for u in updates[-2:]] == ["cancelling", "cancelled"]
    assert updates[-1].message.startswith("cancelled at ")


async def test_cancelling_a_running_job_cancels_it_at_the_service(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=10)
    job = await new_job(hub, user_id)
    worker = Worker(hub)
    running = await drive(hub, worker, clock, job.id, until=frozenset({JobStatus.RUNNING}))
    assert 10 < running.progress < 90

    await request_cancel(hub, job.id)
    done = await drive(hub, worker, clock, job.id)

    assert done.status == "cancelled"
    assert done.progress == running.progress
    assert fake.cancels() == [job.id]
    assert len(fake.calls("poll", job.id)) == 2  # no poll after the cancel request


async def test_a_job_cancelled_before_submission_never_reaches_the_service(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    await request_cancel(hub, job.id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "cancelled"
    assert fake.calls() == []


async def test_a_cancel_after_an_interrupted_submit_finds_the_job_at_the_service(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id, submit_started_at=clock.now())
    # The service accepted the job, but the hub never heard back.
    ref = await fake.submit(SAMPLE_SERVICE, sample_spec(job.id), None, job.id)
    await request_cancel(hub, job.id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "cancelled"
    assert done.external_job_id == ref.external_id
    assert fake.cancels() == [job.id]


async def test_a_refused_cancel_fails_the_job_with_the_service_message(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    fake.configure(job.id, refuse_cancel=True)
    worker = Worker(hub)
    await drive(hub, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))
    await request_cancel(hub, job.id)

    done = await drive(hub, worker, clock, job.id)

    assert done.status == "failed"
    assert done.error_message == "the service refused to cancel the job"


async def test_a_cancel_during_a_submit_reaches_the_job_that_submit_created(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    gate = fake.hold("submit")
    worker = Worker(hub)
    submitting = asyncio.create_task(worker.run_once())

    async def submitted() -> bool:
        return fake.submissions(job.id) == 1

    await eventually(submitted, what="the submission")

    await request_cancel(hub, job.id)
    gate.set()
    await asyncio.wait_for(submitting, 10)
    in_between: Job = await load_job(hub, job.id)
    assert in_between.status == "cancelling"
    assert in_between.lease_owner is None

    done = await drive(hub, worker, clock, job.id)

    assert done.status == "cancelled"
    assert fake.submissions(job.id) == 1
    assert fake.cancels() == [job.id]
    assert "queued" not in [u.status for u in await status_updates(hub, job.id)]


async def test_a_submit_answer_arriving_after_a_cancel_yields_to_it(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    """Even when whoever cancels leaves the worker's lease in place."""
    job = await new_job(hub, user_id)
    gate = fake.hold("submit")
    worker = Worker(hub)
    submitting = asyncio.create_task(worker.run_once())

    async def submitted() -> bool:
        return fake.submissions(job.id) == 1

    await eventually(submitted, what="the submission")
    async with hub.db.session() as session:
        row = await session.get(Job, job.id)
        assert row is not None
        lifecycle.set_status(session, row, JobStatus.CANCELLING, now=clock.now())
    gate.set()
    await asyncio.wait_for(submitting, 10)

    in_between = await load_job(hub, job.id)
    at_service = fake.job(job.id)
    assert at_service is not None
    assert in_between.status == "cancelling"
    assert in_between.external_job_id == at_service["external_id"]
    assert in_between.lease_owner is None
    done = await drive(hub, worker, clock, job.id)
    assert done.status == "cancelled"
    assert fake.cancels() == [job.id]
    assert [c["op"] for c in fake.calls(key=job.id)] == ["submit", "cancel"]
