"""Failed password attempts slow their source down; nobody is locked out, and the answers do
not tell which usernames exist (accounts/throttle.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.runtime import build_runtime
from tests.support.api import PASSWORD, Actor

LOGIN = "/api/v1/auth/login"
CHANGE = "/api/v1/auth/change-password"
FREE = 1  # failures before the waits start; few, as each failure costs an argon2 check


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The per-address request limit off, so what these tests see is the throttle alone.
    return settings.model_copy(update={"rate_limit_login": "0", "login_max_failures": FREE})


@asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


def wait_of(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "too_many_attempts"
    return int(response.headers["Retry-After"])


async def test_someone_guessing_elsewhere_never_keeps_the_owner_out(
    app: FastAPI, alice: Actor, clock: FakeClock
) -> None:
    async with client_at(app, "203.0.113.66") as attacker, client_at(app, "198.51.100.7") as owner:
        # The attacker keeps guessing, waiting out each backoff: the account's backoff grows.
        for _ in range(FREE + 3):
            response = await login(attacker, "alice", "a guess")
            if response.status_code == 429:
                clock.advance(wait_of(response))
                response = await login(attacker, "alice", "a guess")
            assert response.status_code == 401
        assert wait_of(await login(attacker, "alice", PASSWORD)) == 4

        # The owner, from an address that has not failed, gets straight in.
        response = await login(owner, "alice", PASSWORD)
        assert response.status_code == 200
        assert response.json()["user"]["username"] == "alice"
        # And the attacker is still held back, even with the right password.
        wait_of(await login(attacker, "alice", PASSWORD))


async def test_waits_double_with_each_further_failure(
    app: FastAPI, alice: Actor, clock: FakeClock
) -> None:
    waits = []
    async with client_at(app, "203.0.113.66") as attacker:
        for _ in range(FREE):
            assert (await login(attacker, "alice", "a guess")).status_code == 401
        for _ in range(4):
            assert (await login(attacker, "alice", "a guess")).status_code == 401
            waits.append(wait_of(await login(attacker, "alice", "a guess")))
            clock.advance(waits[-1])
    assert waits == [1, 2, 4, 8]


async def test_the_maximum_wait_is_configurable(
    settings: Settings, clock: FakeClock, alice: Actor
) -> None:
    capped = settings.model_copy(update={"login_backoff_max_seconds": 3})
    runtime = build_runtime(capped, clock=clock)
    try:
        async with client_at(create_app(runtime), "203.0.113.66") as attacker:
            for _ in range(FREE + 3):
                response = await login(attacker, "alice", "a guess")
                if response.status_code == 429:
                    clock.advance(wait_of(response))
                    response = await login(attacker, "alice", "a guess")
                assert response.status_code == 401
            assert wait_of(await login(attacker, "alice", "a guess")) == 3
    finally:
        await runtime.close()


async def test_unknown_and_existing_usernames_get_the_same_answers(
    app: FastAPI, alice: Actor, clock: FakeClock
) -> None:
    async with client_at(app, "203.0.113.1") as one, client_at(app, "203.0.113.2") as two:
        for step in range(FREE + 4):
            known = await login(one, "alice", "a guess")
            unknown = await login(two, "nobody-here", "a guess")
            assert known.status_code == unknown.status_code
            assert known.json() == unknown.json()
            assert known.headers.get("Retry-After") == unknown.headers.get("Retry-After")
            if step == FREE + 1:
                clock.advance(1)
        assert {known.status_code, unknown.status_code} == {429}


async def test_guesses_from_many_addresses_are_held_back_per_account(
    app: FastAPI, alice: Actor
) -> None:
    async with (
        client_at(app, "203.0.113.1") as first,
        client_at(app, "203.0.113.2") as second,
        client_at(app, "198.51.100.7") as owner,
    ):
        for _ in range(FREE + 1):  # the account is now in backoff
            assert (await login(first, "alice", "a guess")).status_code == 401
        # Another address has one guess (its own count is low), then waits with the account.
        assert (await login(second, "alice", "another guess")).status_code == 401
        wait_of(await login(second, "alice", "another guess"))
        # Its guesses at another account are not held back by alice's.
        assert (await login(second, "bob", "a guess")).status_code == 401
        assert (await login(owner, "alice", PASSWORD)).status_code == 200


async def test_failures_are_shared_by_every_api_process(
    settings: Settings, clock: FakeClock, alice: Actor
) -> None:
    one, two = build_runtime(settings, clock=clock), build_runtime(settings, clock=clock)
    try:
        async with (
            client_at(create_app(one), "203.0.113.66") as first,
            client_at(create_app(two), "203.0.113.66") as second,
        ):
            for _ in range(FREE + 1):
                assert (await login(first, "alice", "a guess")).status_code == 401
            wait_of(await login(second, "alice", PASSWORD))
    finally:
        await one.close()
        await two.close()


async def test_wrong_current_passwords_are_throttled_like_logins(
    client: httpx.AsyncClient, alice: Actor, clock: FakeClock
) -> None:
    wrong = {"current_password": "a guess", "new_password": "a brand new passphrase"}
    for _ in range(FREE + 1):
        response = await client.post(CHANGE, json=wrong, headers=alice.headers)
        assert response.status_code == 403
        assert response.json()["code"] == "wrong_password"
    right = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    wait = wait_of(await client.post(CHANGE, json=right, headers=alice.headers))
    # The same throttle: logging in from this address waits too.
    wait_of(await login(client, "alice", PASSWORD))
    clock.advance(wait)
    assert (await client.post(CHANGE, json=right, headers=alice.headers)).status_code == 204
