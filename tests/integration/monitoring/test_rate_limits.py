"""Rate limits: login attempts per client address across API processes, other API calls per
working token (else address); 429 with Retry-After and a problem+json body; "0" turns a limit
off. Behind trusted proxies the address is the forwarded client's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import AuditEntry
from imputehub.runtime import Runtime, build_runtime
from tests.support.api import PASSWORD, Actor, make_actor

LOGIN = "/api/v1/auth/login"


@asynccontextmanager
async def process(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """One API process of the deployment: its own runtime and app on the shared database."""
    runtime = build_runtime(settings, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield runtime, client
    finally:
        await runtime.close()


async def login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": "alice", "password": password})


def assert_limited(response: httpx.Response, *, within: int) -> int:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= within
    assert response.headers["X-Request-ID"]
    return retry_after


async def test_logins_past_the_limit_get_429_across_processes(
    settings: Settings, clock: FakeClock
) -> None:
    limited = settings.model_copy(update={"rate_limit_login": "3/minute"})
    async with process(limited, clock) as (rt, first), process(limited, clock) as (_, second):
        await make_actor(rt, first, "alice")
        assert (await login(first, "wrong one")).status_code == 401
        assert (await login(second, "wrong two")).status_code == 401
        assert (await login(first, PASSWORD)).status_code == 200

        # The fourth attempt in this minute, on either process, even with the right password.
        retry_after = assert_limited(await login(second, PASSWORD), within=60)
        assert_limited(await login(first, PASSWORD), within=60)

        clock.advance(retry_after)
        assert (await login(second, PASSWORD)).status_code == 200


async def test_api_calls_are_limited_per_token(settings: Settings, clock: FakeClock) -> None:
    limited = settings.model_copy(update={"rate_limit_api": "5/minute"})
    async with process(limited, clock) as (rt, client):
        alice: Actor = await make_actor(rt, client, "alice")
        bob: Actor = await make_actor(rt, client, "bob")
        for _ in range(5):
            assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
        assert_limited(await client.get("/api/v1/auth/me", headers=alice.headers), within=60)
        assert (await client.get("/api/v1/auth/me", headers=bob.headers)).status_code == 200
        clock.advance(60)
        assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200


async def test_zero_turns_the_limits_off(settings: Settings, clock: FakeClock) -> None:
    unlimited = settings.model_copy(
        # Failed logins past this would wait (accounts/throttle.py): that is no rate limit.
        update={"rate_limit_login": "0", "rate_limit_api": "0", "login_max_failures": 100}
    )
    async with process(unlimited, clock) as (rt, client):
        alice = await make_actor(rt, client, "alice")
        for _ in range(12):  # past the default 10/minute: a limit left on would show
            response = await client.post(LOGIN, json={"username": "nobody", "password": "x"})
            assert response.status_code == 401
            assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200


def test_a_malformed_limit_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings.from_environ({"IMPUTEHUB_RATE_LIMIT_LOGIN": "ten per minute"})


async def test_upload_parts_are_not_counted_against_the_api_limit(
    settings: Settings, clock: FakeClock
) -> None:
    limited = settings.model_copy(update={"rate_limit_api": "3/minute"})
    async with process(limited, clock) as (rt, client):
        alice: Actor = await make_actor(rt, client, "alice")
        part = 1024 * 1024
        size = 8 * part
        init = await client.post(
            "/api/v1/uploads/init",
            json={"filename": "big.vcf.gz", "size": size, "part_size": part},
            headers=alice.headers,
        )
        assert init.status_code == 201, init.text
        upload = init.json()["upload_id"]
        assert init.json()["part_count"] == 8

        sent = [
            await client.put(
                f"/api/v1/uploads/{upload}/part/{index}", content=b"x" * part, headers=alice.headers
            )
            for index in range(8)
        ]

        assert [r.status_code for r in sent] == [200] * 8  # 8 parts past a limit of 3 a minute
        # Other calls still count: the init was one, two more pass, the next is refused.
        for _ in range(2):
            assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
        assert_limited(await client.get("/api/v1/auth/me", headers=alice.headers), within=60)


async def test_made_up_bearers_count_against_the_address(
    settings: Settings, clock: FakeClock
) -> None:
    limited = settings.model_copy(update={"rate_limit_api": "5/minute"})
    async with process(limited, clock) as (rt, client):
        alice: Actor = await make_actor(rt, client, "alice")
        assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
        answers = [
            await client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {secrets.token_hex(16)}"}
            )
            for _ in range(5)
        ]
        assert [r.status_code for r in answers[:4]] == [401] * 4
        assert_limited(answers[4], within=60)
        # A bearer that has worked keeps its own budget, whatever its address has spent.
        assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200


@asynccontextmanager
async def via(app: FastAPI, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


async def me_from(client: httpx.AsyncClient, forwarded_for: str) -> int:
    response = await client.get("/api/v1/auth/me", headers={"X-Forwarded-For": forwarded_for})
    return response.status_code


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    settings: Settings, clock: FakeClock
) -> None:
    limited = settings.model_copy(
        update={"rate_limit_api": "2/minute", "trusted_proxies": "10.0.0.1, 10.1.0.0/16"}
    )
    runtime = build_runtime(limited, clock=clock)
    app = create_app(runtime)
    try:
        async with via(app, "10.0.0.1") as proxy, via(app, "192.0.2.9") as direct:
            # Two clients behind the proxy (a second proxy hop in 10.1/16): one budget each.
            for _ in range(2):
                assert await me_from(proxy, "198.51.100.1") == 401
            assert await me_from(proxy, "spoofed, 198.51.100.1, 10.1.2.3") == 429
            assert await me_from(proxy, "198.51.100.2") == 401
            # Anyone else's X-Forwarded-For is ignored: a new one each time changes nothing.
            assert [await me_from(direct, f"203.0.113.{i}") for i in range(3)] == [401, 401, 429]
    finally:
        await runtime.close()


async def test_the_audit_log_records_the_forwarded_client(
    settings: Settings, clock: FakeClock
) -> None:
    runtime = build_runtime(
        settings.model_copy(update={"trusted_proxies": "10.0.0.1"}), clock=clock
    )
    app = create_app(runtime)
    body = {"username": "nobody", "password": "a guess"}
    try:
        async with via(app, "10.0.0.1") as proxy, via(app, "192.0.2.9") as direct:
            forwarded = {"X-Forwarded-For": "203.0.113.5, 198.51.100.1"}
            assert (await proxy.post(LOGIN, json=body, headers=forwarded)).status_code == 401
            assert (await direct.post(LOGIN, json=body, headers=forwarded)).status_code == 401
        async with runtime.db.session() as session:
            addresses = list(
                await session.scalars(select(AuditEntry.client_ip).order_by(AuditEntry.id))
            )
        assert addresses == ["198.51.100.1", "192.0.2.9"]
    finally:
        await runtime.close()
