"""Every console page and form is for admins: a user is refused each one (and nothing is
done); the maintenance banner shows on every page while the hub is in maintenance."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from imputehub.web.console import pages as console_pages
from tests.integration.accounts.conftest import set_hub
from tests.support.api import Actor
from tests.support.web import sign_in


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """The routes of a router, through the routers it includes (all without a prefix)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


def console_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for route in api_routes(list(console_pages.router.routes)):
        assert route.path.startswith("/console"), route.path
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


async def test_the_console_is_in_the_admins_menu_only(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    await sign_in(client, admin.username)
    page = await client.get("/console")
    assert page.status_code == 200
    assert '<a href="/console"' in (await client.get("/")).text
    client.cookies.clear()
    await sign_in(client, alice.username)
    assert '<a href="/console"' not in (await client.get("/")).text


async def test_a_user_is_refused_every_console_page_and_form(
    app: FastAPI, client: httpx.AsyncClient, alice: Actor
) -> None:
    routes = console_routes(app)
    assert ("GET", "/console") in routes
    csrf = await sign_in(client, alice.username)
    for method, path in routes:
        data = {"csrf_token": csrf} if method == "POST" else None
        answer = await client.request(method, path, data=data)
        assert answer.status_code == 403, (method, path, answer.status_code)
        assert "text/html" in answer.headers["content-type"]


async def test_a_visitor_is_sent_to_sign_in(app: FastAPI, client: httpx.AsyncClient) -> None:
    for method, path in console_routes(app):
        if method == "GET":
            answer = await client.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login?next=")


async def test_the_maintenance_banner_is_on_every_page(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    await set_hub(
        client, admin, maintenance=True, maintenance_message="Storage upgrade until 14:00 UTC"
    )
    signin_page = await client.get("/login")
    assert "Storage upgrade until 14:00 UTC" in signin_page.text
    await sign_in(client, alice.username)
    for path in ("/", "/jobs", "/files", "/settings", "/jobs/new"):
        page = await client.get(path)
        assert "The hub is in maintenance." in page.text, path
        assert "Storage upgrade until 14:00 UTC" in page.text
    await set_hub(client, admin, maintenance=False)
    assert "The hub is in maintenance." not in (await client.get("/")).text
