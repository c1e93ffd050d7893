"""Values the database cannot store are the client's error (422), never a 500.

Found by the fuzz test (test_fuzz_no_5xx.py): on PostgreSQL, a NUL character in any text
(a token's name, a login's user name, a path segment) made the driver raise DataError,
which the hub answered 500. SQLite stores NUL characters, so there the request succeeds.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DataError

from imputehub.api import problems
from tests.support.api import Actor

PROBLEM = "application/problem+json"


def refused_plainly(answer: httpx.Response) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["code"] == "invalid_input"
    assert "NUL" in body["detail"]
    assert "INSERT" not in body["detail"]


def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


async def test_a_nul_character_in_a_name_is_never_a_server_error(
    client: httpx.AsyncClient, alice: Actor, database_url: str
) -> None:
    answer = await client.post(
        "/api/v1/auth/tokens", headers=alice.headers, json={"name": "laptop\x00"}
    )

    if is_postgres(database_url):
        refused_plainly(answer)
        # The refused request left nothing half-written: the session still works.
        listed = await client.get("/api/v1/auth/tokens", headers=alice.headers)
        assert listed.status_code == 200
        assert listed.json() == []
    else:
        assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/auth/login", {"username": "al\x00ice", "password": "x"}),
        ("GET", "/api/v1/services/svc%00one", None),
        ("GET", "/api/v1/jobs?q=a%00b", None),
    ],
    ids=["login", "path", "query"],
)
async def test_nul_characters_elsewhere_are_never_a_server_error(
    client: httpx.AsyncClient,
    alice: Actor,
    database_url: str,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    answer = await client.request(method, path, headers=alice.headers, json=body)

    assert answer.status_code < 500, answer.text
    assert answer.headers["content-type"] in (PROBLEM, "application/json")
    if is_postgres(database_url) and answer.status_code == 422:
        assert answer.json()["code"] == "invalid_input"


async def test_a_data_error_is_answered_422_without_the_statement() -> None:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise DataError("INSERT INTO secrets VALUES (%s)", ("hunter2",), ValueError("NUL"))

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        answer = await client.get("/boom")

    refused_plainly(answer)
    assert "hunter2" not in answer.text
