"""Admins manage users; nobody else may."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import PASSWORD, Actor

USERS = "/api/v1/users"


async def test_admin_creates_lists_and_edits_users(client: httpx.AsyncClient, admin: Actor) -> None:
    created = await client.post(
        USERS,
        json={"username": "carol", "password": "carol's passphrase", "email": "c@example.org"},
        headers=admin.headers,
    )
    assert created.status_code == 201
    carol = created.json()
    assert carol["role"] == "user"
    assert "password" not in created.text
    assert "hash" not in created.text
    listed = await client.get(USERS, headers=admin.headers)
    assert [u["username"] for u in listed.json()] == ["admin", "carol"]
    patched = await client.patch(
        f"{USERS}/{carol['id']}", json={"role": "admin", "email": None}, headers=admin.headers
    )
    assert patched.status_code == 200
    assert patched.json()["role"] == "admin"
    assert patched.json()["email"] is None
    login = await client.post(
        "/api/v1/auth/login", json={"username": "carol", "password": "carol's passphrase"}
    )
    assert login.json()["user"]["role"] == "admin"


async def test_admin_resets_a_password_and_unlocks(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    for _ in range(5):
        await client.post("/api/v1/auth/login", json={"username": "alice", "password": "nope!!!!"})
    response = await client.patch(
        f"{USERS}/{alice.id}", json={"password": "reset by the admin"}, headers=admin.headers
    )
    assert response.status_code == 200
    login = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "reset by the admin"}
    )
    assert login.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", USERS, None),
        ("POST", USERS, {"username": "mallory", "password": "long enough pw"}),
        ("PATCH", f"{USERS}/{{bob}}", {"role": "admin"}),
    ],
)
async def test_only_admins_manage_users(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    bob: Actor,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    path = path.replace("{bob}", bob.id)
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401
    as_user = await client.request(method, path, json=body, headers=alice.headers)
    assert as_user.status_code == 403
    assert as_user.json()["code"] == "permission_denied"
    me = await client.get("/api/v1/auth/me", headers=bob.headers)
    assert me.json()["role"] == "user"
    names = [u["username"] for u in (await client.get(USERS, headers=admin.headers)).json()]
    assert "mallory" not in names


async def test_users_cannot_promote_themselves(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.patch(
        f"{USERS}/{alice.id}", json={"role": "admin"}, headers=alice.headers
    )
    assert response.status_code == 403
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).json()["role"] == "user"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "alice", "password": "long enough pw"}, 409, "username_taken"),
        ({"username": "new", "password": "short"}, 422, "invalid_input"),
        ({"username": "x", "password": "long enough pw"}, 422, "invalid_input"),
        ({"username": "../etc", "password": "long enough pw"}, 422, "invalid_input"),
        ({"username": "a' OR '1'='1", "password": "long enough pw"}, 422, "invalid_input"),
        ({"username": "new", "password": "long enough pw", "email": "nope"}, 422, "invalid_input"),
        (
            {"username": "new", "password": "long enough pw", "email": "<b>x</b>@example.org"},
            422,
            "invalid_input",
        ),
        (
            {"username": "new", "password": "long enough pw", "email": "a@b.org\r\nBcc: c@d.org"},
            422,
            "invalid_input",
        ),
        ({"username": "new", "password": "long enough pw", "role": "root"}, 422, "invalid_input"),
        ({"username": "new", "password": "long enough pw", "is_admin": True}, 422, "invalid_input"),
        ({"username": "new"}, 422, "invalid_input"),
        ({"username": "n" * 65, "password": "long enough pw"}, 422, "invalid_input"),
    ],
)
async def test_bad_user_creations_are_refused_and_store_nothing(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = await client.post(USERS, json=body, headers=admin.headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    names = [u["username"] for u in (await client.get(USERS, headers=admin.headers)).json()]
    assert names == ["admin", "alice"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"role": "superuser"}, 422),
        ({"email": "not-an-email"}, 422),
        ({"password": "short"}, 422),
        ({"username": "renamed"}, 422),
        ({"is_active": "maybe"}, 422),
    ],
)
async def test_bad_user_edits_are_refused_and_change_nothing(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, body: dict[str, object], status: int
) -> None:
    response = await client.patch(f"{USERS}/{alice.id}", json=body, headers=admin.headers)
    assert response.status_code == status
    users = {u["username"]: u for u in (await client.get(USERS, headers=admin.headers)).json()}
    assert users["alice"]["role"] == "user"
    assert users["alice"]["email"] == "alice@example.org"
    assert users["alice"]["is_active"] is True
    login = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 200


async def test_editing_an_unknown_user_is_404(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.patch(
        f"{USERS}/no-such-id", json={"role": "user"}, headers=admin.headers
    )
    assert response.status_code == 404


@pytest.mark.parametrize("body", [{"role": "user"}, {"is_active": False}])
async def test_admins_cannot_lock_themselves_out(
    client: httpx.AsyncClient, admin: Actor, body: dict[str, object]
) -> None:
    response = await client.patch(f"{USERS}/{admin.id}", json=body, headers=admin.headers)
    assert response.status_code == 409
    me = await client.get("/api/v1/auth/me", headers=admin.headers)
    assert me.json()["role"] == "admin"
