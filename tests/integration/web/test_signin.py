"""Signing in and out of the pages: the cookie, its limits, CSRF and what a visitor sees."""

from __future__ import annotations

import httpx

from imputehub.accounts import browser_sessions
from imputehub.clock import FakeClock
from imputehub.runtime import Runtime
from tests.support.api import PASSWORD, Actor
from tests.support.web import csrf_of, sign_in, signin_token


async def test_a_page_without_a_session_sends_the_visitor_to_sign_in_and_back(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    first = await client.get("/?view=failed")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/%3Fview%3Dfailed"

    form = await client.get(first.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/?view=failed"' in form.text
    answer = await client.post(
        "/login",
        data={
            "username": "alice",
            "password": PASSWORD,
            "next": "/?view=failed",
            "signin_token": signin_token(form),
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/?view=failed"
    [cookie] = [c for c in answer.headers.get_list("set-cookie") if "imputehub_session=" in c]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Max-Age" not in cookie  # a browser session; the server's limits end it sooner


async def test_sign_in_by_email_address(client: httpx.AsyncClient, alice: Actor) -> None:
    csrf = await sign_in(client, "alice@example.org")
    assert csrf


async def test_wrong_password_says_what_to_do_and_sets_no_session(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    form = await client.get("/login")
    answer = await client.post(
        "/login",
        data={"username": "alice", "password": "nope", "signin_token": signin_token(form)},
    )
    assert answer.status_code == 401
    assert "Wrong username or password" in answer.text
    assert 'value="alice"' in answer.text  # the name stays typed in
    assert "imputehub_session" not in answer.headers.get("set-cookie", "")
    assert (await client.get("/")).status_code == 303


async def test_sign_in_form_from_another_site_is_refused(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    # No pre-session cookie of ours: a form posted from another site (login CSRF).
    fresh = httpx.AsyncClient(transport=client._transport, base_url="http://hub.test")
    async with fresh:
        answer = await fresh.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "signin_token": "forged"},
        )
        assert answer.status_code == 403
        assert "imputehub_session" not in answer.headers.get("set-cookie", "")
        cross = await fresh.post(
            "/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        assert "another site" in cross.text


async def test_next_never_leaves_the_hub(client: httpx.AsyncClient, alice: Actor) -> None:
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        form = await client.get("/login", params={"next": hostile})
        assert 'name="next" value="/"' in form.text
        answer = await client.post(
            "/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "next": hostile,
                "signin_token": signin_token(form),
            },
        )
        assert answer.headers["location"] == "/"
        client.cookies.clear()


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    csrf = await sign_in(client, "alice")
    refused = await client.post("/logout", data={"csrf_token": "not-it"})
    assert refused.status_code == 403
    assert "reload the page" in refused.text
    assert (await client.get("/")).status_code == 200  # still signed in

    stolen = client.cookies.get("imputehub_session")
    answer = await client.post("/logout", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?notice=signed_out"
    # The old cookie, replayed, opens nothing: the session is gone on the server.
    client.cookies.set("imputehub_session", stolen or "")
    assert (await client.get("/")).status_code == 303


async def test_idle_and_absolute_limits_end_a_session(
    client: httpx.AsyncClient, alice: Actor, clock: FakeClock, runtime: Runtime
) -> None:
    await sign_in(client, "alice")
    idle = runtime.settings.session_idle_minutes * 60
    clock.advance(idle - 60)
    assert (await client.get("/")).status_code == 200  # activity keeps it open
    clock.advance(idle - 60)
    assert (await client.get("/")).status_code == 200
    clock.advance(idle + 1)
    ended = await client.get("/")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/login?next=/&expired=1"
    assert "ended after a while" in (await client.get(ended.headers["location"])).text

    await sign_in(client, "alice")
    for _ in range(runtime.settings.session_max_hours * 2):
        clock.advance(30 * 60)
        page = await client.get("/")
    assert page.status_code == 303  # busy all day, still signed out at the absolute limit


async def test_a_password_change_ends_every_browser_session(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    await sign_in(client, "alice")
    changed = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "a new long password 77"},
        headers=alice.headers,
    )
    assert changed.status_code == 204
    assert (await client.get("/")).status_code == 303


async def test_the_rest_api_ignores_the_session_cookie(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    await sign_in(client, "alice")
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_pages_carry_a_strict_content_security_policy(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    await sign_in(client, "alice")
    page = await client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert csrf_of(page)


async def test_unknown_page_is_an_html_404_and_unknown_api_path_stays_json(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    await sign_in(client, "alice")
    page = await client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text
    api = await client.get("/api/v1/no-such-route")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"


async def test_the_sweep_removes_only_ended_sessions(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, clock: FakeClock, runtime: Runtime
) -> None:
    await sign_in(client, "alice")
    clock.advance(runtime.settings.session_idle_minutes * 60 + 1)  # alice's has lapsed
    other = httpx.AsyncClient(transport=client._transport, base_url="http://hub.test")
    async with other:
        await sign_in(other, "bob")
        lifetime = browser_sessions.lifetime_of(
            runtime.settings.session_idle_minutes, runtime.settings.session_max_hours
        )
        async with runtime.db.session() as session:
            removed = await browser_sessions.sweep(session, now=clock.now(), lifetime=lifetime)
        assert removed == 1
        assert (await other.get("/")).status_code == 200  # bob's is untouched
    assert (await client.get("/")).status_code == 303


async def test_a_live_stream_checking_itself_does_not_keep_an_idle_session_open(
    client: httpx.AsyncClient, alice: Actor, clock: FakeClock, runtime: Runtime
) -> None:
    await sign_in(client, "alice")
    cookie = client.cookies.get("imputehub_session")
    idle = runtime.settings.session_idle_minutes * 60
    lifetime = browser_sessions.lifetime_of(
        runtime.settings.session_idle_minutes, runtime.settings.session_max_hours
    )
    clock.advance(idle - 60)
    async with runtime.db.session() as session:  # what an open tab's stream does
        await browser_sessions.resolve(
            session,
            cookie,
            now=clock.now(),
            lifetime=lifetime,
            secret_key=runtime.secret_key,
            active=False,
        )
    clock.advance(120)
    assert (await client.get("/")).status_code == 303
