"""Hostile client input: never a 500, never a body read whole that is too large."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from imputehub.api.deps import MAX_OFFSET
from tests.support import vcf
from tests.support.api import Actor

LISTS = ["/api/v1/jobs", "/api/v1/files", "/api/v1/notifications", "/api/v1/admin/audit-log"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "offset",
    [str(2**63), str(2**64 + 1), str(MAX_OFFSET + 1), "9" * 5000],
    ids=["2^63", "2^64+1", "max+1", "5000-digits"],
)
async def test_an_offset_past_any_list_is_refused_plainly(
    client: httpx.AsyncClient, admin: Actor, path: str, offset: str
) -> None:
    answer = await client.get(path, params={"offset": offset}, headers=admin.headers)

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", LISTS)
async def test_the_largest_offset_answers_an_empty_page(
    client: httpx.AsyncClient, admin: Actor, path: str
) -> None:
    answer = await client.get(path, params={"offset": str(MAX_OFFSET)}, headers=admin.headers)

    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == []


class Body:
    """A request body made as it is sent, counting what the hub asked for."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            piece = b"x" * min(self.chunk, self.total - self.sent)
            self.sent += len(piece)
            yield piece


HUGE = 400 * 1024 * 1024
LIMIT = 1024 * 1024  # IMPUTEHUB_MAX_REQUEST_BODY_BYTES' default


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/setup"),
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/check"),
        ("PATCH", "/api/v1/notifications/preferences"),
    ],
)
async def test_an_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, alice: Actor, method: str, path: str, declared: bool
) -> None:
    body = Body(HUGE)
    headers = {**alice.headers, "Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(HUGE)

    answer = await client.request(method, path, content=body, headers=headers)

    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "payload_too_large"
    # Not read whole: nothing at all when the length said so, else just past the limit.
    assert body.sent <= (0 if declared else LIMIT + 2 * body.chunk)


async def test_a_body_within_the_limit_is_read_as_usual(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    login = b'{"username": "alice", "password": "wrong"}' + b" " * (LIMIT - 100)

    answer = await client.post(
        "/api/v1/auth/login", content=login, headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 401  # read and judged, not refused for its size


async def test_files_still_stream_past_the_json_limit(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    data = vcf.make_vcf(samples=30, variants=8000, level=0)
    assert len(data) > LIMIT

    answer = await client.post(
        "/api/v1/files",
        files={"file": ("big.vcf.gz", data, "application/gzip")},
        headers=alice.headers,
    )

    assert answer.status_code == 201, answer.text
    assert answer.json()["size"] == len(data)
