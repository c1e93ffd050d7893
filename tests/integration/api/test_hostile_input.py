"""Input no route may answer with a 500: numbers past what the databases hold."""

from __future__ import annotations

import httpx
import pytest

from imputehub.api.deps import MAX_OFFSET
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
