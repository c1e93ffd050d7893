"""Getting and recovering an account in the browser's pages, with a real SMTP server:
sign up and confirm the address, forgotten password, deleting your own account."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from imputehub.db.models import User
from imputehub.runtime import Runtime
from tests.integration.accounts.conftest import PUBLIC_URL, link_in, set_hub
from tests.integration.accounts.conftest import settings as settings
from tests.integration.accounts.conftest import smtp as smtp
from tests.support import databases
from tests.support.api import PASSWORD, Actor
from tests.support.smtp_server import SmtpServer
from tests.support.web import sign_in

NEW_PASSWORD = "a brand new long password 31"
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return databases.sqlite_with_schema(tmp_path)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at the hub's public (https) address: its cookies are Secure."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as browser:
        yield browser


async def form_token(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = FORM_TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


async def post_form(
    client: httpx.AsyncClient, path: str, fields: dict[str, str], *, page: str | None = None
) -> httpx.Response:
    token = await form_token(client, page or path)
    return await client.post(path, data={"form_token": token, **fields})


SIGNUP = {
    "username": "dana",
    "email": "dana@uni.example.org",
    "password": "dana's passphrase",
    "confirm_password": "dana's passphrase",
}


async def test_signing_up_and_confirming_the_address_in_the_pages(
    client: httpx.AsyncClient, admin: Actor, smtp: SmtpServer
) -> None:
    await set_hub(client, admin, signup_mode="open")
    assert 'href="/signup"' in (await client.get("/login")).text
    answer = await post_form(client, "/signup", SIGNUP)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signup/sent"
    assert "Check your inbox" in (await client.get("/signup/sent")).text
    token = link_in((await smtp.wait_for(1))[0], "/verify-email")

    # Opening the link spends nothing (mail scanners follow links); the button does.
    page = await client.get(f"/verify-email?token={token}")
    assert "Confirm my address" in page.text
    assert page.headers["referrer-policy"] == "same-origin"
    unconfirmed = await client.post(
        "/login",
        data={
            "username": "dana",
            "password": SIGNUP["password"],
            "signin_token": re.search(
                r'name="signin_token" value="([^"]+)"', (await client.get("/login")).text
            ).group(1),  # type: ignore[union-attr]
            "next": "/",
        },
    )
    assert unconfirmed.status_code == 403
    assert "Confirm your e-mail address first" in unconfirmed.text
    done = await post_form(
        client, "/verify-email", {"token": token}, page=f"/verify-email?token={token}"
    )
    assert done.status_code == 200
    assert "Your account is ready" in done.text
    await sign_in(client, "dana", SIGNUP["password"])
    client.cookies.clear()
    again = await post_form(
        client, "/verify-email", {"token": token}, page=f"/verify-email?token={token}"
    )
    assert again.status_code == 410
    assert "used already" in again.text


async def test_a_closed_hub_says_so_and_takes_no_sign_up(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, smtp: SmtpServer
) -> None:
    page = await client.get("/signup")
    assert "does not take sign-ups" in page.text
    assert 'href="/signup"' not in (await client.get("/login")).text
    # A form loaded while sign-ups were open, sent after they closed.
    await set_hub(client, admin, signup_mode="open")
    token = await form_token(client, "/signup")
    await set_hub(client, admin, signup_mode="closed")
    answer = await client.post("/signup", data={"form_token": token, **SIGNUP})
    assert answer.status_code == 422
    assert "does not take sign-ups" in answer.text
    async with runtime.db.session() as session:
        assert await session.scalar(select(User).where(User.username == "dana")) is None
    assert smtp.messages() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"confirm_password": "something else"}, "The two passwords differ"),
        ({"username": "<b>x</b>"}, "Username must be 2-64 characters"),
        ({"email": '"><script>x</script>'}, "Email address is not valid"),
        ({"password": "short", "confirm_password": "short"}, "at least 8 characters"),
    ],
)
async def test_sign_up_mistakes_come_back_with_the_form(
    client: httpx.AsyncClient,
    admin: Actor,
    runtime: Runtime,
    changes: dict[str, str],
    message: str,
) -> None:
    await set_hub(client, admin, signup_mode="open")
    answer = await post_form(client, "/signup", {**SIGNUP, **changes})
    assert answer.status_code == 422
    assert message in answer.text
    assert "<script>x</script>" not in answer.text
    assert "<b>x</b>" not in answer.text
    async with runtime.db.session() as session:
        assert list(await session.scalars(select(User.username))) == ["admin"]


async def test_a_form_without_its_token_is_refused(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime
) -> None:
    await set_hub(client, admin, signup_mode="open")
    answer = await client.post("/signup", data={**SIGNUP, "form_token": "forged"})
    assert answer.status_code == 403
    assert "The form had expired" in answer.text
    async with runtime.db.session() as session:
        assert list(await session.scalars(select(User.username))) == ["admin"]


async def test_a_forgotten_password_in_the_pages(
    client: httpx.AsyncClient, alice: Actor, smtp: SmtpServer
) -> None:
    assert 'href="/forgot-password"' in (await client.get("/login")).text
    unknown = await post_form(client, "/forgot-password", {"email": "nobody@example.org"})
    known = await post_form(client, "/forgot-password", {"email": "alice@example.org"})
    assert unknown.status_code == known.status_code == 200
    assert unknown.text.replace("nobody", "") == known.text.replace("alice", "")
    [mail] = await smtp.wait_for(1)
    token = link_in(mail, "/reset-password")
    page = f"/reset-password?token={token}"

    differ = await post_form(
        client,
        "/reset-password",
        {"token": token, "new_password": NEW_PASSWORD, "confirm_password": "other"},
        page=page,
    )
    assert differ.status_code == 422
    assert "The two passwords differ" in differ.text
    done = await post_form(
        client,
        "/reset-password",
        {"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        page=page,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/login?notice=password_reset"
    assert "Your new password is set" in (await client.get(done.headers["location"])).text
    await sign_in(client, "alice", NEW_PASSWORD)
    client.cookies.clear()
    reused = await post_form(
        client,
        "/reset-password",
        {
            "token": token,
            "new_password": "another password 123",
            "confirm_password": "another password 123",
        },
        page=page,
    )
    assert reused.status_code == 410
    assert "used already" in reused.text
    assert 'href="/forgot-password"' in reused.text


async def test_deleting_my_account_from_the_settings(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime
) -> None:
    csrf = await sign_in(client, "alice")
    unticked = await client.post(
        "/settings/account/delete", data={"csrf_token": csrf, "delete_password": PASSWORD}
    )
    assert unticked.status_code == 422
    assert "Tick the box" in unticked.text
    wrong = await client.post(
        "/settings/account/delete",
        data={"csrf_token": csrf, "delete_confirm": "yes", "delete_password": "not it at all"},
    )
    assert wrong.status_code == 403
    assert "The password is wrong" in wrong.text
    gone = await client.post(
        "/settings/account/delete",
        data={"csrf_token": csrf, "delete_confirm": "yes", "delete_password": PASSWORD},
    )
    assert gone.status_code == 303
    assert gone.headers["location"] == "/login?notice=account_deleted"
    assert (await client.get("/")).status_code == 303  # signed out
    async with runtime.db.session() as session:
        assert await session.get(User, alice.id) is None
