"""The pages' JSON door, /app/api/v1: the API's own routes, opened by the session cookie,
with the session's CSRF token required on every write."""

from __future__ import annotations

import httpx

from tests.support.api import Actor
from tests.support.web import sign_in


async def test_reads_need_the_session_and_answer_as_the_api_does(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    assert (await client.get("/app/api/v1/files")).status_code == 401
    await sign_in(client, "alice")
    mine = await client.get("/app/api/v1/files")
    assert mine.status_code == 200
    assert mine.json()["items"] == []
    # A bearer token does not open the pages' door (and the cookie does not open /api/v1).
    fresh = httpx.AsyncClient(transport=client._transport, base_url="http://hub.test")
    async with fresh:
        assert (await fresh.get("/app/api/v1/files", headers=alice.headers)).status_code == 401


async def test_a_write_without_the_csrf_token_changes_nothing(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    body = {"filename": "a.vcf.gz", "size": 1000}
    for headers in ({}, {"X-CSRF-Token": "guessed"}):
        refused = await client.post("/app/api/v1/uploads/init", json=body, headers=headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf_failed"
    cross = await client.post(
        "/app/api/v1/uploads/init",
        json=body,
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    started = await client.post(
        "/app/api/v1/uploads/init", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert started.status_code == 201, started.text
    state = await client.get(f"/app/api/v1/uploads/{started.json()['upload_id']}")
    assert state.json()["missing"] == [0]


async def test_another_users_things_stay_hidden(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    made = await client.post(
        "/api/v1/uploads/init", json={"filename": "b.vcf.gz", "size": 10}, headers=bob.headers
    )
    await sign_in(client, "alice")
    seen = await client.get(f"/app/api/v1/uploads/{made.json()['upload_id']}")
    assert seen.status_code == 404


async def test_the_event_stream_opens_with_the_cookie(hub_url: str, alice: Actor) -> None:
    # A generous timeout: on a loaded CI machine sign-in (argon2) and the stream's first
    # bytes have taken over 10 s; what is tested is that they come, not how fast.
    async with httpx.AsyncClient(base_url=hub_url, timeout=60) as browser:
        await sign_in(browser, "alice")
        async with browser.stream("GET", "/app/api/v1/events") as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            assert (await anext(events.aiter_bytes())).startswith(b"retry:")
    async with httpx.AsyncClient(base_url=hub_url, timeout=10) as stranger:
        assert (await stranger.get("/app/api/v1/events")).status_code == 401
