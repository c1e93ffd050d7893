"""Sign-up in each mode: closed, open (verify the address), approval (then an admin)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.db.models import AuditEntry, User
from imputehub.runtime import Runtime
from tests.integration.accounts.conftest import link_in, set_hub
from tests.support.api import Actor
from tests.support.smtp_server import SmtpServer

SIGNUP = "/api/v1/auth/signup"
VERIFY = "/api/v1/auth/verify-email"
LOGIN = "/api/v1/auth/login"
NEW = {"username": "dana", "email": "dana@uni.example.org", "password": "dana's passphrase"}


async def login(client: httpx.AsyncClient, password: str = NEW["password"]) -> httpx.Response:
    return await client.post(LOGIN, json={"username": "dana", "password": password})


async def test_a_new_hub_is_closed_to_sign_ups(
    client: httpx.AsyncClient, smtp: SmtpServer, runtime: Runtime
) -> None:
    policy = await client.get("/api/v1/auth/signup-policy")
    assert policy.json() == {"mode": "closed", "domains": []}
    response = await client.post(SIGNUP, json=NEW)
    assert response.status_code == 403
    assert response.json()["code"] == "signup_closed"
    assert "ask its admins" in response.json()["detail"]
    async with runtime.db.session() as session:
        assert await session.scalar(select(User).where(User.username == "dana")) is None
    assert smtp.messages() == []


async def test_open_sign_up_needs_a_verified_address(
    client: httpx.AsyncClient, admin: Actor, smtp: SmtpServer, runtime: Runtime
) -> None:
    await set_hub(client, admin, signup_mode="open", signup_domains=["uni.example.org"])
    elsewhere = await client.post(SIGNUP, json={**NEW, "email": "dana@gmail.example"})
    assert elsewhere.status_code == 422
    assert "uni.example.org" in elsewhere.json()["detail"]

    response = await client.post(SIGNUP, json=NEW)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "unverified"
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["dana@uni.example.org"]
    assert "Confirm your e-mail address" in str(mail.message["Subject"])
    token = link_in(mail, "/verify-email")

    early = await login(client)
    assert early.status_code == 403
    assert "confirm your e-mail address" in early.json()["detail"]
    wrong = await login(client, "not the password")
    assert wrong.status_code == 401  # the reason is only for whoever knows the password

    verified = await client.post(VERIFY, json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["status"] == "active"
    assert (await login(client)).status_code == 200
    again = await client.post(VERIFY, json={"token": token})
    assert again.status_code == 410
    assert again.json()["code"] == "link_used"

    taken = await client.post(SIGNUP, json=NEW)
    assert taken.status_code == 409
    async with runtime.db.session() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert {"signup_requested", "email_verified"} <= set(actions)


async def test_a_domain_is_matched_whole(client: httpx.AsyncClient, admin: Actor) -> None:
    await set_hub(client, admin, signup_mode="open", signup_domains=["example.org"])
    sub = await client.post(SIGNUP, json={**NEW, "email": "d@lab.example.org"})
    assert sub.status_code == 202
    lookalike = await client.post(
        SIGNUP, json={**NEW, "username": "eve", "email": "eve@evilexample.org"}
    )
    assert lookalike.status_code == 422


async def test_a_verification_link_expires(
    client: httpx.AsyncClient, admin: Actor, smtp: SmtpServer, clock: FakeClock
) -> None:
    await set_hub(client, admin, signup_mode="open")
    await client.post(SIGNUP, json=NEW)
    token = link_in((await smtp.wait_for(1))[0], "/verify-email")
    clock.advance(24 * 3600 + 1)
    response = await client.post(VERIFY, json={"token": token})
    assert response.status_code == 410
    assert response.json()["code"] == "link_expired"
    assert (await login(client)).status_code == 403
    bogus = await client.post(VERIFY, json={"token": "x" * 43})
    assert bogus.status_code == 410
    assert bogus.json()["code"] == "link_invalid"


async def test_approval_mode_asks_an_admin_and_tells_the_requester(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, smtp: SmtpServer
) -> None:
    await set_hub(client, admin, signup_mode="approval")
    await client.post(SIGNUP, json=NEW)
    token = link_in((await smtp.wait_for(1))[0], "/verify-email")
    verified = await client.post(VERIFY, json={"token": token})
    assert verified.json()["status"] == "pending"
    mails = await smtp.wait_for(2)
    assert mails[1].rcpt_tos == ["admin@example.org"]  # the admin hears of the request
    assert "dana" in str(mails[1].message["Subject"])
    waiting = await login(client)
    assert waiting.status_code == 403
    assert "approval" in waiting.json()["detail"]

    pending = await client.get("/api/v1/users?state=pending", headers=admin.headers)
    [request] = pending.json()
    assert request["username"] == "dana"
    assert request["signup_status"] == "pending"
    refused = await client.post(f"/api/v1/users/{request['id']}/approve", headers=alice.headers)
    assert refused.status_code == 403

    approved = await client.post(f"/api/v1/users/{request['id']}/approve", headers=admin.headers)
    assert approved.status_code == 200
    assert approved.json()["signup_status"] is None
    mails = await smtp.wait_for(3)
    assert mails[2].rcpt_tos == ["dana@uni.example.org"]
    assert "ready" in str(mails[2].message["Subject"])
    assert (await login(client)).status_code == 200
    twice = await client.post(f"/api/v1/users/{request['id']}/approve", headers=admin.headers)
    assert twice.status_code == 409


async def test_a_rejected_request_goes_and_its_name_is_free(
    client: httpx.AsyncClient, admin: Actor, smtp: SmtpServer
) -> None:
    await set_hub(client, admin, signup_mode="approval")
    await client.post(SIGNUP, json=NEW)
    await client.post(VERIFY, json={"token": link_in((await smtp.wait_for(1))[0], "/verify-email")})
    [request] = (await client.get("/api/v1/users?state=pending", headers=admin.headers)).json()
    rejected = await client.post(f"/api/v1/users/{request['id']}/reject", headers=admin.headers)
    assert rejected.status_code == 204
    mails = await smtp.wait_for(3)
    assert "not approved" in str(mails[2].message["Subject"])
    assert (await login(client)).status_code == 401
    assert (await client.post(SIGNUP, json=NEW)).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {"signup_mode": "sometimes"},
        {"signup_domains": ["not a domain"]},
        {"maintenance_new_jobs": "queue"},
        {"maintenance": None},
        {"colour": "blue"},
        {"maintenance_message": "x" * 501},
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    client: httpx.AsyncClient, admin: Actor, body: dict[str, object]
) -> None:
    before = (await client.get("/api/v1/admin/settings", headers=admin.headers)).json()
    response = await client.patch("/api/v1/admin/settings", json=body, headers=admin.headers)
    assert response.status_code == 422
    after = (await client.get("/api/v1/admin/settings", headers=admin.headers)).json()
    assert after == before


async def test_only_admins_see_or_change_hub_settings(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    assert (await client.get("/api/v1/admin/settings", headers=alice.headers)).status_code == 403
    response = await client.patch(
        "/api/v1/admin/settings", json={"signup_mode": "open"}, headers=alice.headers
    )
    assert response.status_code == 403
    assert (await client.patch("/api/v1/admin/settings", json={})).status_code == 401


async def test_a_settings_change_is_audited_with_before_and_after(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    await set_hub(client, admin, signup_mode="open", maintenance_message="  back at  noon ")
    log = await client.get(
        "/api/v1/admin/audit-log?action=hub_settings_changed", headers=admin.headers
    )
    [entry] = log.json()["items"]
    assert entry["actor"] == "admin"
    assert entry["details"]["changed"]["signup_mode"] == {"from": "closed", "to": "open"}
    assert entry["details"]["changed"]["maintenance_message"]["to"] == "back at noon"
