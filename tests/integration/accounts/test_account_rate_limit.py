"""The public account routes (sign-up, reset, verification) count against the login rate
limit, per client address, with the logins."""

from __future__ import annotations

import httpx
import pytest

from imputehub.config import Settings
from tests.support.smtp_server import SmtpServer

ASK = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_login": "2/minute"})


async def test_the_public_account_routes_count_against_the_login_rate_limit(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    for _ in range(2):
        assert (await client.post(ASK, json={"email": "nobody@example.org"})).status_code == 202
    limited = await client.post(
        CONFIRM, json={"token": "x" * 43, "new_password": "a long new password"}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    signing_up = await client.post(
        "/api/v1/auth/signup", json={"username": "z", "email": "z@example.org", "password": "x"}
    )
    assert signing_up.status_code == 429
