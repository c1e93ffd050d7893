"""Resumable uploads: the happy paths a client takes, including a resume after a restart."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import StoredFile
from imputehub.domain.uploads import DEFAULT_PART_SIZE, MiB
from imputehub.runtime import Runtime, build_runtime
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


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def download(client: httpx.AsyncClient, actor: Actor, file_id: str) -> bytes:
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.content


async def test_init_answers_the_plan(
    client: httpx.AsyncClient, alice: Actor, clock: FakeClock
) -> None:
    content = vcf()
    response = await init(client, alice, content, part_size=PART)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"upload_id", "part_size", "part_count", "expires_at"}
    assert body["part_size"] == PART
    assert body["part_count"] == -(-len(content) // PART)
    assert parse_time(body["expires_at"]) == clock.now() + timedelta(hours=24)

    # Without a part size the hub picks 8 MiB; the last part holds the remainder.
    big = await client.post(
        f"{UPLOADS}/init",
        json={"filename": "big.vcf.gz", "size": 20 * MiB + 1},
        headers=alice.headers,
    )
    assert big.status_code == 201, big.text
    assert (big.json()["part_size"], big.json()["part_count"]) == (DEFAULT_PART_SIZE, 3)


async def test_parts_in_parallel_and_in_any_order_make_the_file(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    upload_id = plan["upload_id"]
    parts = split(content, plan["part_size"])
    assert len(parts) >= 5
    order = list(reversed(range(len(parts))))
    answers = await asyncio.gather(
        *(put_part(client, alice, upload_id, i, parts[i], checksum=sha256(parts[i])) for i in order)
    )
    assert [a.status_code for a in answers] == [200] * len(parts)
    assert {a.json()["index"]: a.json() for a in answers}[0] == {
        "index": 0,
        "size": len(parts[0]),
        "sha256": sha256(parts[0]),
    }

    state = (await client.get(f"{UPLOADS}/{upload_id}", headers=alice.headers)).json()
    assert state["status"] == "open"
    assert state["missing"] == []
    assert state["received_bytes"] == len(content)
    assert [p["index"] for p in state["parts"]] == list(range(len(parts)))
    assert [p["sha256"] for p in state["parts"]] == [sha256(p) for p in parts]

    response = await complete(client, alice, upload_id)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["filename"] == "study.chr20.vcf.gz"
    assert (record["size"], record["sha256"], record["kind"]) == (
        len(content),
        sha256(content),
        "input",
    )
    assert await download(client, alice, record["id"]) == content

    # The VCF report is stored with the file; the parts are gone, the file alone remains.
    async with runtime.db.session() as session:
        stored = await session.get(StoredFile, record["id"])
    assert stored is not None
    assert stored.validation is not None
    assert stored.validation["samples"] == 20
    assert stored.validation["fatal"] is False
    assert part_paths(settings) == set()
    assert object_paths(settings) == {stored.storage_key}
    assert await rows(runtime) == (1, 1, 0)

    done = (await client.get(f"{UPLOADS}/{upload_id}", headers=alice.headers)).json()
    assert (done["status"], done["file_id"], done["missing"]) == ("completed", record["id"], [])


async def test_a_part_sent_twice_replaces_itself(client: httpx.AsyncClient, alice: Actor) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    wrong = bytes(len(parts[1]))
    assert (await put_part(client, alice, plan["upload_id"], 1, wrong)).status_code == 200
    await send_parts(client, alice, plan["upload_id"], parts)

    state = (await client.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)).json()
    assert len(state["parts"]) == len(parts)
    assert state["parts"][1]["sha256"] == sha256(parts[1])
    record = (await complete(client, alice, plan["upload_id"])).json()
    assert await download(client, alice, record["id"]) == content


async def test_a_part_may_arrive_without_content_length(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content, part_size=4096)
    parts = split(content, plan["part_size"])

    async def trickle(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    for index, data in enumerate(parts):
        response = await client.put(
            f"{UPLOADS}/{plan['upload_id']}/part/{index}",
            content=trickle(data),
            headers=alice.headers,
        )
        assert response.status_code == 200, response.text
    record = (await complete(client, alice, plan["upload_id"])).json()
    assert record["sha256"] == sha256(content)


async def test_resume_after_a_restart_sends_only_the_missing_parts(
    client: httpx.AsyncClient, settings: Settings, clock: FakeClock, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    for index in (0, 2, 3):
        response = await put_part(client, alice, plan["upload_id"], index, parts[index])
        assert response.status_code == 200

    # A new process on the same data dir and database: it knows what arrived.
    restarted = build_runtime(settings, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(restarted))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as again:
            state = (
                await again.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
            ).json()
            expected_missing = [i for i in range(len(parts)) if i not in (0, 2, 3)]
            assert state["missing"] == expected_missing
            assert state["received_bytes"] == sum(len(parts[i]) for i in (0, 2, 3))
            for index in state["missing"]:
                response = await put_part(again, alice, plan["upload_id"], index, parts[index])
                assert response.status_code == 200
            response = await complete(again, alice, plan["upload_id"])
            assert response.status_code == 201, response.text
            assert response.json()["sha256"] == sha256(content)
    finally:
        await restarted.close()


async def test_completing_twice_returns_the_same_file(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    await send_parts(client, alice, plan["upload_id"], split(content, plan["part_size"]))
    first = await complete(client, alice, plan["upload_id"])
    second = await complete(client, alice, plan["upload_id"])
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert await rows(runtime) == (1, 1, 0)
    assert len(object_paths(settings)) == 1


async def test_delete_aborts_and_frees_the_space(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    for index in (0, 1):
        assert (
            await put_part(client, alice, plan["upload_id"], index, parts[index])
        ).status_code == 200
    assert len(part_paths(settings)) == 2

    response = await client.delete(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert response.status_code == 204
    assert stored_paths(settings) == set()
    assert await rows(runtime) == (0, 0, 0)
    gone = await client.get(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert gone.status_code == 404
    again = await client.delete(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert again.status_code == 404


async def test_a_completed_upload_is_not_deleted_its_file_is(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    await send_parts(client, alice, plan["upload_id"], split(content, plan["part_size"]))
    record = (await complete(client, alice, plan["upload_id"])).json()

    refused = await client.delete(f"{UPLOADS}/{plan['upload_id']}", headers=alice.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "upload_completed"
    assert record["id"] in refused.json()["detail"]
    assert await download(client, alice, record["id"]) == content


@pytest.mark.parametrize(
    ("client_name", "shown", "suffix"),
    [
        ("../../etc/passwd.vcf.gz", "passwd.vcf.gz", "vcf.gz"),
        ("C:\\Users\\me\\..\\study.vcf.gz", "study.vcf.gz", "vcf.gz"),
        ("/absolute/path/x.vcf", "x.vcf", "vcf"),
        ("..", "upload", "bin"),
        ("evil\u202egz.fcv.sh", "evilgz.fcv.sh", "bin"),
    ],
)
async def test_path_tricks_in_file_names_never_reach_storage(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    alice: Actor,
    client_name: str,
    shown: str,
    suffix: str,
) -> None:
    record = await upload_whole(client, alice, vcf(), filename=client_name)
    assert record["filename"] == shown
    async with runtime.db.session() as session:
        stored = await session.scalar(select(StoredFile).where(StoredFile.id == record["id"]))
    assert stored is not None
    pattern = rf"inputs/{alice.id}_\d{{8}}T\d{{6}}Z_[0-9a-f]{{16}}\.{re.escape(suffix)}"
    assert re.fullmatch(pattern, stored.storage_key), stored.storage_key
    assert object_paths(settings) == {stored.storage_key}
    # Nothing was written outside the storage root.
    assert not (settings.data_dir / "etc").exists()
