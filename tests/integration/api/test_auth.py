"""Logging in, sessions, password change and personal API tokens (throttling of failed
attempts: test_login_throttle.py)."""

from __future__ import annotations

import httpx
import pytest

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.runtime import build_runtime
from tests.support.api import PASSWORD, Actor, make_actor

LOGIN = "/api/v1/auth/login"


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def test_login_returns_a_bearer_token_and_the_user(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    response = await login(client, "alice", PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert body["user"] == {
        "id": alice.id,
        "username": "alice",
        "email": "alice@example.org",
        "role": "user",
        "is_active": True,
        "created_at": body["user"]["created_at"],
        "last_login_at": body["user"]["last_login_at"],
    }
    assert "password" not in response.text
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["username"] == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password!"), ("nobody", PASSWORD), ("ALICE", PASSWORD)],
)
async def test_wrong_credentials_get_one_message_for_all_cases(
    client: httpx.AsyncClient, alice: Actor, username: str, password: str
) -> None:
    response = await login(client, username, password)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_credentials"
    assert response.json()["detail"] == "wrong username or password"


async def test_failures_never_lock_the_account(
    client: httpx.AsyncClient, alice: Actor, clock: FakeClock, settings: Settings
) -> None:
    # Past the free failures this address waits (accounts/throttle.py), but the account is
    # never locked: once the wait is over the right password works.
    for _ in range(settings.login_max_failures + 1):
        assert (await login(client, "alice", "not the password")).status_code == 401
    slowed = await login(client, "alice", PASSWORD)
    assert slowed.status_code == 429
    assert slowed.json()["code"] == "too_many_attempts"
    clock.advance(int(slowed.headers["Retry-After"]))
    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def test_a_few_failures_cost_nothing(client: httpx.AsyncClient, alice: Actor) -> None:
    for _ in range(4):
        await login(client, "alice", "not the password")
    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def test_access_tokens_expire(
    client: httpx.AsyncClient, alice: Actor, clock: FakeClock, settings: Settings
) -> None:
    clock.advance(settings.access_token_ttl_seconds + 1)
    response = await client.get("/api/v1/auth/me", headers=alice.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-token",
        "Bearer ih_not-a-real-api-token",
        "Basic YWxpY2U6cGFzcw==",
        "Bearer ",
        "Bearer " + "x" * 10000,
    ],
)
async def test_bad_authorization_headers_are_401(
    client: httpx.AsyncClient, alice: Actor, header: str
) -> None:
    response = await client.get("/api/v1/auth/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice"},
        {"username": "alice", "password": ""},
        {"username": "alice", "password": PASSWORD, "extra": 1},
        {"username": ["alice"], "password": PASSWORD},
        {"username": "a" * 65, "password": PASSWORD},
    ],
)
async def test_malformed_login_bodies_are_422(
    client: httpx.AsyncClient, alice: Actor, body: dict[str, object]
) -> None:
    response = await client.post(LOGIN, json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_login_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        LOGIN, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_deactivated_users_cannot_log_in_or_use_old_tokens(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    response = await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert (await login(client, "alice", PASSWORD)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401


async def test_change_password_ends_old_sessions(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=alice.headers,
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401
    assert (await login(client, "alice", PASSWORD)).status_code == 401
    assert (await login(client, "alice", "a brand new passphrase")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"current_password": "wrong one!", "new_password": "long enough pw"},
            403,
            "wrong_password",
        ),
        ({"current_password": PASSWORD, "new_password": "short"}, 422, "invalid_input"),
        ({"current_password": PASSWORD}, 422, "invalid_input"),
    ],
)
async def test_change_password_refusals_keep_the_old_password(
    client: httpx.AsyncClient, alice: Actor, body: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/api/v1/auth/change-password", json=body, headers=alice.headers)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def test_change_password_needs_a_login(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "long enough pw"},
    )
    assert response.status_code == 401


async def test_api_tokens_are_shown_once_and_work_as_bearer(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    created = await client.post(
        "/api/v1/auth/tokens", json={"name": "laptop", "expires_in_days": 30}, headers=alice.headers
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("ih_")
    listed = await client.get("/api/v1/auth/tokens", headers=alice.headers)
    assert [t["name"] for t in listed.json()] == ["laptop"]
    assert token not in listed.text
    assert listed.json()[0]["prefix"] == token[:10]
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == "alice"


async def test_api_tokens_expire(client: httpx.AsyncClient, alice: Actor, clock: FakeClock) -> None:
    created = await client.post(
        "/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 1}, headers=alice.headers
    )
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 200
    clock.advance(86401)
    response = await client.get("/api/v1/auth/me", headers=bearer)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


async def test_deleted_api_tokens_stop_working_and_only_the_owner_can_delete(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    created = (
        await client.post("/api/v1/auth/tokens", json={"name": "x"}, headers=alice.headers)
    ).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    path = f"/api/v1/auth/tokens/{created['id']}"
    assert (await client.delete(path, headers=bob.headers)).status_code == 404
    assert (await client.delete(path)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 200
    assert (await client.delete(path, headers=alice.headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 401
    assert (await client.delete(path, headers=alice.headers)).status_code == 404


async def test_users_list_only_their_own_tokens(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    await client.post("/api/v1/auth/tokens", json={"name": "alice-token"}, headers=alice.headers)
    listed = await client.get("/api/v1/auth/tokens", headers=bob.headers)
    assert listed.json() == []
    assert (await client.get("/api/v1/auth/tokens")).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": 100000},
        {"name": "x", "scopes": ["admin"]},
    ],
)
async def test_bad_token_requests_are_422_and_create_nothing(
    client: httpx.AsyncClient, alice: Actor, body: dict[str, object]
) -> None:
    response = await client.post("/api/v1/auth/tokens", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert (await client.get("/api/v1/auth/tokens", headers=alice.headers)).json() == []


async def make_token(client: httpx.AsyncClient, actor: Actor, **body: object) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/tokens", json={"name": "laptop", **body}, headers=actor.headers
    )


async def test_changing_the_password_revokes_api_tokens(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    token = (await make_token(client, alice)).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 200
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer,
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 401
    fresh = (await login(client, "alice", "a brand new passphrase")).json()["access_token"]
    listed = await client.get("/api/v1/auth/tokens", headers={"Authorization": f"Bearer {fresh}"})
    assert listed.json() == []


async def test_a_password_reset_by_an_admin_revokes_api_tokens(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, bob: Actor
) -> None:
    alices = {"Authorization": f"Bearer {(await make_token(client, alice)).json()['token']}"}
    bobs = {"Authorization": f"Bearer {(await make_token(client, bob)).json()['token']}"}
    response = await client.patch(
        f"/api/v1/users/{alice.id}", json={"password": "reset by the admin"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=alices)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bobs)).status_code == 200


async def test_live_api_tokens_per_user_are_capped(settings: Settings, clock: FakeClock) -> None:
    # Sessions outlive the day it takes a token to expire here.
    capped = settings.model_copy(
        update={"max_api_tokens_per_user": 2, "access_token_ttl_seconds": 3 * 86400}
    )
    runtime = build_runtime(capped, clock=clock)
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            alice = await make_actor(runtime, client, "alice")
            bob = await make_actor(runtime, client, "bob")
            assert (await make_token(client, alice, expires_in_days=1)).status_code == 201
            kept = await make_token(client, alice)
            assert kept.status_code == 201
            refused = await make_token(client, alice)
            assert refused.status_code == 429
            assert refused.json()["code"] == "too_many_tokens"
            assert refused.json()["limit"] == 2
            assert "delete one first" in refused.json()["detail"]
            assert len((await client.get("/api/v1/auth/tokens", headers=alice.headers)).json()) == 2
            assert (await make_token(client, bob)).status_code == 201  # each user has their own
            # An expired token no longer counts; a deleted one neither.
            clock.advance(86401)
            assert (await make_token(client, alice)).status_code == 201
            assert (await make_token(client, alice)).status_code == 429
            path = f"/api/v1/auth/tokens/{kept.json()['id']}"
            assert (await client.delete(path, headers=alice.headers)).status_code == 204
            assert (await make_token(client, alice)).status_code == 201
    finally:
        await runtime.close()


async def test_users_change_their_own_email_address_by_api(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    changed = await client.patch(
        "/api/v1/auth/me", json={"email": "alice@lab.example.org"}, headers=alice.headers
    )
    assert changed.status_code == 200
    assert changed.json()["email"] == "alice@lab.example.org"
    me = await client.get("/api/v1/auth/me", headers=alice.headers)
    assert me.json()["email"] == "alice@lab.example.org"
    assert (await client.get("/api/v1/auth/me", headers=bob.headers)).json()["email"] == (
        "bob@example.org"
    )
    for body in ({"email": "<b>@x.org"}, {"email": "x" * 255}, {"role": "admin"}, {}):
        refused = await client.patch("/api/v1/auth/me", json=body, headers=alice.headers)
        assert refused.status_code == 422, body
    assert (await client.patch("/api/v1/auth/me", json={"email": ""})).status_code == 401
    cleared = await client.patch("/api/v1/auth/me", json={"email": ""}, headers=alice.headers)
    assert cleared.json()["email"] is None
