"""On S3, downloads redirect to a short-lived presigned URL that the object store serves."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest
from pydantic import SecretStr

from imputehub.config import Settings
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file
from tests.support.seaweedfs import S3Server

CONTENT = os.urandom(5000)
ETAG = f'"{hashlib.sha256(CONTENT).hexdigest()}"'


@pytest.fixture
def settings(settings: Settings, seaweedfs: S3Server) -> Settings:
    return settings.model_copy(
        update={"storage_url": SecretStr(seaweedfs.storage_url()), "storage_presign_seconds": 60}
    )


async def test_download_redirects_to_a_presigned_url(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    record = await make_file(runtime, alice.id, CONTENT, filename="result.dose.vcf.gz")
    response = await client.get(f"/api/v1/files/{record.id}/content", headers=alice.headers)
    assert response.status_code == 307
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert "X-Amz-Expires=60" in location
    assert alice.headers["Authorization"].split()[1] not in location

    # The object store serves it without our token, ranges included.
    async with httpx.AsyncClient() as outside:
        whole = await outside.get(location)
        part = await outside.get(location, headers={"Range": "bytes=10-19"})
    assert (whole.status_code, whole.content) == (200, CONTENT)
    assert whole.headers["content-disposition"].startswith(
        'attachment; filename="result.dose.vcf.gz"'
    )
    assert (part.status_code, part.content) == (206, CONTENT[10:20])


async def test_not_modified_is_answered_without_a_redirect(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    record = await make_file(runtime, alice.id, CONTENT)
    response = await client.get(
        f"/api/v1/files/{record.id}/content", headers={**alice.headers, "If-None-Match": ETAG}
    )
    assert response.status_code == 304


async def test_another_users_file_gets_no_url(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    record = await make_file(runtime, alice.id, CONTENT)
    response = await client.get(f"/api/v1/files/{record.id}/content", headers=bob.headers)
    assert response.status_code == 404
    assert "location" not in response.headers


async def test_the_stored_bytes_are_in_the_bucket(runtime: Runtime, alice: Actor) -> None:
    record = await make_file(runtime, alice.id, CONTENT)
    assert await runtime.storage.size(record.storage_key) == len(CONTENT)
    assert type(runtime.storage).__name__ == "S3Storage"
