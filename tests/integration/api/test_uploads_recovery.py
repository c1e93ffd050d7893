"""Uploads over time: the worker's expiry cleanup, crashed completions, lost parts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Upload
from imputehub.domain.uploads import UploadStatus
from imputehub.files.upload_expiry import clean_up_uploads
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.api.upload_helpers import (
    UPLOADS,
    complete,
    object_paths,
    part_paths,
    put_part,
    rows,
    send_parts,
    sha256,
    split,
    started,
    stored_paths,
    upload_whole,
    vcf,
)
from tests.support.api import Actor

WAIT = 10.0
POLL = 0.02


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # An hour to expire: shorter than an access token lives.
    return settings.model_copy(update={"upload_expiry_seconds": 3600})


async def no_health_checks(runtime: Runtime) -> int:
    return 0


async def run_worker_until(runtime: Runtime, done: Callable[[], Awaitable[bool]]) -> None:
    """Run the real worker loop until `done()` holds (failing after WAIT seconds)."""
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(runtime, health_checks=no_health_checks).run(stop))
    try:
        for _ in range(int(WAIT / POLL)):
            if await done():
                return
            await asyncio.sleep(POLL)
        raise AssertionError(f"the worker did not get there within {WAIT} s")
    finally:
        stop.set()
        await task


async def set_upload(runtime: Runtime, upload_id: str, **values: object) -> None:
    async with runtime.db.session() as session:
        await session.execute(update(Upload).where(Upload.id == upload_id).values(**values))


async def test_the_worker_removes_expired_uploads_and_nothing_else(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    clock: FakeClock,
    alice: Actor,
) -> None:
    content = vcf()
    expiring = await started(client, alice, content)
    parts = split(content, expiring["part_size"])
    for index in (0, 1):
        await put_part(client, alice, expiring["upload_id"], index, parts[index])
    record = await upload_whole(client, alice, content)
    clock.advance(settings.upload_expiry_seconds + 1)
    fresh = await started(client, alice, content)
    await put_part(client, alice, fresh["upload_id"], 0, parts[0])
    assert len(part_paths(settings)) == 3

    async def cleaned() -> bool:
        return await rows(runtime) == (1, 1, 1)

    await run_worker_until(runtime, cleaned)
    # The expired upload's parts are gone; the fresh one's part and the finished file stay.
    assert len(part_paths(settings)) == 1
    assert len(object_paths(settings)) == 1
    gone = await client.get(f"{UPLOADS}/{expiring['upload_id']}", headers=alice.headers)
    assert gone.status_code == 404
    state = await client.get(f"{UPLOADS}/{fresh['upload_id']}", headers=alice.headers)
    assert state.json()["parts"][0]["index"] == 0
    download = await client.get(f"/api/v1/files/{record['id']}/content", headers=alice.headers)
    assert download.content == content


async def test_a_completion_in_progress_holds_the_upload_until_its_lease_lapses(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    await send_parts(client, alice, plan["upload_id"], parts)
    # Another request is completing it right now.
    await set_upload(
        runtime,
        plan["upload_id"],
        status=UploadStatus.COMPLETING.value,
        completing_until=clock.now() + timedelta(seconds=60),
    )
    for response in (
        await complete(client, alice, plan["upload_id"]),
        await client.delete(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers),
        await put_part(client, alice, plan["upload_id"], 0, parts[0]),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "upload_completing"
    state = await client.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert state.json()["status"] == "completing"

    # That request died: once its lease lapses, completing again finishes the job.
    clock.advance(61)
    response = await complete(client, alice, plan["upload_id"])
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha256(content)


async def test_completion_resumes_after_a_crash_once_the_parts_were_joined(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    clock: FakeClock,
    alice: Actor,
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    await send_parts(client, alice, plan["upload_id"], parts)
    async with runtime.db.session() as session:
        upload = await session.get(Upload, plan["upload_id"])
        assert upload is not None
        key, handle = upload.storage_key, upload.storage_handle
    # The crashed request had joined the parts, then died before recording the file.
    await runtime.storage.complete_multipart(key, handle, list(range(len(parts))))
    await set_upload(
        runtime,
        plan["upload_id"],
        status=UploadStatus.COMPLETING.value,
        completing_until=clock.now() - timedelta(seconds=1),
    )
    response = await complete(client, alice, plan["upload_id"])
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha256(content)
    assert stored_paths(settings) == {key}


async def test_cleanup_frees_a_crashed_completion_and_a_failed_abort(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    clock: FakeClock,
    alice: Actor,
) -> None:
    content = vcf()
    crashed = await started(client, alice, content)
    parts = split(content, crashed["part_size"])
    await send_parts(client, alice, crashed["upload_id"], parts)
    async with runtime.db.session() as session:
        upload = await session.get(Upload, crashed["upload_id"])
        assert upload is not None
        await runtime.storage.complete_multipart(
            upload.storage_key, upload.storage_handle, list(range(len(parts)))
        )
    await set_upload(
        runtime,
        crashed["upload_id"],
        status=UploadStatus.COMPLETING.value,
        completing_until=clock.now() + timedelta(seconds=60),
    )
    aborting = await started(client, alice, content)
    await put_part(client, alice, aborting["upload_id"], 0, parts[0])
    await set_upload(runtime, aborting["upload_id"], status=UploadStatus.ABORTING.value)

    # The half-aborted one goes at once; the completing one only once expired and let go.
    assert await clean_up_uploads(runtime, now=clock.now()) == 1
    assert len(object_paths(settings)) == 1
    assert part_paths(settings) == set()
    clock.advance(settings.upload_expiry_seconds + 1)
    assert await clean_up_uploads(runtime, now=clock.now()) == 1
    assert stored_paths(settings) == set()
    assert await rows(runtime) == (0, 0, 0)
    assert await clean_up_uploads(runtime, now=clock.now()) == 0


async def test_parts_the_storage_lost_are_asked_for_again(
    client: httpx.AsyncClient, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    await send_parts(client, alice, plan["upload_id"], parts)
    (lost,) = settings.data_dir.glob("files/.multipart/*/2.part")
    lost.unlink()

    response = await complete(client, alice, plan["upload_id"])
    assert response.status_code == 409, response.text
    assert (response.json()["code"], response.json()["missing"]) == ("upload_incomplete", [2])
    state = (await client.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)).json()
    assert (state["status"], state["missing"]) == ("open", [2])
    assert (await put_part(client, alice, plan["upload_id"], 2, parts[2])).status_code == 200
    response = await complete(client, alice, plan["upload_id"])
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha256(content)
