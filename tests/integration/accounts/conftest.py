"""Account life-cycle tests: the hub mails a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from imputehub.config import Settings
from tests.support.api import Actor
from tests.support.smtp_server import Received, SmtpServer, smtp_server

PUBLIC_URL = "https://hub.example.org"
SETTINGS = "/api/v1/admin/settings"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "smtp_from": "hub@example.org",
            "public_url": PUBLIC_URL,
            "rate_limit_login": "0",
        }
    )


def link_in(mail: Received, page: str) -> str:
    """The token of the `page` link in a mail (the text and HTML parts must agree)."""
    text = mail.body("plain")
    found = re.findall(r"https?://\S+", text)
    links = [url for url in found if urlsplit(url).path == page]
    assert len(links) == 1, f"expected one {page} link in:\n{text}"
    assert urlsplit(links[0]).netloc == urlsplit(PUBLIC_URL).netloc
    assert links[0].replace("&", "&amp;") in mail.body("html")
    return parse_qs(urlsplit(links[0]).query)["token"][0]


async def set_hub(client: httpx.AsyncClient, admin: Actor, **changes: object) -> dict[str, object]:
    response = await client.patch(SETTINGS, json=changes, headers=admin.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())
