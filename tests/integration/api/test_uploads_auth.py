"""Who may touch an upload: only its creator. Anonymous callers get 401, others 404."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from imputehub.config import Settings
from imputehub.runtime import Runtime
from tests.integration.api.upload_helpers import (
    UPLOADS,
    complete,
    part_paths,
    put_part,
    rows,
    send_parts,
    split,
    started,
    vcf,
)
from tests.support.api import Actor

Call = Callable[[httpx.AsyncClient, dict[str, str], str, bytes], Awaitable[httpx.Response]]


async def get_state(
    client: httpx.AsyncClient, headers: dict[str, str], upload_id: str, part: bytes
) -> httpx.Response:
    return await client.get(f"{UPLOADS}/{upload_id}", headers=headers)


async def send_part(
    client: httpx.AsyncClient, headers: dict[str, str], upload_id: str, part: bytes
) -> httpx.Response:
    return await client.put(f"{UPLOADS}/{upload_id}/part/0", content=part, headers=headers)


async def complete_it(
    client: httpx.AsyncClient, headers: dict[str, str], upload_id: str, part: bytes
) -> httpx.Response:
    return await client.post(f"{UPLOADS}/{upload_id}/complete", headers=headers)


async def abort(
    client: httpx.AsyncClient, headers: dict[str, str], upload_id: str, part: bytes
) -> httpx.Response:
    return await client.delete(f"{UPLOADS}/{upload_id}", headers=headers)


CALLS = [get_state, send_part, complete_it, abort]


async def test_anonymous_callers_must_log_in(client: httpx.AsyncClient, alice: Actor) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    init = await client.post(
        f"{UPLOADS}/init", json={"filename": "x.vcf.gz", "size": 10}, headers={}
    )
    assert init.status_code == 401
    assert init.headers["www-authenticate"] == "Bearer"
    bad_token = {"Authorization": "Bearer not-a-token"}
    for call in CALLS:
        for headers in ({}, bad_token):
            response = await call(client, headers, plan["upload_id"], content[:10])
            assert response.status_code == 401, (call.__name__, response.text)
            assert response.json()["code"] == "authentication_required"


@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.__name__)
@pytest.mark.parametrize("intruder", ["bob", "admin"])
async def test_another_users_upload_is_not_found(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    alice: Actor,
    bob: Actor,
    admin: Actor,
    call: Call,
    intruder: str,
) -> None:
    content = vcf()
    plan = await started(client, alice, content)
    parts = split(content, plan["part_size"])
    await put_part(client, alice, plan["upload_id"], 0, parts[0])
    other = bob if intruder == "bob" else admin

    response = await call(client, other.headers, plan["upload_id"], parts[0])
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    # Alice's upload is untouched, and still hers to finish.
    assert await rows(runtime) == (0, 1, 1)
    assert len(part_paths(settings)) == 1
    await send_parts(client, alice, plan["upload_id"], parts)
    assert (await complete(client, alice, plan["upload_id"])).status_code == 201


async def test_unknown_upload_ids_are_not_found(client: httpx.AsyncClient, alice: Actor) -> None:
    for upload_id in ("00000000-0000-0000-0000-000000000000", "nope", "..%2F..%2Fetc"):
        for call in CALLS:
            response = await call(client, alice.headers, upload_id, b"x")
            assert response.status_code == 404, (call.__name__, upload_id, response.text)
