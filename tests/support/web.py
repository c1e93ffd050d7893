"""Helpers for page tests over HTTP: sign in through the form as a browser does, and read
the CSRF token the pages carry."""

from __future__ import annotations

import re

import httpx

from tests.support.api import PASSWORD

_SIGNIN_TOKEN = re.compile(r'name="signin_token" value="([^"]+)"')
_CSRF = re.compile(r'data-csrf="([^"]+)"')


def signin_token(page: httpx.Response) -> str:
    found = _SIGNIN_TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, *, next_path: str = "/"
) -> str:
    """Sign `client` in through /login (its cookie jar keeps the session); the CSRF token."""
    form_page = await client.get("/login")
    answer = await client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "next": next_path,
            "signin_token": signin_token(form_page),
        },
    )
    assert answer.status_code == 303, answer.text
    home = await client.get("/")
    assert home.status_code == 200, home.text
    return csrf_of(home)
