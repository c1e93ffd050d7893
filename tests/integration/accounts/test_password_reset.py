"""A forgotten password: the same answer for every address, a link that works once and
expires, and a reset that ends every session and token of the account."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.db.models import AccountLink
from imputehub.runtime import Runtime
from tests.integration.accounts.conftest import link_in
from tests.support.api import PASSWORD, Actor
from tests.support.smtp_server import SmtpServer

ASK = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
NEW_PASSWORD = "a brand new passphrase"


async def login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"username": "alice", "password": password})


async def test_the_answer_does_not_tell_whether_the_address_exists(
    client: httpx.AsyncClient, alice: Actor, smtp: SmtpServer, runtime: Runtime
) -> None:
    known = await client.post(ASK, json={"email": "alice@example.org"})
    unknown = await client.post(ASK, json={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["alice@example.org"]
    assert "alice" in mail.body("plain")
    # The link's token is nowhere in the database, only its hash.
    token = link_in(mail, "/reset-password")
    async with runtime.db.session() as session:
        ids = list(await session.scalars(select(AccountLink.id)))
    assert ids
    assert token not in ids


async def test_a_reset_link_works_once_and_ends_sessions_and_tokens(
    client: httpx.AsyncClient, alice: Actor, smtp: SmtpServer
) -> None:
    made = await client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=alice.headers)
    personal = {"Authorization": f"Bearer {made.json()['token']}"}
    await client.post(ASK, json={"email": "alice@example.org"})
    token = link_in((await smtp.wait_for(1))[0], "/reset-password")

    short = await client.post(CONFIRM, json={"token": token, "new_password": "short"})
    assert short.status_code == 422  # refused before the link is spent
    done = await client.post(CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=personal)).status_code == 401
    assert (await login(client, PASSWORD)).status_code == 401
    assert (await login(client, NEW_PASSWORD)).status_code == 200

    again = await client.post(CONFIRM, json={"token": token, "new_password": "yet another one"})
    assert again.status_code == 410
    assert again.json()["code"] == "link_used"
    assert (await login(client, NEW_PASSWORD)).status_code == 200


async def test_using_one_link_ends_the_others(
    client: httpx.AsyncClient, alice: Actor, smtp: SmtpServer
) -> None:
    await client.post(ASK, json={"email": "alice@example.org"})
    await client.post(ASK, json={"email": "alice"})  # the username finds the account too
    first, second = (link_in(m, "/reset-password") for m in await smtp.wait_for(2))
    assert (
        await client.post(CONFIRM, json={"token": second, "new_password": NEW_PASSWORD})
    ).status_code == 204
    stale = await client.post(CONFIRM, json={"token": first, "new_password": "someone else's"})
    assert stale.status_code == 410


async def test_an_expired_link_is_refused(
    client: httpx.AsyncClient, alice: Actor, smtp: SmtpServer, clock: FakeClock
) -> None:
    await client.post(ASK, json={"email": "alice@example.org"})
    token = link_in((await smtp.wait_for(1))[0], "/reset-password")
    clock.advance(30 * 60 + 1)
    response = await client.post(CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})
    assert response.status_code == 410
    assert response.json()["code"] == "link_expired"
    assert "30 minutes" in response.json()["detail"]
    assert (await login(client, PASSWORD)).status_code == 200


async def test_hostile_tokens_are_refused_cleanly(client: httpx.AsyncClient, alice: Actor) -> None:
    for token in ["", "' OR 1=1 --", "a" * 201, "\u0000"]:
        response = await client.post(CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})
        assert response.status_code in (410, 422), (token, response.text)
    assert (await login(client, PASSWORD)).status_code == 200


async def test_an_inactive_account_gets_no_link(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, smtp: SmtpServer, runtime: Runtime
) -> None:
    await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert (await client.post(ASK, json={"email": "alice@example.org"})).status_code == 202
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(AccountLink)) == 0
    assert smtp.messages() == []


async def test_an_admin_sends_a_reset_mail_without_seeing_the_link(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, bob: Actor, smtp: SmtpServer
) -> None:
    refused = await client.post(f"/api/v1/users/{alice.id}/password-reset", headers=bob.headers)
    assert refused.status_code == 403
    sent = await client.post(f"/api/v1/users/{alice.id}/password-reset", headers=admin.headers)
    assert sent.status_code == 202
    assert "token" not in sent.text
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["alice@example.org"]
    assert "An admin of the hub sent you this link" in mail.body("plain")
    token = link_in(mail, "/reset-password")
    assert (
        await client.post(CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})
    ).status_code == 204
