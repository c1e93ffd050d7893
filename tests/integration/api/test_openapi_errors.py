"""The OpenAPI description tells the truth about errors: every 4xx and 5xx an operation
documents is application/problem+json with the Problem schema, and what the hub really
answers matches it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import Actor

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
async def described(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    described: dict[str, Any] = answer.json()
    return described


def responses(described: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = described["paths"][path][method]["responses"]
    return found


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/v1/auth/login", {400, 401, 413, 422, 429}),
        ("post", "/api/v1/jobs", {400, 401, 403, 404, 409, 413, 422, 429, 503}),
        ("get", "/api/v1/jobs/{job_id}", {401, 403, 404, 422, 429}),
        ("post", "/api/v1/jobs/{job_id}/cancel", {401, 404, 409, 429, 502, 503}),
        ("get", "/api/v1/health", {429}),
    ],
)
def test_errors_are_documented_as_problems(
    described: dict[str, Any], method: str, path: str, statuses: set[int]
) -> None:
    documented = responses(described, method, path)

    for status in statuses:
        entry = documented[str(status)]
        assert entry["content"] == {PROBLEM: {"schema": PROBLEM_REF}}, (status, entry)
        assert entry["description"]


def test_no_error_is_documented_as_anything_but_a_problem(described: dict[str, Any]) -> None:
    errors = 0
    for path, item in described["paths"].items():
        for method, operation in item.items():
            for status, entry in operation["responses"].items():
                if int(status) >= 400:
                    errors += 1
                    assert list(entry["content"]) == [PROBLEM], (method, path, status)
            if path.startswith("/api/"):
                assert "429" in operation["responses"], (method, path)
    assert errors > 100
    schemas = described["components"]["schemas"]
    # FastAPI's own 422 body, which the hub never sends, is gone.
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "code"}


def assert_documented(
    described: dict[str, Any], method: str, path: str, answer: httpx.Response
) -> None:
    """The answer's status and content type are documented, and its body is a Problem."""
    documented = responses(described, method, path)
    assert str(answer.status_code) in documented, answer.status_code
    assert answer.headers["content-type"] in documented[str(answer.status_code)]["content"]
    body = answer.json()
    for member in described["components"]["schemas"]["Problem"]["required"]:
        assert member in body, member
    assert body["status"] == answer.status_code


async def test_real_errors_are_the_documented_problems(
    client: httpx.AsyncClient, described: dict[str, Any], alice: Actor
) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "not the password"}
    )
    assert wrong.status_code == 401
    assert_documented(described, "post", "/api/v1/auth/login", wrong)

    invalid = await client.post("/api/v1/auth/login", json={"username": "alice"})
    assert invalid.status_code == 422
    assert_documented(described, "post", "/api/v1/auth/login", invalid)
    assert invalid.json()["errors"][0]["field"] == "password"

    unparsable = await client.post(
        "/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert unparsable.status_code in (400, 422)
    assert_documented(described, "post", "/api/v1/auth/login", unparsable)

    anonymous = await client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000")
    assert anonymous.status_code == 401
    assert_documented(described, "get", "/api/v1/jobs/{job_id}", anonymous)

    unknown = await client.get(
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000", headers=alice.headers
    )
    assert unknown.status_code == 404
    assert_documented(described, "get", "/api/v1/jobs/{job_id}", unknown)
