"""Settings and notifications pages over HTTP: what a signed-in user sees and changes, what
a visitor without a session or a forged form cannot, and that mistakes come back as the
form with a message (never a 500) with nothing stored."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import (
    ApiToken,
    AuditEntry,
    Job,
    Notification,
    NotificationPreference,
    Service,
    User,
    UserServiceCredential,
    Webhook,
)
from imputehub.domain.jobs import JobStatus
from imputehub.domain.notifications import EventKind
from imputehub.notify import outbox, relay
from imputehub.runtime import Runtime
from imputehub.web.templating import STATIC_DIR as STATIC
from tests.integration.worker.support import new_job
from tests.support import databases
from tests.support.api import PASSWORD, Actor
from tests.support.factories import make_service, make_user_credential
from tests.support.verifying_connector import VerifyingConnector
from tests.support.web import csrf_of, sign_in


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One database here: the pages call use cases whose queries are tested on both
    databases under the API (tests/integration/api)."""
    return databases.sqlite_with_schema(tmp_path)


PUBLIC = "https://93.184.215.14/imputehub/hook"  # a public address: no DNS needed
NEW_PASSWORD = "a brand new long password 31"
HOSTILE = '<script>alert("x")</script>'

PAGES = [
    "/settings",
    "/settings/tokens",
    "/settings/credentials",
    "/settings/notifications",
    "/settings/webhooks",
    "/notifications",
]
# Every form post, with a body that would change something if it were accepted.
POSTS: list[tuple[str, dict[str, Any]]] = [
    ("/settings/email", {"email": "changed@example.org"}),
    (
        "/settings/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    ),
    ("/settings/tokens", {"name": "forged", "expires_in_days": "30"}),
    ("/settings/notifications", {"job.failed:email": "on"}),  # would turn the rest off
    ("/settings/webhooks", {"url": PUBLIC}),
    ("/notifications/read-all", {"page": "1"}),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Many page loads and posts from one client in a test.
    return settings.model_copy(update={"rate_limit_api": "100000/minute"})


async def count(runtime: Runtime, model: type[Any], **where: Any) -> int:
    async with runtime.db.session() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def user_row(runtime: Runtime, user_id: str) -> User:
    async with runtime.db.session() as session:
        found = await session.get(User, user_id)
        assert found is not None
        return found


def field_error(page: httpx.Response, field_id: str) -> str:
    """The message shown next to a field, which the field names in aria-describedby."""
    found = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', page.text)
    assert found, page.text
    described = re.search(rf'<input id="{field_id}"[^>]*aria-describedby="([^"]*)"', page.text)
    assert described, f"{field_id} names no description"
    assert f"{field_id}-error" in described.group(1)
    return html.unescape(found.group(1))


async def happen(runtime: Runtime, job_id: str, status: JobStatus) -> None:
    """The job enters `status` (its event committed) and the relay makes the notification."""
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        outbox.job_changed(session, job, status, now=runtime.clock.now(), message="")
    await relay.fan_out(runtime)


# --- the guards ----------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_without_a_session_goes_to_sign_in(
    client: httpx.AsyncClient, alice: Actor, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=" + path[:9])


async def test_every_form_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    await sign_in(client, "alice")
    job = await new_job(runtime, alice.id, name="chr20")
    await happen(runtime, job.id, JobStatus.QUEUED)
    before = await user_row(runtime, alice.id)
    for path, body in POSTS:
        for token in (None, "not-the-token"):
            data = dict(body) if token is None else {**body, "csrf_token": token}
            answer = await client.post(path, data=data)
            assert answer.status_code == 403, (path, answer.text)
            assert "reload the page" in answer.text
    after = await user_row(runtime, alice.id)
    assert after.email == before.email
    assert after.password_hash == before.password_hash
    assert await count(runtime, ApiToken) == 0
    assert await count(runtime, Webhook) == 0
    assert await count(runtime, NotificationPreference) == 0
    assert await count(runtime, Notification, user_id=alice.id, read_at=None) == 1
    assert (await client.get("/settings")).status_code == 200  # still signed in


async def test_forged_posts_on_things_alice_has_are_refused_and_leave_them(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, connector: VerifyingConnector
) -> None:
    service = await make_service(runtime, slug="michigan")
    await make_user_credential(runtime, alice.id, service, "alice-own-michigan-token-Q7xZ")
    token = await client.post("/api/v1/auth/tokens", json={"name": "t"}, headers=alice.headers)
    hook = await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=alice.headers)
    job = await new_job(runtime, alice.id, name="chr20")
    await happen(runtime, job.id, JobStatus.QUEUED)
    async with runtime.db.session() as session:
        note = (await session.scalars(select(Notification.id))).one()
    await sign_in(client, "alice")
    for path, body in [
        (f"/settings/tokens/{token.json()['id']}/revoke", {}),
        (f"/settings/webhooks/{hook.json()['id']}/delete", {}),
        (f"/settings/credentials/{service.id}", {"credential": "forged-credential-0000"}),
        (f"/settings/credentials/{service.id}/verify", {}),
        (f"/settings/credentials/{service.id}/delete", {}),
        (f"/notifications/{note}/read", {}),
    ]:
        for token_sent in (None, "not-the-token"):
            data = {"page": "1", **body}
            if token_sent:
                data["csrf_token"] = token_sent
            answer = await client.post(path, data=data)
            assert answer.status_code == 403, (path, answer.text)
    assert await count(runtime, ApiToken) == 1
    assert await count(runtime, Webhook) == 1
    assert await count(runtime, Notification, read_at=None) == 1
    assert connector.seen == []  # never asked
    async with runtime.db.session() as session:
        row = (await session.scalars(select(UserServiceCredential))).one()
        assert runtime.vault.decrypt(row.credential_encrypted) == "alice-own-michigan-token-Q7xZ"


async def test_an_oversized_form_is_refused_in_words_not_a_500(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post("/settings/tokens", data={"csrf_token": csrf, "name": "n" * 70_000})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert "the form is too large" in answer.text
    assert await count(runtime, ApiToken) == 0


async def test_a_form_posted_from_another_site_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/settings/tokens",
        data={"csrf_token": csrf, "name": "cross-site"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert await count(runtime, ApiToken) == 0


# --- profile and password ------------------------------------------------------------


async def test_change_the_email_address_and_refuse_a_malformed_one(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    page = await client.get("/settings")
    assert 'aria-label="Settings"' in page.text
    assert 'value="alice@example.org"' in page.text

    saved = await client.post("/settings/email", data={"csrf_token": csrf, "email": "a@lab.org"})
    assert saved.status_code == 303
    shown = await client.get(saved.headers["location"])
    assert "Your e-mail address was saved." in shown.text
    assert 'value="a@lab.org"' in shown.text
    assert (await user_row(runtime, alice.id)).email == "a@lab.org"

    for bad, says in [
        ("not an address", "email address is not valid"),
        ("x" * 250 + "@lab.org", "at most 254 characters"),
        ("two@at@signs.org", "email address is not valid"),
    ]:
        refused = await client.post("/settings/email", data={"csrf_token": csrf, "email": bad})
        assert refused.status_code == 422
        assert says in field_error(refused, "email").lower()
        assert "<script>alert" not in refused.text
    assert (await user_row(runtime, alice.id)).email == "a@lab.org"
    assert await count(runtime, AuditEntry, action="email_changed", actor_id=alice.id) == 1

    # Markup is no address: refused, and the refused value is shown back as text.
    odd = HOSTILE.replace(" ", "") + "@x.org"
    refused = await client.post("/settings/email", data={"csrf_token": csrf, "email": odd})
    assert refused.status_code == 422
    assert "<script>alert" not in refused.text
    assert "&lt;script&gt;" in refused.text
    assert (await user_row(runtime, alice.id)).email == "a@lab.org"


async def test_a_password_change_ends_other_sessions_but_keeps_this_browser_signed_in(
    app: Any, client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as other:
        await sign_in(other, "alice")
        csrf = await sign_in(client, "alice")
        answer = await client.post(
            "/settings/password",
            data={
                "csrf_token": csrf,
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
                "confirm_password": NEW_PASSWORD,
            },
        )
        assert answer.status_code == 303
        page = await client.get(answer.headers["location"])
        assert page.status_code == 200  # this browser: a fresh session
        assert "this browser stays signed in" in page.text
        assert (await other.get("/settings")).status_code == 303  # the other one: signed out
        # The bearer token made with the old password opens nothing either.
        assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401
        # The new session's CSRF token works for the next form.
        fresh = csrf_of(page)
        assert fresh != csrf
        saved = await client.post("/settings/email", data={"csrf_token": fresh, "email": ""})
        assert saved.status_code == 303
    client.cookies.clear()
    await sign_in(client, "alice", NEW_PASSWORD)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "field", "says", "status"),
    [
        ("", NEW_PASSWORD, NEW_PASSWORD, "current_password", "enter your current", 422),
        (PASSWORD, "short", "short", "new_password", "at least 8 characters", 422),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "confirm_password", "differ", 422),
        ("wrong password!", NEW_PASSWORD, NEW_PASSWORD, "current_password", "is wrong", 403),
        (PASSWORD, "p" * 1025, "p" * 1025, "new_password", "at most 1024", 422),
    ],
)
async def test_a_password_change_with_a_mistake_says_which_and_changes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    current: str,
    new: str,
    confirm: str,
    field: str,
    says: str,
    status: int,
) -> None:
    csrf = await sign_in(client, "alice")
    before = (await user_row(runtime, alice.id)).password_hash
    answer = await client.post(
        "/settings/password",
        data={
            "csrf_token": csrf,
            "current_password": current,
            "new_password": new,
            "confirm_password": confirm,
        },
    )
    assert answer.status_code == status
    assert says in field_error(answer, field).lower()
    assert 'aria-invalid="true"' in answer.text
    assert PASSWORD not in answer.text  # typed passwords are never sent back
    assert (await user_row(runtime, alice.id)).password_hash == before
    assert (await client.get("/settings")).status_code == 200


# --- tokens --------------------------------------------------------------------------


async def test_a_created_token_is_shown_once_works_and_can_be_revoked(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/settings/tokens",
        data={"csrf_token": csrf, "name": "cluster " + HOSTILE, "expires_in_days": "30"},
    )
    assert answer.status_code == 200
    found = re.search(r'<input id="new-token"[^>]*value="([^"]+)"', answer.text)
    assert found, answer.text
    token = found.group(1)
    assert "shown only this once" in answer.text
    assert "<script>alert" not in answer.text
    assert "&lt;script&gt;" in answer.text

    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == "alice"

    listed = await client.get("/settings/tokens")
    assert token not in listed.text  # never again
    assert token[:10] in listed.text  # its prefix, to tell tokens apart
    assert "<script>alert" not in listed.text

    async with runtime.db.session() as session:
        token_id = (await session.scalars(select(ApiToken.id))).one()
    revoked = await client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert "revoked" in (await client.get(revoked.headers["location"])).text
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


@pytest.mark.parametrize(
    ("name", "days", "field", "says"),
    [
        ("", "30", "name", "give the token a name"),
        ("   ", "30", "name", "give the token a name"),
        ("n" * 101, "30", "name", "at most 100 characters"),
        ("ok", "0", "expires_in_days", "from 1 to 3650"),
        ("ok", "3651", "expires_in_days", "from 1 to 3650"),
        ("ok", "-5", "expires_in_days", "from 1 to 3650"),
        ("ok", "ten", "expires_in_days", "from 1 to 3650"),
    ],
)
async def test_a_token_form_with_a_mistake_comes_back_and_stores_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    name: str,
    days: str,
    field: str,
    says: str,
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/settings/tokens", data={"csrf_token": csrf, "name": name, "expires_in_days": days}
    )
    assert answer.status_code == 422
    assert says in field_error(answer, field).lower()
    assert await count(runtime, ApiToken) == 0


async def test_bob_cannot_revoke_alices_token(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    made = await client.post("/api/v1/auth/tokens", json={"name": "mine"}, headers=alice.headers)
    assert made.status_code == 201
    csrf = await sign_in(client, "bob")
    answer = await client.post(
        f"/settings/tokens/{made.json()['id']}/revoke", data={"csrf_token": csrf}
    )
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert await count(runtime, ApiToken, user_id=alice.id) == 1


# --- service credentials -------------------------------------------------------------


@pytest.fixture
def connector(runtime: Runtime) -> VerifyingConnector:
    fake = VerifyingConnector(tokens={"alice-own-michigan-token-Q7xZ": None})
    connectors: dict[str, Any] = {"michigan": fake}
    runtime.connectors = connectors
    return fake


async def test_set_test_and_delete_a_service_credential_which_is_never_shown_again(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, connector: VerifyingConnector
) -> None:
    service = await make_service(runtime, slug="michigan", name="Michigan " + HOSTILE)
    secret = "alice-own-michigan-token-Q7xZ"
    csrf = await sign_in(client, "alice")
    page = await client.get("/settings/credentials")
    assert "not set" in page.text
    assert "<script>alert" not in page.text

    saved = await client.post(
        f"/settings/credentials/{service.id}", data={"csrf_token": csrf, "credential": secret}
    )
    assert saved.status_code == 303
    page = await client.get(saved.headers["location"])
    assert "Your credential was saved." in page.text
    assert "set, not verified" in page.text
    assert secret not in page.text
    assert "Q7xZ" in page.text  # its last four characters, to recognise it

    tested = await client.post(
        f"/settings/credentials/{service.id}/verify", data={"csrf_token": csrf}
    )
    assert tested.status_code == 303
    page = await client.get(tested.headers["location"])
    assert ">verified<" in page.text
    assert "token accepted" in page.text
    assert connector.seen == [secret]
    assert secret not in page.text

    deleted = await client.post(
        f"/settings/credentials/{service.id}/delete", data={"csrf_token": csrf}
    )
    assert deleted.status_code == 303
    assert await count(runtime, UserServiceCredential) == 0
    assert await count(runtime, AuditEntry, action="credential_deleted") == 1


async def test_a_refused_or_malformed_credential_is_said_in_words(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, connector: VerifyingConnector
) -> None:
    service: Service = await make_service(runtime, slug="michigan")
    csrf = await sign_in(client, "alice")
    untested = await client.post(
        f"/settings/credentials/{service.id}/verify", data={"csrf_token": csrf}
    )
    assert untested.status_code == 409
    assert "set one first" in untested.text

    for bad, says in [
        ("   ", "must not be empty"),
        ("a\nb", "control characters"),
        ("x" * 5000, "at most 4096 bytes"),
    ]:
        refused = await client.post(
            f"/settings/credentials/{service.id}", data={"csrf_token": csrf, "credential": bad}
        )
        assert refused.status_code == 422
        assert says in field_error(refused, f"credential-{service.id}")
    assert await count(runtime, UserServiceCredential) == 0

    unknown = await client.post(
        "/settings/credentials/no-such-service", data={"csrf_token": csrf, "credential": "x"}
    )
    assert unknown.status_code == 404
    assert "Not found" in unknown.text

    wrong = "someone-elses-token-0000"
    await client.post(
        f"/settings/credentials/{service.id}", data={"csrf_token": csrf, "credential": wrong}
    )
    tested = await client.post(
        f"/settings/credentials/{service.id}/verify", data={"csrf_token": csrf}
    )
    page = await client.get(tested.headers["location"])
    assert "refused by the service" in page.text
    assert "the service rejected the token" in page.text
    assert wrong not in page.text


# --- notification preferences --------------------------------------------------------


async def test_notification_preferences_round_trip(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    page = await client.get("/settings/notifications")
    # Defaults: every in-app box ticked; e-mail for queued jobs not.
    assert re.search(r'id="pref-job-queued-in_app" name="job.queued:in_app" checked', page.text)
    assert re.search(r'id="pref-job-queued-email" name="job.queued:email">', page.text)
    assert '<label for="pref-job-failed-email" class="visually-hidden">Job failed: E-mail' in (
        page.text
    )

    saved = await client.post(
        "/settings/notifications",
        data={"csrf_token": csrf, "job.queued:email": "on", "job.failed:in_app": "on"},
    )
    assert saved.status_code == 303
    api = await client.get("/api/v1/notifications/preferences", headers=alice.headers)
    enabled = {(p["kind"], p["channel"]) for p in api.json()["preferences"] if p["enabled"]}
    assert enabled == {("job.queued", "email"), ("job.failed", "in_app")}
    page = await client.get(saved.headers["location"])
    assert "preferences were saved" in page.text
    assert 'name="job.queued:email" checked' in page.text
    assert 'name="job.failed:email">' in page.text


# --- webhooks ------------------------------------------------------------------------


async def test_add_a_webhook_see_its_secret_once_then_delete_it(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/settings/webhooks",
        data={
            "csrf_token": csrf,
            "url": PUBLIC,
            "description": "lab " + HOSTILE,
            "event_kinds": ["job.failed", "job.completed"],
        },
    )
    assert answer.status_code == 200
    found = re.search(r'<input id="new-secret"[^>]*value="(whsec_[^"]+)"', answer.text)
    assert found, answer.text
    secret = found.group(1)
    assert "<script>alert" not in answer.text

    listed = await client.get("/settings/webhooks")
    assert secret not in listed.text
    assert PUBLIC in listed.text
    assert "Job completed, Job failed" in listed.text
    assert "none yet" in listed.text
    async with runtime.db.session() as session:
        hook = (await session.scalars(select(Webhook))).one()
    assert hook.event_kinds == ["job.completed", "job.failed"]

    # Bob cannot delete it: not found, and it stays.
    client.cookies.clear()
    bob_csrf = await sign_in(client, "bob")
    refused = await client.post(
        f"/settings/webhooks/{hook.id}/delete", data={"csrf_token": bob_csrf}
    )
    assert refused.status_code == 404
    assert await count(runtime, Webhook) == 1

    client.cookies.clear()
    csrf = await sign_in(client, "alice")
    deleted = await client.post(f"/settings/webhooks/{hook.id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    assert await count(runtime, Webhook) == 0
    assert await count(runtime, AuditEntry, action="webhook_deleted") == 1


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"url": ""}, "url", "enter the url"),
        ({"url": "http://93.184.215.14/hook"}, "url", "must start with https://"),
        ({"url": "https://127.0.0.1/hook"}, "url", "public addresses only"),
        ({"url": "https://user:pw@93.184.215.14/"}, "url", "user name or password"),
        ({"url": "not a url at all"}, "url", "https://"),
        ({"url": PUBLIC + "/" + "a" * 2000}, "url", "at most 2000 characters"),
        ({"url": PUBLIC, "description": "d" * 201}, "description", "at most 200 characters"),
    ],
)
async def test_a_webhook_form_with_a_mistake_says_why_next_to_the_field(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    body: dict[str, str],
    field: str,
    says: str,
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post("/settings/webhooks", data={"csrf_token": csrf, **body})
    assert answer.status_code == 422
    assert says in field_error(answer, field).lower()
    assert await count(runtime, Webhook) == 0


async def test_an_unknown_event_kind_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/settings/webhooks",
        data={"csrf_token": csrf, "url": PUBLIC, "event_kinds": ["job.exploded"]},
    )
    assert answer.status_code == 422
    assert "Choose event kinds from the list." in answer.text
    assert await count(runtime, Webhook) == 0


# --- in-app notifications ------------------------------------------------------------


async def test_notifications_unread_first_mark_one_and_all_read_and_the_badge_follows(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, alice: Actor, bob: Actor
) -> None:
    job = await new_job(runtime, alice.id, name="chr20 " + HOSTILE)
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED):
        await happen(runtime, job.id, status)
        clock.advance(60)
    csrf = await sign_in(client, "alice")
    page = await client.get("/notifications")
    assert 'id="unread-count" data-count="3"' in page.text
    assert "3 unread of 3" in page.text
    assert "<script>alert" not in page.text
    titles = re.findall(
        r'class="notification-title">.*?<a href="/jobs/[^"]+">([^<]+)</a>', page.text
    )
    assert [html.unescape(t) for t in titles] == [
        f"Job 'chr20 {HOSTILE}' failed",
        f"Job 'chr20 {HOSTILE}' is running",
        f"Job 'chr20 {HOSTILE}' is queued",
    ]
    async with runtime.db.session() as session:
        newest = (
            await session.scalars(
                select(Notification.id).order_by(Notification.created_at.desc()).limit(1)
            )
        ).one()

    # Bob cannot mark it read.
    client.cookies.clear()
    bob_csrf = await sign_in(client, "bob")
    refused = await client.post(f"/notifications/{newest}/read", data={"csrf_token": bob_csrf})
    assert refused.status_code == 404

    client.cookies.clear()
    csrf = await sign_in(client, "alice")
    read = await client.post(f"/notifications/{newest}/read", data={"csrf_token": csrf})
    assert read.status_code == 303
    page = await client.get(read.headers["location"])
    assert 'data-count="2"' in page.text
    assert "2 unread of 3" in page.text

    everything = await client.post("/notifications/read-all", data={"csrf_token": csrf})
    assert everything.status_code == 303
    page = await client.get(everything.headers["location"])
    assert "All notifications marked as read." in page.text
    assert 'data-count="0"' in page.text
    assert "Mark all as read" not in page.text
    # The badge on any other page says the same.
    assert 'data-count="0"' in (await client.get("/settings")).text


def test_the_live_badge_listens_for_every_event_kind() -> None:
    script = (STATIC / "js" / "notifications.js").read_text()
    missing = [kind.value for kind in EventKind if f'"{kind.value}"' not in script]
    assert missing == [], "notifications.js does not follow these event kinds"


async def test_notifications_come_a_page_at_a_time(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, alice: Actor
) -> None:
    for n in range(25):
        job = await new_job(runtime, alice.id, name=f"job {n:02d}")
        await happen(runtime, job.id, JobStatus.QUEUED)
        clock.advance(1)
    await sign_in(client, "alice")
    first = await client.get("/notifications")
    assert "Page 1 of 2" in first.text
    assert "job 24" in first.text
    assert "job 04" not in first.text
    assert 'href="/notifications?page=2" rel="next"' in first.text
    second = await client.get("/notifications?page=2")
    assert "job 04" in second.text
    assert "job 05" not in second.text
    assert (await client.get("/notifications?page=0")).status_code == 422
    assert (await client.get("/notifications?page=abc")).status_code == 422
