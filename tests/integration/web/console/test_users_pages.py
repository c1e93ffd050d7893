"""The console's Users pages over HTTP: finding accounts, creating one, changing a role,
deactivating, answering sign-up requests and sending a reset mail (to a real SMTP server),
and an account's jobs. Mistakes come back as the page with a message and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from markupsafe import escape
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.db.models import AuditEntry, User
from imputehub.runtime import Runtime
from tests.integration.accounts.conftest import PUBLIC_URL, link_in
from tests.integration.accounts.conftest import settings as settings  # the SMTP server's
from tests.integration.accounts.conftest import smtp as smtp
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service, make_user
from tests.support.smtp_server import SmtpServer
from tests.support.web import sign_in

HOSTILE = '<script>alert("x")</script>'
ESCAPED = str(escape(HOSTILE))  # as the pages write it
NEW_PASSWORD = "a long new password 42"


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at the hub's public (https) address, which the mails' links name: its
    cookies are Secure."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as browser:
        yield browser


async def user_row(runtime: Runtime, username: str) -> User | None:
    async with runtime.db.session() as session:
        return await session.scalar(select(User).where(User.username == username))


async def set_fields(runtime: Runtime, user_id: str, **fields: Any) -> None:
    async with runtime.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        for name, value in fields.items():
            setattr(user, name, value)


async def count_users(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def audit_actions(runtime: Runtime) -> list[str]:
    async with runtime.db.session() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def pending_request(runtime: Runtime, email: str) -> User:
    """A sign-up that confirmed its address and waits for an admin."""
    user = await make_user(runtime, email=email)
    await set_fields(
        runtime,
        user.id,
        signup_status="pending",
        is_active=False,
        email_verified_at=user.created_at,
    )
    return user


# --- the list ----------------------------------------------------------------------------


async def test_the_list_shows_every_account_with_its_details(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    page = await client.get("/console/users")
    assert page.status_code == 200
    assert 'aria-current="page">Users' in page.text
    assert f'<a href="/console/users/{alice.id}">alice</a>' in page.text
    assert "alice@example.org" in page.text
    assert "2 accounts." in page.text
    # The admin signed in through the form: their last sign-in shows; alice never did.
    row = await user_row(runtime, "admin")
    assert row is not None
    assert row.last_login_at is not None
    assert "never" in page.text


async def test_search_by_part_of_name_or_address_and_filter_by_state(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    carol = await make_user(runtime, email="carol@lab.example.net")
    await make_user(runtime, email="dave@uni.example.org")
    await set_fields(runtime, carol.id, is_active=False)
    await pending_request(runtime, "erin@uni.example.org")

    found = await client.get("/console/users", params={"q": "UNI.example"})
    assert "dave" in found.text
    assert "erin" in found.text
    assert "carol" not in found.text
    assert "2 accounts match." in found.text

    inactive = await client.get("/console/users", params={"state": "inactive"})
    assert f'<a href="/console/users/{carol.id}">carol</a>' in inactive.text
    assert "dave" not in inactive.text
    assert "erin" not in inactive.text

    waiting = await client.get("/console/users", params={"state": "pending"})
    assert "erin" in waiting.text
    assert "Approve<span" in waiting.text
    assert "dave" not in waiting.text
    # The mail telling admins about a request links with ?status=pending.
    assert "erin" in (await client.get("/console/users?status=pending")).text
    assert "dave" not in (await client.get("/console/users?status=pending")).text

    nothing = await client.get("/console/users", params={"q": "nobody-like-this"})
    assert "No account matches." in nothing.text
    # Markup in the search box comes back as text.
    hostile = await client.get("/console/users", params={"q": HOSTILE})
    assert HOSTILE not in hostile.text
    assert ESCAPED in hostile.text


async def test_the_list_is_paged(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, clock: FakeClock, admin_csrf: str
) -> None:
    for number in range(60):
        clock.advance(1)
        await make_user(runtime, email=f"member{number:02d}@example.org")
    first = await client.get("/console/users", params={"q": "member"})
    assert "60 accounts match · page 1 of 2." in first.text
    assert "member00" in first.text
    assert "member49" in first.text
    assert "member50" not in first.text
    assert 'rel="next"' in first.text
    second = await client.get("/console/users", params={"q": "member", "page": "2"})
    assert "member50" in second.text
    assert "member59" in second.text
    assert "member49" not in second.text
    assert (await client.get("/console/users", params={"page": "0"})).status_code == 422


# --- creating an account -----------------------------------------------------------------


async def test_an_admin_creates_an_account_its_owner_can_use(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    answer = await client.post(
        "/console/users",
        data={
            "csrf_token": admin_csrf,
            "new_username": "frank",
            "new_email": "frank@example.org",
            "new_role": "user",
            "new_password": NEW_PASSWORD,
        },
    )
    assert answer.status_code == 303
    frank = await user_row(runtime, "frank")
    assert frank is not None
    assert frank.role == "user"
    assert frank.is_active
    assert answer.headers["location"] == f"/console/users/{frank.id}?done=created"
    page = await client.get(answer.headers["location"])
    assert "The account was created." in page.text
    assert "frank@example.org" in page.text
    assert "user_created" in await audit_actions(runtime)
    client.cookies.clear()
    await sign_in(client, "frank", NEW_PASSWORD)


async def test_a_taken_username_a_bad_address_or_markup_is_refused(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    before = await count_users(runtime)
    base = {"csrf_token": admin_csrf, "new_role": "user", "new_password": NEW_PASSWORD}

    taken = await client.post(
        "/console/users", data={**base, "new_username": "alice", "new_email": "x@example.org"}
    )
    assert taken.status_code == 409
    assert "Username &#39;alice&#39; is taken." in taken.text
    assert 'value="x@example.org"' in taken.text  # what was typed comes back
    assert NEW_PASSWORD not in taken.text  # never the password

    bad_email = await client.post(
        "/console/users", data={**base, "new_username": "grace", "new_email": "not an address"}
    )
    assert bad_email.status_code == 422
    assert "Email address is not valid." in bad_email.text

    hostile = await client.post(
        "/console/users", data={**base, "new_username": HOSTILE, "new_email": ""}
    )
    assert hostile.status_code == 422
    assert "Username must be 2-64 characters" in hostile.text
    assert HOSTILE not in hostile.text
    assert ESCAPED in hostile.text

    short = await client.post(
        "/console/users", data={**base, "new_username": "heidi", "new_password": "short"}
    )
    assert short.status_code == 422
    assert "Password must be at least 8 characters." in short.text

    bad_role = await client.post(
        "/console/users", data={**base, "new_username": "ivan", "new_role": "root"}
    )
    assert bad_role.status_code == 422
    assert "Role must be &#39;admin&#39; or &#39;user&#39;." in bad_role.text

    assert await count_users(runtime) == before
    assert "user_created" not in await audit_actions(runtime)


async def test_a_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    answer = await client.post(
        "/console/users",
        data={"new_username": "mallory", "new_role": "admin", "new_password": NEW_PASSWORD},
    )
    assert answer.status_code == 403
    assert await user_row(runtime, "mallory") is None


# --- one account ---------------------------------------------------------------------------


async def test_change_a_role_and_deactivate_then_activate(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    page = await client.get(f"/console/users/{alice.id}")
    assert page.status_code == 200
    assert "<h1>alice</h1>" in page.text

    made_admin = await client.post(
        f"/console/users/{alice.id}/role", data={"csrf_token": admin_csrf, "role": "admin"}
    )
    assert made_admin.headers["location"] == f"/console/users/{alice.id}?done=role"
    assert "The role was changed." in (await client.get(made_admin.headers["location"])).text
    row = await user_row(runtime, "alice")
    assert row is not None
    assert row.role == "admin"

    off = await client.post(
        f"/console/users/{alice.id}/active", data={"csrf_token": admin_csrf, "active": "false"}
    )
    assert off.status_code == 303
    page = await client.get(off.headers["location"])
    assert "The account was deactivated" in page.text
    assert ">inactive</span>" in page.text
    # Alice's API token stopped working at once.
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401

    on = await client.post(
        f"/console/users/{alice.id}/active", data={"csrf_token": admin_csrf, "active": "true"}
    )
    assert "The account was activated" in (await client.get(on.headers["location"])).text
    actions = await audit_actions(runtime)
    assert "role_changed" in actions
    assert actions.count("user_updated") == 2

    bad = await client.post(
        f"/console/users/{alice.id}/role", data={"csrf_token": admin_csrf, "role": HOSTILE}
    )
    assert bad.status_code == 422
    assert "Role must be &#39;admin&#39; or &#39;user&#39;." in bad.text
    assert HOSTILE not in bad.text
    garbled = await client.post(
        f"/console/users/{alice.id}/active", data={"csrf_token": admin_csrf, "active": "maybe"}
    )
    assert garbled.status_code == 422
    row = await user_row(runtime, "alice")
    assert row is not None
    assert row.role == "admin"
    assert row.is_active


async def test_an_admin_cannot_demote_or_deactivate_themselves(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, admin_csrf: str
) -> None:
    page = await client.get(f"/console/users/{admin.id}")
    assert "This is your own account" in page.text
    demote = await client.post(
        f"/console/users/{admin.id}/role", data={"csrf_token": admin_csrf, "role": "user"}
    )
    assert demote.status_code == 409
    assert '<p class="error" role="alert">Admins cannot remove their own admin role.' in demote.text
    off = await client.post(
        f"/console/users/{admin.id}/active", data={"csrf_token": admin_csrf, "active": "false"}
    )
    assert off.status_code == 409
    assert "Admins cannot deactivate themselves." in off.text
    row = await user_row(runtime, "admin")
    assert row is not None
    assert row.role == "admin"
    assert row.is_active
    assert not {"role_changed", "user_updated"} & set(await audit_actions(runtime))


async def test_an_unknown_account_is_not_found(
    client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    assert (await client.get("/console/users/no-such-user")).status_code == 404
    answer = await client.post(
        "/console/users/no-such-user/role", data={"csrf_token": admin_csrf, "role": "user"}
    )
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]


async def test_send_a_password_reset_mail(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, smtp: SmtpServer, admin_csrf: str
) -> None:
    answer = await client.post(
        f"/console/users/{alice.id}/password-reset", data={"csrf_token": admin_csrf}
    )
    assert answer.status_code == 303
    page = await client.get(answer.headers["location"])
    assert "A mail with a link to set a new password is on its way" in page.text
    (mail,) = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["alice@example.org"]
    assert mail.message["Subject"] == "Set a new imputehub password"
    assert "An admin of the hub sent you this link" in mail.body("plain")
    assert link_in(mail, "/reset-password")
    assert "/reset-password" not in page.text  # the admin never sees the link


async def test_no_reset_mail_for_an_account_without_an_address(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    runtime: Runtime,
    smtp: SmtpServer,
    admin_csrf: str,
) -> None:
    await set_fields(runtime, alice.id, email=None)
    page = await client.get(f"/console/users/{alice.id}")
    assert "Send password reset e-mail" not in page.text
    answer = await client.post(
        f"/console/users/{alice.id}/password-reset", data={"csrf_token": admin_csrf}
    )
    assert answer.status_code == 409
    assert "Alice has no e-mail address to send a link to." in answer.text
    assert smtp.messages() == []


# --- sign-up requests ----------------------------------------------------------------------


async def test_approve_a_sign_up_request(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, smtp: SmtpServer, admin_csrf: str
) -> None:
    judy = await pending_request(runtime, "judy@example.org")
    answer = await client.post(f"/console/users/{judy.id}/approve", data={"csrf_token": admin_csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/users?state=pending&done=approved"
    page = await client.get(answer.headers["location"])
    assert "The sign-up request was approved" in page.text
    assert "No sign-up request is waiting." in page.text
    (mail,) = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["judy@example.org"]
    assert mail.message["Subject"] == "Your imputehub account is ready"
    row = await user_row(runtime, "judy")
    assert row is not None
    assert row.is_active
    assert row.signup_status is None
    assert "signup_approved" in await audit_actions(runtime)

    again = await client.post(f"/console/users/{judy.id}/approve", data={"csrf_token": admin_csrf})
    assert again.status_code == 409
    assert "Judy has no sign-up request waiting for approval." in again.text
    assert len(smtp.messages()) == 1


async def test_reject_a_sign_up_request(
    client: httpx.AsyncClient, admin: Actor, runtime: Runtime, smtp: SmtpServer, admin_csrf: str
) -> None:
    kim = await pending_request(runtime, "kim@example.org")
    answer = await client.post(f"/console/users/{kim.id}/reject", data={"csrf_token": admin_csrf})
    assert answer.status_code == 303
    page = await client.get(answer.headers["location"])
    assert "The sign-up request was rejected" in page.text
    (mail,) = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["kim@example.org"]
    assert mail.message["Subject"] == "Your imputehub sign-up was not approved"
    assert await user_row(runtime, "kim") is None


async def test_an_open_account_is_no_request_to_approve(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, smtp: SmtpServer, admin_csrf: str
) -> None:
    answer = await client.post(f"/console/users/{alice.id}/reject", data={"csrf_token": admin_csrf})
    assert answer.status_code == 409
    assert "Alice has no sign-up request waiting for approval." in answer.text
    assert smtp.messages() == []


# --- an account's jobs ---------------------------------------------------------------------


async def test_an_accounts_jobs_newest_first_each_opening_its_page(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    bob: Actor,
    runtime: Runtime,
    clock: FakeClock,
    admin_csrf: str,
) -> None:
    service = await make_service(runtime, name="Michigan test server")
    panel = await make_panel(runtime, service)
    upload = await make_file(runtime, alice.id)
    older = await make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[upload], name="older run"
    )
    clock.advance(300)
    newer = await make_job(
        runtime,
        user_id=alice.id,
        service=service,
        panel=panel,
        files=[upload],
        name=HOSTILE,
        status="failed",
    )
    bob_file = await make_file(runtime, bob.id)
    await make_job(
        runtime, user_id=bob.id, service=service, panel=panel, files=[bob_file], name="bobs job"
    )
    page = await client.get(f"/console/users/{alice.id}")
    assert "2 jobs." in page.text
    assert "bobs job" not in page.text
    assert HOSTILE not in page.text
    assert page.text.index(ESCAPED) < page.text.index("older run")
    assert f'<a href="/jobs/{newer.id}">' in page.text
    assert f'<a href="/jobs/{older.id}">older run</a>' in page.text
    assert "Michigan test server" in page.text
    assert ">failed</span>" in page.text
    job_page = await client.get(f"/jobs/{older.id}")
    assert job_page.status_code == 200
    assert "older run" in job_page.text
