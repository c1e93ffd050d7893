"""A job travels pending -> queued -> running -> completed through the fake service."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from imputehub.clock import FakeClock
from imputehub.db.models import Job
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from imputehub.worker.leases import Claim
from imputehub.worker.loop import Worker
from imputehub.worker.sink import StorageSink
from tests.integration.worker.support import (
    CREDENTIAL,
    INPUT,
    drive,
    load_job,
    new_job,
    result_files,
    status_updates,
    stored_bytes,
)
from tests.support.fake_connector import DEFAULT_RESULTS, FakeConnector


async def test_a_job_runs_to_completion_and_its_results_are_stored(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=4)
    job = await new_job(hub, user_id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed"
    assert done.progress == 100.0
    assert done.completed_at is not None
    assert done.started_at is not None
    assert done.error_message is None
    assert done.lease_owner is None
    assert done.next_step is None
    submitted = fake.job(job.id)
    assert submitted is not None
    assert done.external_job_id == submitted["external_id"]
    assert done.service_logs == ["poll 1", "poll 2", "poll 3", "poll 4"]
    # The service got the input's bytes and the platform credential.
    assert submitted["inputs"][0]["sha256"] == hashlib.sha256(INPUT).hexdigest()
    assert submitted["credential"] == CREDENTIAL
    assert fake.submissions(job.id) == 1

    updates = await status_updates(hub, job.id)
    assert [(u.status, u.progress) for u in updates] == [
        ("pending", 5.0),
        ("queued", 10.0),
        ("queued", 10.0),
        ("running", 36.7),
        ("running", 63.3),
        ("running", 90.0),
        ("completed", 100.0),
    ]
    assert updates[0].message.startswith("submitting to ")
    assert updates[1].message.endswith(f"as {done.external_job_id}")
    assert updates[2].message.endswith("(position 1 in the queue)")
    assert "fetching" in updates[-2].message
    assert updates[-1].message == "2 result files stored"

    files = await result_files(hub, job.id)
    assert sorted(f.filename for f in files) == sorted(DEFAULT_RESULTS)
    for record in files:
        content = DEFAULT_RESULTS[record.filename]
        assert record.user_id == user_id
        assert record.storage_key == f"results/{job.id}/{record.filename}"
        assert record.size == len(content)
        assert record.sha256 == hashlib.sha256(content).hexdigest()
        assert await stored_bytes(hub, record.storage_key) == content


async def test_a_job_is_not_polled_before_its_next_poll_is_due(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    worker = Worker(hub)

    assert await worker.run_once() == 1  # submitted
    queued = await load_job(hub, job.id)
    assert queued.status == JobStatus.QUEUED
    assert (queued.next_run_at - clock.now()).total_seconds() == hub.settings.poll_interval_seconds

    assert await worker.run_once() == 0
    clock.advance(hub.settings.poll_interval_seconds)
    assert await worker.run_once() == 1
    assert fake.calls("poll", job.id) != []


async def test_fetching_again_replaces_results_instead_of_duplicating_them(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(polls_to_finish=1, results={"../../etc/out file.txt": b"first"})
    job = await new_job(hub, user_id)
    await drive(hub, Worker(hub), clock, job.id)
    claim = Claim(job_id=job.id, step="fetch", owner="test")
    async with hub.db.session() as session:
        row = await session.get(Job, job.id)
        assert row is not None
        row.lease_owner = "test"

    async def again() -> AsyncIterator[bytes]:
        yield b"second"

    stored = await StorageSink(hub, claim, user_id=user_id).store("../../etc/out file.txt", again())

    files = await result_files(hub, job.id)
    assert [(f.filename, f.size) for f in files] == [("out_file.txt", 6)]
    assert stored.name == "out_file.txt"
    assert await stored_bytes(hub, files[0].storage_key) == b"second"
