"""Bad input to resumable uploads: a clear 4xx, and nothing half-stored.

"Nothing half-stored": no StoredFile row and no object under the storage root, except the
parts of an upload that is still open (and then only its good parts).
"""

from __future__ import annotations

import gzip

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.domain.uploads import MAX_PART_SIZE
from imputehub.runtime import Runtime
from tests.integration.api.upload_helpers import (
    PART,
    UPLOADS,
    complete,
    init,
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
from tests.support.vcf import vcf_text

LIMIT = 64 * 1024
QUOTA = 16 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # An hour to expire: shorter than an access token lives.
    return settings.model_copy(update={"max_upload_size": LIMIT, "upload_expiry_seconds": 3600})


def problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["code"] == code, body
    return body


async def state(client: httpx.AsyncClient, actor: Actor, upload_id: str) -> dict[str, object]:
    response = await client.get(f"{UPLOADS}/{upload_id}", headers=actor.headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


# --- init -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"size": 0}, 422, "invalid_input"),
        ({"size": -5}, 422, "invalid_input"),
        ({"size": LIMIT + 1}, 413, "payload_too_large"),
        ({"part_size": 0}, 422, "invalid_input"),
        ({"part_size": MAX_PART_SIZE + 1}, 422, "invalid_input"),
        ({"part_size": 1}, 422, "invalid_input"),  # 40,000 parts: more than storage allows
        ({"sha256": "not-a-checksum"}, 422, "invalid_input"),
        ({"filename": ""}, 422, "invalid_input"),
        ({"surprise": True}, 422, "invalid_input"),
    ],
)
async def test_init_refuses_bad_requests(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    alice: Actor,
    fields: dict[str, object],
    status: int,
    code: str,
) -> None:
    body: dict[str, object] = {"filename": "x.vcf.gz", "size": 40_000, "part_size": PART}
    body.update(fields)
    response = await client.post(f"{UPLOADS}/init", json=body, headers=alice.headers)
    problem(response, status, code)
    assert stored_paths(settings) == set()
    assert await rows(runtime) == (0, 0, 0)


async def test_quota_counts_stored_files_and_unfinished_uploads(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor, bob: Actor
) -> None:
    runtime.settings = settings.model_copy(update={"storage_quota_bytes": QUOTA})
    stored = await upload_whole(client, alice, vcf())  # about 5 kB
    pending = await started(client, alice, bytes(6000))
    used = stored["size"] + 6000

    refused = await init(client, alice, bytes(QUOTA - used + 1))
    body = problem(refused, 413, "quota_exceeded")
    assert body["limit"] == QUOTA
    assert f"quota of {QUOTA} bytes ({used} bytes in use" in str(body["detail"])
    assert len(part_paths(settings)) == 0
    assert await rows(runtime) == (1, 2, 0)  # the completed upload and the pending one

    # Exactly the room left fits; other users have quotas of their own.
    assert (await init(client, bob, bytes(QUOTA))).status_code == 201
    # Aborting an upload gives its room back.
    await client.delete(f"{UPLOADS}/{pending['upload_id']}", headers=alice.headers)
    assert (await init(client, alice, bytes(QUOTA - stored["size"]))).status_code == 201


# --- parts ----------------------------------------------------------------------------------


async def test_a_part_index_out_of_range_is_refused(
    client: httpx.AsyncClient, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    count = plan["part_count"]
    body = problem(
        await put_part(client, alice, plan["upload_id"], count, b"x"), 422, "invalid_input"
    )
    assert f"parts 0 to {count - 1}" in str(body["detail"])
    negative = await client.put(
        f"{UPLOADS}/{plan['upload_id']}/part/-1", content=b"x", headers=alice.headers
    )
    problem(negative, 422, "invalid_input")
    assert part_paths(settings) == set()


async def test_a_part_larger_than_the_part_size_is_not_kept(
    client: httpx.AsyncClient, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    await put_part(client, alice, plan["upload_id"], 0, parts[0])
    before = part_paths(settings)

    # Declared too large: refused before a byte is read.
    problem(
        await put_part(client, alice, plan["upload_id"], 0, parts[0] + b"x"),
        413,
        "payload_too_large",
    )

    async def grows() -> object:
        yield parts[0]
        yield b"extra"

    streamed = await client.put(
        f"{UPLOADS}/{plan['upload_id']}/part/0", content=grows(), headers=alice.headers
    )
    problem(streamed, 413, "payload_too_large")
    # The earlier good copy is still the part.
    assert part_paths(settings) == before
    assert (await state(client, alice, plan["upload_id"]))["parts"] == [
        {"index": 0, "size": len(parts[0]), "sha256": sha256(parts[0])}
    ]


@pytest.mark.parametrize("which", ["first", "last"])
async def test_a_part_of_the_wrong_size_is_not_kept(
    client: httpx.AsyncClient, settings: Settings, alice: Actor, which: str
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    index = 0 if which == "first" else len(parts) - 1
    short = parts[index][:-1]
    body = problem(
        await put_part(client, alice, plan["upload_id"], index, short), 422, "part_size_mismatch"
    )
    assert f"must have exactly {len(parts[index])} bytes" in str(body["detail"])
    assert part_paths(settings) == set()
    assert (await state(client, alice, plan["upload_id"]))["received_bytes"] == 0


async def test_a_part_with_the_wrong_checksum_is_not_kept(
    client: httpx.AsyncClient, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    upload_id = plan["upload_id"]
    assert (await put_part(client, alice, upload_id, 0, parts[0])).status_code == 200
    damaged = bytes([parts[0][0] ^ 1]) + parts[0][1:]

    refused = await put_part(client, alice, upload_id, 0, damaged, checksum=sha256(parts[0]))
    problem(refused, 422, "part_checksum_mismatch")
    problem(
        await put_part(client, alice, upload_id, 1, parts[1], checksum="abc"), 422, "invalid_input"
    )
    assert (await state(client, alice, upload_id))["parts"] == [
        {"index": 0, "size": len(parts[0]), "sha256": sha256(parts[0])}
    ]
    assert len(part_paths(settings)) == 1
    # The good copy is what the file is made of.
    await send_parts(client, alice, upload_id, parts)
    assert (await complete(client, alice, upload_id)).json()["sha256"] == sha256(content)


# --- complete -------------------------------------------------------------------------------


async def test_completing_with_parts_missing_names_them(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    for index in range(1, len(parts) - 1):
        await put_part(client, alice, plan["upload_id"], index, parts[index])
    body = problem(await complete(client, alice, plan["upload_id"]), 409, "upload_incomplete")
    assert body["missing"] == [0, len(parts) - 1]
    assert await rows(runtime) == (0, 1, len(parts) - 2)
    assert object_paths(settings) == set()
    # Still open: the rest can follow.
    await send_parts(client, alice, plan["upload_id"], parts)
    assert (await complete(client, alice, plan["upload_id"])).status_code == 201


async def expect_refused_at_completion(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    alice: Actor,
    content: bytes,
    code: str,
    **fields: object,
) -> dict[str, object]:
    plan = await started(client, alice, content, **fields)
    await send_parts(client, alice, plan["upload_id"], split(content, plan["part_size"]))
    body = problem(await complete(client, alice, plan["upload_id"]), 422, code)
    # Nothing kept: no file, no upload, no bytes.
    assert await rows(runtime) == (0, 0, 0)
    assert stored_paths(settings) == set()
    gone = await client.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert gone.status_code == 404
    return body


async def test_a_sha256_mismatch_keeps_nothing(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    body = await expect_refused_at_completion(
        client, runtime, settings, alice, vcf(), "sha256_mismatch", sha256="0" * 64
    )
    assert "not the " + "0" * 64 in str(body["detail"])


async def test_a_size_mismatch_in_storage_keeps_nothing(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    await send_parts(client, alice, plan["upload_id"], parts)
    # The storage's copy of a part changes behind the hub's back (a damaged disk).
    staged = sorted(settings.data_dir.glob("files/.multipart/*/1.part"))
    assert len(staged) == 1
    staged[0].write_bytes(parts[1] + b"more")
    body = problem(await complete(client, alice, plan["upload_id"]), 422, "size_mismatch")
    assert f"not the {len(content)} bytes declared" in str(body["detail"])
    assert await rows(runtime) == (0, 0, 0)
    assert stored_paths(settings) == set()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"PK\x03\x04 this is a zip file, not a VCF" * 100, "not_vcf"),
        (b"\x00" * 3000, "not_vcf"),
        (gzip.compress(b"hello, I am a text file\n" * 200, mtime=0), "not_vcf"),
    ],
)
async def test_non_vcf_content_is_refused_with_the_report(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    alice: Actor,
    content: bytes,
    reason: str,
) -> None:
    body = await expect_refused_at_completion(
        client, runtime, settings, alice, content, "invalid_vcf"
    )
    report = body["report"]
    assert isinstance(report, dict)
    assert report["fatal"] is True
    assert reason in [p["code"] for p in report["problems"]]
    assert "is not a VCF the hub can use" in str(body["detail"])


async def test_a_truncated_gzip_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    whole = vcf()
    cut = whole[: len(whole) // 2]
    body = await expect_refused_at_completion(client, runtime, settings, alice, cut, "invalid_vcf")
    report = body["report"]
    assert isinstance(report, dict)
    assert "truncated_gzip" in [p["code"] for p in report["problems"]]
    assert "truncated" in str(body["detail"])


async def test_a_plain_text_vcf_is_kept_with_its_errors_reported(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    # Readable but not bgzipped: not fatal, so the file is kept, and the report says why
    # a service would refuse it (job creation checks that later).
    record = await upload_whole(client, alice, vcf_text(samples=20, variants=50))
    assert record["size"] > 0
    assert await rows(runtime) == (1, 1, 0)


# --- expiry ---------------------------------------------------------------------------------


async def test_an_expired_upload_answers_410(
    client: httpx.AsyncClient, settings: Settings, alice: Actor, clock: FakeClock
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    upload_id = plan["upload_id"]

    clock.advance(settings.upload_expiry_seconds - 60)
    # A part received pushes the expiry back.
    assert (await put_part(client, alice, upload_id, 0, parts[0])).status_code == 200
    clock.advance(120)
    assert (await state(client, alice, upload_id))["status"] == "open"

    clock.advance(settings.upload_expiry_seconds)
    for response in (
        await client.get(f"{UPLOADS}/{upload_id}", headers=alice.headers),
        await put_part(client, alice, upload_id, 1, parts[1]),
        await complete(client, alice, upload_id),
    ):
        body = problem(response, 410, "upload_expired")
        assert "start a new one" in str(body["detail"])
    # Only the part received before it expired is stored, until the worker's cleanup.
    assert len(part_paths(settings)) == 1
    assert object_paths(settings) == set()
    # The owner may still drop it at once.
    assert (await client.delete(f"{UPLOADS}/{upload_id}", headers=alice.headers)).status_code == 204
    assert stored_paths(settings) == set()
