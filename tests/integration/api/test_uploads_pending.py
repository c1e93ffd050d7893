"""What unfinished uploads may reserve: capped by default, with or without a storage quota.

Parts are stored as they arrive, so uploads a user starts and never finishes hold storage
until they expire; IMPUTEHUB_MAX_PENDING_UPLOAD_BYTES bounds their declared sizes.
"""

from __future__ import annotations

import httpx

from imputehub.config import Settings
from imputehub.runtime import Runtime
from tests.integration.api.upload_helpers import (
    UPLOADS,
    init,
    part_paths,
    rows,
    started,
    upload_whole,
    vcf,
)
from tests.support.api import Actor

GiB = 1024**3
PENDING = 16 * 1024


def refused_for_pending(response: httpx.Response, limit: int) -> str:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert body["limit"] == limit
    detail: str = body["detail"]
    assert "IMPUTEHUB_MAX_PENDING_UPLOAD_BYTES" in detail
    return detail


async def test_unfinished_uploads_are_capped_by_default_without_a_quota(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    assert settings.storage_quota_bytes is None  # no admin quota: the default cap still holds
    largest = settings.max_upload_size
    fits = settings.max_pending_upload_bytes // largest
    body = {"filename": "huge.vcf.gz", "size": largest}
    for _ in range(fits):
        response = await client.post(f"{UPLOADS}/init", json=body, headers=alice.headers)
        assert response.status_code == 201, response.text

    refused = await client.post(f"{UPLOADS}/init", json=body, headers=alice.headers)
    detail = refused_for_pending(refused, settings.max_pending_upload_bytes)
    assert f"{fits * largest} bytes already declared" in detail
    assert await rows(runtime) == (0, fits, 0)  # the refused one left nothing behind


async def test_the_cap_counts_unfinished_uploads_only_and_aborting_frees_room(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor, bob: Actor
) -> None:
    runtime.settings = settings.model_copy(update={"max_pending_upload_bytes": PENDING})
    # A finished upload is a stored file: only a quota counts it, not this cap.
    await upload_whole(client, alice, vcf())
    pending = await started(client, alice, bytes(10_000))

    refused_for_pending(await init(client, alice, bytes(PENDING - 10_000 + 1)), PENDING)
    assert len(part_paths(settings)) == 0
    assert (await init(client, alice, bytes(PENDING - 10_000))).status_code == 201
    # Each user has a cap of their own.
    assert (await init(client, bob, bytes(PENDING))).status_code == 201

    await client.delete(f"{UPLOADS}/{pending['upload_id']}", headers=alice.headers)
    assert (await init(client, alice, bytes(10_000))).status_code == 201


async def test_a_storage_quota_still_applies_under_the_cap(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    quota = PENDING // 2
    runtime.settings = settings.model_copy(
        update={"max_pending_upload_bytes": PENDING, "storage_quota_bytes": quota}
    )
    refused = await init(client, alice, bytes(quota + 1))
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "quota_exceeded"
    assert refused.json()["limit"] == quota  # the quota, not the cap, said no
    assert (await init(client, alice, bytes(quota))).status_code == 201
