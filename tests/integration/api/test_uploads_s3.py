"""Resumable uploads on S3 storage (a real SeaweedFS): parts become an S3 multipart upload."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import StoredFile
from imputehub.domain.uploads import MiB
from imputehub.files import testdata
from imputehub.files.s3 import S3Storage
from imputehub.runtime import Runtime, build_runtime
from tests.integration.api.upload_helpers import (
    UPLOADS,
    complete,
    init,
    put_part,
    sha256,
    split,
    started,
)
from tests.support.api import Actor
from tests.support.seaweedfs import S3Server

S3_MIN_PART = 5 * MiB


@pytest.fixture
def s3_prefix() -> str:
    return f"uploads-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def runtime(
    settings: Settings, clock: FakeClock, seaweedfs: S3Server, s3_prefix: str, tmp_path: Path
) -> AsyncIterator[Runtime]:
    storage = S3Storage.from_url(seaweedfs.storage_url(s3_prefix), spool_dir=tmp_path / "spool")
    rt = build_runtime(settings, clock=clock, storage=storage)
    yield rt
    await rt.close()


def plain_vcf(size: int) -> bytes:
    """An uncompressed VCF of at least `size` bytes: readable, so kept (with an error noted)."""
    spec = testdata.Spec(samples=1000, variants=size // 4000 + 1, chrom="20", build="hg19")
    return testdata.header(spec) + b"".join(testdata.records(spec))


async def test_an_upload_in_parallel_parts_on_s3(
    client: httpx.AsyncClient,
    runtime: Runtime,
    seaweedfs: S3Server,
    s3_prefix: str,
    alice: Actor,
) -> None:
    content = plain_vcf(S3_MIN_PART + 100_000)
    # S3 refuses parts under 5 MiB (but the last): so does the hub, up front.
    small = await init(client, alice, content, part_size=MiB)
    assert small.status_code == 422
    assert f"between {S3_MIN_PART} and" in small.json()["detail"]

    plan = await started(client, alice, content, part_size=S3_MIN_PART)
    parts = split(content, plan["part_size"])
    assert len(parts) == 2
    answers = await asyncio.gather(
        *(
            put_part(client, alice, plan["upload_id"], i, parts[i], checksum=sha256(parts[i]))
            for i in (1, 0)
        )
    )
    assert [a.status_code for a in answers] == [200, 200]
    state = (await client.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)).json()
    assert (state["missing"], state["received_bytes"]) == ([], len(content))

    response = await complete(client, alice, plan["upload_id"])
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha256(content)
    async with runtime.db.session() as session:
        record = await session.get(StoredFile, response.json()["id"])
    assert record is not None
    assert record.validation is not None
    assert "uncompressed" in [p["code"] for p in record.validation["problems"]]
    stored = b"".join([chunk async for chunk in runtime.storage.read(record.storage_key)])
    assert stored == content
    assert seaweedfs.open_uploads(s3_prefix) == []
    assert seaweedfs.keys(s3_prefix) == [f"{s3_prefix}/{record.storage_key}"]


async def test_aborting_on_s3_leaves_nothing(
    client: httpx.AsyncClient, seaweedfs: S3Server, s3_prefix: str, alice: Actor
) -> None:
    content = plain_vcf(S3_MIN_PART + 10)
    plan = await started(client, alice, content, part_size=S3_MIN_PART)
    parts = split(content, plan["part_size"])
    assert (await put_part(client, alice, plan["upload_id"], 0, parts[0])).status_code == 200
    assert len(seaweedfs.open_uploads(s3_prefix)) == 1

    response = await client.delete(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert response.status_code == 204
    assert seaweedfs.open_uploads(s3_prefix) == []
    assert seaweedfs.keys(s3_prefix) == []
