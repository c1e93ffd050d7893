"""The retention chore's sweep of what crashes leave in storage, on local disk and S3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, Upload
from imputehub.domain.jobs import JobStatus
from imputehub.domain.uploads import UploadStatus
from imputehub.files import retention
from imputehub.runtime import Runtime, build_runtime
from tests.integration.storage.test_partials import keys, leave_partial, partials, stream
from tests.support.api import Actor
from tests.support.factories import make_job, make_panel, make_service
from tests.support.seaweedfs import S3Server

BOOKKEEPING = (".fetched/m.json", ".downloads/d.json", ".downloads/d/0", ".downloads/d/1")


@pytest.fixture(params=["local", "s3"])
async def hub(
    request: pytest.FixtureRequest, settings: Settings, clock: FakeClock
) -> AsyncIterator[Runtime]:
    if request.param == "s3":
        seaweedfs: S3Server = request.getfixturevalue("seaweedfs")
        settings = settings.model_copy(update={"storage_url": SecretStr(seaweedfs.storage_url())})
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    await runtime.close()


async def job_with_leftovers(runtime: Runtime, user_id: str, status: JobStatus) -> Job:
    service = await make_service(runtime)
    panel = await make_panel(runtime, service)
    job = await make_job(
        runtime, user_id=user_id, service=service, panel=panel, files=[], status=status.value
    )
    folder = retention.results_folder(job.id)
    await runtime.storage.write(f"{folder}chr20.txt", stream(b"a result"))
    for key in BOOKKEEPING:
        await runtime.storage.write(folder + key, stream(b"kept"))
    await leave_partial(runtime.storage, f"{folder}half.txt")
    return job


async def test_the_sweep_removes_what_crashes_left_of_finished_jobs(
    hub: Runtime, alice: Actor
) -> None:
    done = await job_with_leftovers(hub, alice.id, JobStatus.COMPLETED)
    failed = await job_with_leftovers(hub, alice.id, JobStatus.FAILED)
    active = await job_with_leftovers(hub, alice.id, JobStatus.RUNNING)
    # A finished job whose marks are gone, but (on local disk) not their directory.
    await hub.storage.delete(f"{retention.results_folder(failed.id)}.fetched/m.json")
    now = datetime.now(UTC)

    swept = await retention.sweep_litter(hub, now=now)

    assert swept == retention.Swept(partials=0, jobs=2)
    for job in (done, failed):
        assert await keys(hub.storage, retention.results_folder(job.id)) == {
            f"results/{job.id}/chr20.txt"
        }
    assert await keys(hub.storage, retention.results_folder(active.id)) == {
        f"results/{active.id}/{name}" for name in ("chr20.txt", *BOOKKEEPING)
    }
    # The active job's partial write is young: its writer may be at work.
    assert await partials(hub.storage) == 1
    assert await retention.sweep_litter(hub, now=now) == retention.Swept(partials=0, jobs=0)

    # A day later nobody writes it any more; the active job's bookkeeping stays.
    later = await retention.sweep_litter(hub, now=now + timedelta(days=1, minutes=1))
    assert later == retention.Swept(partials=1, jobs=0)
    assert await partials(hub.storage) == 0
    assert len(await keys(hub.storage, retention.results_folder(active.id))) == 5


async def test_the_sweep_keeps_resumable_uploads_in_progress(
    hub: Runtime, alice: Actor, clock: FakeClock
) -> None:
    key = "uploads/u1/data.vcf.gz"
    handle = await hub.storage.create_multipart(key)
    await hub.storage.write_part(key, handle, 0, stream(b"part one"))
    now = clock.now()
    async with hub.db.session() as session:
        session.add(
            Upload(
                user_id=alice.id,
                filename="data.vcf.gz",
                storage_key=key,
                storage_handle=handle,
                size=100,
                part_size=8,
                part_count=13,
                status=UploadStatus.OPEN.value,
                created_at=now,
                updated_at=now,
                expires_at=now + timedelta(days=7),
            )
        )
    later = datetime.now(UTC) + timedelta(days=2)
    assert await retention.sweep_litter(hub, now=later) == retention.Swept(partials=0, jobs=0)
    assert await hub.storage.list_parts(key, handle) == {0: 8}


async def test_the_timer_sweeps_at_most_once_per_interval(hub: Runtime, clock: FakeClock) -> None:
    timer = retention.RetentionTimer(hub, sweep_every=timedelta(minutes=5))
    assert await timer.sweep_if_due(clock.now()) == retention.Swept(partials=0, jobs=0)
    assert await timer.sweep_if_due(clock.now()) is None
    clock.advance(300)
    assert await timer.sweep_if_due(clock.now()) is not None
