"""Status changes stamp times, schedule the worker and leave a history row."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.db.models import Job, JobStatusUpdate
from imputehub.domain.errors import InvalidTransition
from imputehub.domain.jobs import JobStatus
from imputehub.jobs import lifecycle
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor


@pytest.fixture
async def job(runtime: Runtime, alice: Actor) -> Job:
    service = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, service)
    file = await factories.make_file(runtime, alice.id)
    return await factories.make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[file]
    )


async def history(runtime: Runtime, job_id: str) -> list[tuple[str, float, str]]:
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(JobStatusUpdate)
            .where(JobStatusUpdate.job_id == job_id)
            .order_by(JobStatusUpdate.id)
        )
        return [(r.status, r.progress, r.message) for r in rows]


async def test_a_job_moves_through_its_life_with_history(
    runtime: Runtime, job: Job, clock: FakeClock
) -> None:
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
        lifecycle.set_status(session, row, JobStatus.QUEUED, now=clock.now(), progress=10)
    clock.advance(60)
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
        lifecycle.set_status(
            session, row, JobStatus.RUNNING, now=clock.now(), progress=50, message="Imputation"
        )
        assert row.started_at == clock.now()
        assert row.next_step == "poll"
    clock.advance(60)
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
        # A poll that brings no news writes nothing.
        lifecycle.set_status(session, row, JobStatus.RUNNING, now=clock.now())
        lifecycle.set_status(session, row, JobStatus.COMPLETED, now=clock.now(), progress=95)
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
    assert row.status == "completed"
    assert row.progress == 100.0
    assert row.completed_at == clock.now()
    assert lifecycle.execution_time_seconds(row) == 60.0
    assert (row.next_step, row.next_run_at, row.lease_owner) == (None, None, None)
    assert await history(runtime, job.id) == [
        ("queued", 10.0, ""),
        ("running", 50.0, "Imputation"),
        ("completed", 100.0, ""),
    ]


async def test_an_illegal_change_raises_and_writes_nothing(
    runtime: Runtime, job: Job, clock: FakeClock
) -> None:
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
        lifecycle.set_status(session, row, JobStatus.CANCELLED, now=clock.now())
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
        with pytest.raises(InvalidTransition):
            lifecycle.set_status(session, row, JobStatus.RUNNING, now=clock.now())
        assert row.status == "cancelled"
    assert await history(runtime, job.id) == [("cancelled", 0.0, "")]


async def test_the_error_log_keeps_the_newest_hundred(
    runtime: Runtime, job: Job, clock: FakeClock
) -> None:
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
        for attempt in range(1, 131):
            lifecycle.record_error(
                row, f"timeout {attempt}", now=clock.now(), transient=True, attempt=attempt
            )
    async with runtime.db.session() as session:
        row = await session.get_one(Job, job.id)
    assert len(row.error_log) == 100
    assert row.error_log[0]["message"] == "timeout 31"
    assert row.error_log[-1] == {
        "at": clock.now().isoformat(),
        "message": "timeout 130",
        "transient": True,
        "attempt": 130,
    }
