"""GET /files/{id}/content: ranges, conditional requests and redirects, on local disk and S3."""

from __future__ import annotations

import hashlib
import random

import httpx
import pytest
from pydantic import SecretStr

from imputehub.config import Settings
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file
from tests.support.seaweedfs import S3Server

SIZE = 10_000
# Seeded, not os.urandom: parallel test processes must collect the same test ids.
CONTENT = random.Random(7).randbytes(SIZE)
ETAG = f'"{hashlib.sha256(CONTENT).hexdigest()}"'


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Downloads streamed by the hub from each backend (S3 redirects are tested below)."""
    if request.param == "local":
        return settings
    seaweedfs: S3Server = request.getfixturevalue("seaweedfs")
    return settings.model_copy(
        update={
            "storage_url": SecretStr(seaweedfs.storage_url()),
            "storage_redirect_downloads": False,
        }
    )


@pytest.fixture
async def file_id(runtime: Runtime, alice: Actor) -> str:
    record = await make_file(runtime, alice.id, CONTENT, filename="my study.vcf.gz")
    return record.id


def url(file_id: str) -> str:
    return f"/api/v1/files/{file_id}/content"


async def test_whole_file(client: httpx.AsyncClient, alice: Actor, file_id: str) -> None:
    response = await client.get(url(file_id), headers=alice.headers)
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == ETAG
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="my study.vcf.gz"'
    )
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=100-199", 100, 200),
        ("bytes=9000-", 9000, SIZE),
        ("bytes=-10", SIZE - 10, SIZE),
        ("bytes=-20000", 0, SIZE),
        ("bytes=9990-50000", 9990, SIZE),
        ("bytes=0-", 0, SIZE),
        ("BYTES = 5 - 9", 5, 10),
    ],
)
async def test_single_ranges(
    client: httpx.AsyncClient, alice: Actor, file_id: str, header: str, start: int, stop: int
) -> None:
    response = await client.get(url(file_id), headers={**alice.headers, "Range": header})
    assert response.status_code == 206
    assert response.content == CONTENT[start:stop]
    assert response.headers["content-length"] == str(stop - start)
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response.headers["etag"] == ETAG


@pytest.mark.parametrize("header", ["bytes=10000-", "bytes=20000-20010", "bytes=-0"])
async def test_unsatisfiable_ranges(
    client: httpx.AsyncClient, alice: Actor, file_id: str, header: str
) -> None:
    response = await client.get(url(file_id), headers={**alice.headers, "Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.json()["code"] == "range_not_satisfiable"


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,5-6", "items=0-5", "bytes=abc", "bytes=9-5", "bytes=-", "bytes=1-2-3"],
)
async def test_ranges_we_answer_with_the_whole_file(
    client: httpx.AsyncClient, alice: Actor, file_id: str, header: str
) -> None:
    response = await client.get(url(file_id), headers={**alice.headers, "Range": header})
    assert response.status_code == 200
    assert response.content == CONTENT
    assert "content-range" not in response.headers


async def test_if_range_with_another_etag_gets_the_whole_file(
    client: httpx.AsyncClient, alice: Actor, file_id: str
) -> None:
    headers = {**alice.headers, "Range": "bytes=0-9"}
    stale = await client.get(url(file_id), headers={**headers, "If-Range": '"other"'})
    assert (stale.status_code, stale.content) == (200, CONTENT)
    fresh = await client.get(url(file_id), headers={**headers, "If-Range": ETAG})
    assert (fresh.status_code, fresh.content) == (206, CONTENT[:10])


@pytest.mark.parametrize("header", [ETAG, f"W/{ETAG}", f'"x", {ETAG}', "*"])
async def test_if_none_match_is_not_modified(
    client: httpx.AsyncClient, alice: Actor, file_id: str, header: str
) -> None:
    response = await client.get(url(file_id), headers={**alice.headers, "If-None-Match": header})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == ETAG


async def test_if_none_match_with_another_etag_gets_the_file(
    client: httpx.AsyncClient, alice: Actor, file_id: str
) -> None:
    response = await client.get(
        url(file_id), headers={**alice.headers, "If-None-Match": '"something-else"'}
    )
    assert (response.status_code, response.content) == (200, CONTENT)


async def test_another_users_file_is_not_found(
    client: httpx.AsyncClient, bob: Actor, file_id: str
) -> None:
    response = await client.get(url(file_id), headers={**bob.headers, "Range": "bytes=0-1"})
    assert response.status_code == 404
    assert CONTENT[:2] not in response.content


async def test_an_admin_may_download_any_file(
    client: httpx.AsyncClient, admin: Actor, file_id: str
) -> None:
    response = await client.get(url(file_id), headers=admin.headers)
    assert (response.status_code, response.content) == (200, CONTENT)


async def test_anonymous_is_refused(client: httpx.AsyncClient, file_id: str) -> None:
    response = await client.get(url(file_id))
    assert response.status_code == 401
    response = await client.get(url(file_id), headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401


async def test_an_unknown_file_is_not_found(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.get(url("no-such-file"), headers=alice.headers)
    assert response.status_code == 404


async def test_missing_bytes_are_not_found_before_the_response_starts(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    record = await make_file(runtime, alice.id, CONTENT)
    await runtime.storage.delete(record.storage_key)
    response = await client.get(url(record.id), headers={**alice.headers, "Range": "bytes=5-"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_an_empty_file(client: httpx.AsyncClient, runtime: Runtime, alice: Actor) -> None:
    record = await make_file(runtime, alice.id, b"")
    whole = await client.get(url(record.id), headers=alice.headers)
    assert (whole.status_code, whole.content, whole.headers["content-length"]) == (200, b"", "0")
    ranged = await client.get(url(record.id), headers={**alice.headers, "Range": "bytes=0-"})
    assert ranged.status_code == 416
    assert ranged.headers["content-range"] == "bytes */0"
