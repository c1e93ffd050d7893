"""Transient failures are retried with growing delays; permanent ones fail the job clearly."""

from __future__ import annotations

from datetime import timedelta

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.conftest import make_hub
from tests.integration.worker.support import drive, load_job, new_job, status_updates
from tests.support.fake_connector import FakeConnector


async def test_transient_failures_wait_longer_each_time_then_the_job_completes(
    settings: Settings, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(transient={"submit": 3})
    async with make_hub(
        settings, clock, fake, retry_base_seconds=60, retry_max_seconds=3600
    ) as hub:
        job = await new_job(hub, user_id)
        worker = Worker(hub)
        delays = []
        for attempt in (1, 2, 3):
            assert await worker.run_once() == 1
            waiting = await load_job(hub, job.id)
            assert waiting.status == JobStatus.PENDING
            assert waiting.attempts == attempt
            assert waiting.next_run_at is not None
            delay = waiting.next_run_at - clock.now()
            # Equal jitter: between half and all of base * 2^(attempt-1).
            assert timedelta(seconds=30 * 2 ** (attempt - 1)) <= delay
            assert delay <= timedelta(seconds=60 * 2 ** (attempt - 1))
            delays.append(delay)
            # Not due yet: nothing is claimed until the delay has passed.
            clock.advance(delay.total_seconds() - 1)
            assert await worker.run_once() == 0
            clock.advance(1)
        assert delays[0] < delays[2]

        done = await drive(hub, worker, clock, job.id)
        updates = await status_updates(hub, job.id)

    assert done.status == "completed"
    assert done.attempts == 0
    assert [e["attempt"] for e in done.error_log] == [1, 2, 3]
    assert all(e["transient"] for e in done.error_log)
    assert "temporarily unavailable" in done.error_log[0]["message"]
    assert fake.submissions(job.id) == 1
    waiting = [u for u in updates if u.message.startswith("waiting to retry")]
    assert [u.status for u in waiting] == ["pending"] * 3


async def test_a_retry_after_from_the_service_is_honoured(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(transient={"submit": 1}, retry_after=600)
    job = await new_job(hub, user_id)

    await Worker(hub).run_once()

    waiting = await load_job(hub, job.id)
    assert waiting.next_run_at == clock.now() + timedelta(seconds=600)


async def test_a_permanent_failure_fails_the_job_with_the_service_message(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    fake.configure(job.id, permanent={"submit": "reference panel apps@x is not installed"})

    failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message == "reference panel apps@x is not installed"
    assert failed.next_step is None
    assert failed.lease_owner is None
    assert [(e["message"], e["transient"]) for e in failed.error_log] == [
        ("reference panel apps@x is not installed", False)
    ]
    last = (await status_updates(hub, job.id))[-1]
    assert (last.status, last.message) == ("failed", "reference panel apps@x is not installed")


async def test_a_job_the_service_reports_failed_carries_its_message(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    fake.configure(job.id, outcome="failed", failure_message="chr20: no SNPs passed QC")

    failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message == "chr20: no SNPs passed QC"
    assert failed.progress < 100


async def test_a_job_the_service_cancelled_on_its_own_fails(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    fake.configure(job.id, outcome="cancelled")

    failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message == "the service cancelled the job"


async def test_a_lost_job_fails(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id)
    worker = Worker(hub)
    await drive(hub, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))
    fake.configure(job.id, lose=True)

    failed = await drive(hub, worker, clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message is not None
    assert "does not know job" in failed.error_message


async def test_too_many_transient_failures_fail_the_job(
    settings: Settings, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(transient={"poll": 100})
    async with make_hub(settings, clock, fake, max_transient_attempts=3) as hub:
        job = await new_job(hub, user_id)
        failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message is not None
    assert failed.error_message.startswith("gave up after 3 attempts")
    assert "temporarily unavailable" in failed.error_message
    assert len(fake.calls("poll", job.id)) == 3


async def test_the_error_log_keeps_the_last_100_errors(
    settings: Settings, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    fake.configure(transient={"poll": 104})
    async with make_hub(settings, clock, fake, max_transient_attempts=1000) as hub:
        job = await new_job(hub, user_id)
        done = await drive(hub, Worker(hub), clock, job.id, rounds=200)

    assert done.status == "completed"
    assert len(done.error_log) == 100
    assert [e["attempt"] for e in done.error_log] == list(range(5, 105))
    assert done.error_log[-1]["message"].endswith("failure 104)")


async def test_a_service_without_a_connector_fails_the_job(
    hub: Runtime, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id, service_fields={"api_type": "dnastack"})

    failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message == "no connector for api_type dnastack"


async def test_a_job_past_its_time_limit_fails_and_is_cancelled_at_the_service(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    job = await new_job(hub, user_id, service_fields={"job_time_limit_seconds": 2 * 3600})
    worker = Worker(hub)
    await drive(hub, worker, clock, job.id, until=frozenset({JobStatus.QUEUED}))

    clock.advance(2 * 3600 + 1)
    failed = await drive(hub, worker, clock, job.id)

    assert failed.status == "failed"
    assert failed.error_message == ("did not finish within 2 hours; imputehub stopped following it")
    assert fake.cancels() == [job.id]


async def test_the_default_time_limit_applies_without_a_service_limit(
    settings: Settings, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    async with make_hub(settings, clock, fake, job_time_limit_seconds=30 * 60) as hub:
        job = await new_job(hub, user_id)
        clock.advance(31 * 60)
        failed = await drive(hub, Worker(hub), clock, job.id)

    assert failed.error_message == (
        "did not finish within 30 minutes; imputehub stopped following it"
    )
    assert fake.submissions(job.id) == 0
