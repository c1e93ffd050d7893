"""Retention: old input and result files are removed by the worker; their jobs stay, marked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, JobInput, ReferencePanel, Service, StoredFile
from imputehub.domain.errors import StorageUnavailable
from imputehub.domain.jobs import JobStatus
from imputehub.files import retention
from imputehub.files.storage import LocalStorage
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import eventually
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.seaweedfs import S3Server

DAY = 24 * 3600.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "retention_days_results": 7,
            "retention_days_inputs": 30,
            # The fake clock jumps months ahead; the test users' tokens must outlive that.
            "access_token_ttl_seconds": 10 * 365 * 24 * 3600,
        }
    )


@pytest.fixture
async def setup(runtime: Runtime) -> tuple[Service, ReferencePanel]:
    service = await make_service(runtime)
    return service, await make_panel(runtime, service)


async def finished_job(
    runtime: Runtime, user_id: str, setup: tuple[Service, ReferencePanel], **fields: object
) -> tuple[Job, StoredFile, StoredFile]:
    """A completed job with one input and one result file."""
    service, panel = setup
    source = await make_file(runtime, user_id, b"input bytes")
    job = await make_job(
        runtime,
        user_id=user_id,
        service=service,
        panel=panel,
        files=[source],
        **{"status": JobStatus.COMPLETED.value, "next_step": None, "next_run_at": None, **fields},
    )
    result = await make_file(
        runtime, user_id, b"result bytes", kind="result", job_id=job.id, filename="chr20.zip"
    )
    return job, source, result


async def file_row(runtime: Runtime, file_id: str) -> StoredFile | None:
    async with runtime.db.session() as session:
        return await session.get(StoredFile, file_id)


async def expired_at(runtime: Runtime, job_id: str) -> object:
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job.files_expired_at


async def test_old_results_go_first_then_old_inputs(
    runtime: Runtime,
    clock: FakeClock,
    client: httpx.AsyncClient,
    alice: Actor,
    setup: tuple[Service, ReferencePanel],
) -> None:
    job, source, result = await finished_job(runtime, alice.id, setup)
    shown = (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).json()
    assert shown["files_expired"] is False

    clock.advance(6 * DAY)
    assert await retention.expire_files(runtime, now=clock.now()) == 0

    clock.advance(1 * DAY + 1)
    assert await retention.expire_files(runtime, now=clock.now()) == 1
    assert await file_row(runtime, result.id) is None
    assert not await runtime.storage.exists(result.storage_key)
    assert await file_row(runtime, source.id) is not None
    assert await runtime.storage.exists(source.storage_key)
    assert await expired_at(runtime, job.id) == clock.now()

    shown = (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).json()
    assert shown["status"] == "completed"
    assert shown["files_expired"] is True
    results = await client.get(f"/api/v1/jobs/{job.id}/results", headers=alice.headers)
    assert results.json() == []
    gone = await client.get(f"/api/v1/files/{result.id}/content", headers=alice.headers)
    assert gone.status_code == 404

    marked = clock.now()
    clock.advance(30 * DAY)
    assert await retention.expire_files(runtime, now=clock.now()) == 1
    assert await file_row(runtime, source.id) is None
    assert not await runtime.storage.exists(source.storage_key)
    # The job stays, still marked from the first removal.
    assert await expired_at(runtime, job.id) == marked
    shown = (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).json()
    assert (shown["files_expired"], shown["input_files"]) == (True, [])


async def test_an_input_of_an_active_job_is_kept(
    runtime: Runtime, clock: FakeClock, alice: Actor, setup: tuple[Service, ReferencePanel]
) -> None:
    _old_job, source, _result = await finished_job(runtime, alice.id, setup)
    service, panel = setup
    # A new job, still running, reuses the old input.
    active = await make_job(
        runtime,
        user_id=alice.id,
        service=service,
        panel=panel,
        files=[source],
        status=JobStatus.RUNNING.value,
    )
    clock.advance(60 * DAY)
    assert await retention.expire_files(runtime, now=clock.now()) == 1  # the result only
    assert await file_row(runtime, source.id) is not None
    assert await runtime.storage.exists(source.storage_key)
    assert await expired_at(runtime, active.id) is None


async def test_results_of_an_active_job_are_kept(
    runtime: Runtime, clock: FakeClock, alice: Actor, setup: tuple[Service, ReferencePanel]
) -> None:
    job, source, result = await finished_job(
        runtime, alice.id, setup, status=JobStatus.RUNNING.value
    )
    clock.advance(60 * DAY)
    assert await retention.expire_files(runtime, now=clock.now()) == 0
    assert await file_row(runtime, result.id) is not None
    assert await file_row(runtime, source.id) is not None
    assert await expired_at(runtime, job.id) is None


async def test_unset_retention_keeps_files_forever(
    settings: Settings, clock: FakeClock, alice: Actor, runtime: Runtime
) -> None:
    forever = build_runtime(
        settings.model_copy(update={"retention_days_results": None, "retention_days_inputs": None}),
        clock=clock,
    )
    try:
        source = await make_file(forever, alice.id, b"x")
        clock.advance(10_000 * DAY)
        assert await retention.expire_files(forever, now=clock.now()) == 0
        assert await retention.RetentionTimer(forever).run_if_due(clock.now()) is None
        assert await file_row(forever, source.id) is not None
    finally:
        await forever.close()


async def test_many_files_go_in_batches_and_each_sweep_is_bounded(
    runtime: Runtime, clock: FakeClock, alice: Actor
) -> None:
    files = [await make_file(runtime, alice.id, b"x") for _ in range(7)]
    clock.advance(31 * DAY)
    assert await retention.expire_files(runtime, now=clock.now(), max_files=5) == 5
    assert await retention.expire_files(runtime, now=clock.now(), max_files=5) == 2
    assert [await file_row(runtime, f.id) for f in files] == [None] * 7


class FailingDeletes(LocalStorage):
    """Our local storage whose deletes fail, as if the object store were down."""

    async def delete(self, key: str) -> None:
        raise StorageUnavailable("object storage cannot be reached (test)")


async def test_a_failed_delete_keeps_the_row_for_the_next_sweep(
    settings: Settings, clock: FakeClock, alice: Actor, runtime: Runtime
) -> None:
    source = await make_file(runtime, alice.id, b"x")
    clock.advance(31 * DAY)
    broken = build_runtime(
        settings, clock=clock, storage=FailingDeletes(settings.data_dir / "files")
    )
    try:
        with pytest.raises(StorageUnavailable):
            await retention.expire_files(broken, now=clock.now())
    finally:
        await broken.close()
    assert await file_row(runtime, source.id) is not None
    assert await retention.expire_files(runtime, now=clock.now()) == 1
    assert await file_row(runtime, source.id) is None


async def test_the_timer_sweeps_at_most_once_per_interval(
    runtime: Runtime, clock: FakeClock, alice: Actor
) -> None:
    timer = retention.RetentionTimer(runtime)
    first = await make_file(runtime, alice.id, b"x")
    clock.advance(31 * DAY)
    assert await timer.run_if_due(clock.now()) == 1
    assert await file_row(runtime, first.id) is None

    late = await make_file(runtime, alice.id, b"y", created_at=clock.now() - timedelta(days=40))
    clock.advance(runtime.settings.retention_interval_seconds - 1)
    assert await timer.run_if_due(clock.now()) is None
    assert await file_row(runtime, late.id) is not None
    clock.advance(1)
    assert await timer.run_if_due(clock.now()) == 1
    assert await file_row(runtime, late.id) is None


async def test_the_worker_loop_runs_retention(
    runtime: Runtime, clock: FakeClock, alice: Actor
) -> None:
    source = await make_file(runtime, alice.id, b"x")
    clock.advance(31 * DAY)

    async def no_health_checks(_runtime: Runtime) -> None:
        return None

    stop = asyncio.Event()
    worker = Worker(runtime, worker_id="retention-test", health_checks=no_health_checks)
    running = asyncio.create_task(worker.run(stop))
    try:

        async def removed() -> bool:
            return await file_row(runtime, source.id) is None

        await eventually(removed, what="the old file to be removed", within=10)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert not await runtime.storage.exists(source.storage_key)


@pytest.fixture
async def s3_runtime(
    settings: Settings, clock: FakeClock, seaweedfs: S3Server
) -> AsyncIterator[Runtime]:
    rt = build_runtime(
        settings.model_copy(update={"storage_url": SecretStr(seaweedfs.storage_url())}),
        clock=clock,
    )
    yield rt
    await rt.close()


async def test_retention_removes_the_objects_on_s3(
    s3_runtime: Runtime, clock: FakeClock, alice: Actor
) -> None:
    source = await make_file(s3_runtime, alice.id, b"x" * 1000)
    assert await s3_runtime.storage.exists(source.storage_key)
    clock.advance(31 * DAY)
    assert await retention.expire_files(s3_runtime, now=clock.now()) == 1
    assert not await s3_runtime.storage.exists(source.storage_key)
    async with s3_runtime.db.session() as session:
        assert await session.scalar(select(JobInput).where(JobInput.file_id == source.id)) is None
