"""Files API: streamed uploads, listing, download, deletion, and what is refused."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.types import Message, Scope

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import JobInput, StoredFile
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.vcf import make_vcf, sized_vcf, vcf_start, vcf_text

LIMIT = 4 * 1024 * 1024
BOUNDARY = "imputehub-test-boundary"
VCF = make_vcf()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_upload_size": LIMIT})


def stored_paths(settings: Settings) -> set[str]:
    root = settings.data_dir / "files"
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def count_files(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(StoredFile)) or 0)


async def upload(
    client: httpx.AsyncClient, actor: Actor, name: str, content: bytes
) -> httpx.Response:
    return await client.post(
        "/api/v1/files", files={"file": (name, content, "application/gzip")}, headers=actor.headers
    )


def multipart(parts: list[tuple[str, str | None, bytes]], *, close: bool = True) -> bytes:
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    if close:
        out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


OMIT = "omit"


def multipart_headers(actor: Actor, content_type: str | None = None) -> dict[str, str]:
    """The actor's headers with a Content-Type: ours by default, none for OMIT."""
    if content_type == OMIT:
        return dict(actor.headers)
    return {
        **actor.headers,
        "Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}",
    }


# --- happy paths --------------------------------------------------------------------------


async def test_upload_streams_the_file_to_storage(
    client: httpx.AsyncClient, alice: Actor, settings: Settings, runtime: Runtime
) -> None:
    content = make_vcf(samples=100, variants=8_000, level=0)  # ~3 MiB, several chunks
    assert 2 * 1024 * 1024 < len(content) < LIMIT
    response = await upload(client, alice, "study.chr20.vcf.gz", content)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["filename"] == "study.chr20.vcf.gz"
    assert record["size"] == len(content)
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert record["kind"] == "input"
    assert record["created_at"]

    (path,) = stored_paths(settings)
    assert re.fullmatch(rf"inputs/{alice.id}_\d{{8}}T\d{{6}}Z_[0-9a-f]{{16}}\.vcf\.gz", path)
    assert (settings.data_dir / "files" / path).read_bytes() == content


async def test_upload_from_a_streaming_client(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    """A body sent in many small chunks without Content-Length arrives whole."""
    content = vcf_text(samples=20, variants=5_000)
    body = multipart([("file", "s.vcf", content)])

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8191):
            yield body[start : start + 8191]

    response = await client.post(
        "/api/v1/files", content=pieces(), headers=multipart_headers(alice)
    )
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()
    (path,) = stored_paths(settings)
    assert path.endswith(".vcf")
    assert (settings.data_dir / "files" / path).read_bytes() == content


async def test_download_streams_bytes_with_headers(client: httpx.AsyncClient, alice: Actor) -> None:
    content = make_vcf(variants=2_000)
    file_id = (await upload(client, alice, "résumé chr1.vcf.gz", content)).json()["id"]
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="resume chr1.vcf.gz"')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20chr1.vcf.gz" in disposition


async def test_get_and_list_own_files(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, clock: FakeClock
) -> None:
    first = (await upload(client, alice, "a.vcf", make_vcf(seed=1))).json()
    clock.advance(1)
    second = (await upload(client, alice, "b.vcf", make_vcf(seed=2))).json()
    await upload(client, bob, "bob.vcf", make_vcf(seed=3))

    response = await client.get(f"/api/v1/files/{first['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == first

    page = (await client.get("/api/v1/files", headers=alice.headers)).json()
    assert page["total"] == 2
    assert [f["id"] for f in page["items"]] == [second["id"], first["id"]]
    assert (page["limit"], page["offset"]) == (20, 0)

    page = (await client.get("/api/v1/files?limit=1&offset=1", headers=alice.headers)).json()
    assert [f["id"] for f in page["items"]] == [first["id"]]
    assert page["total"] == 2


async def test_list_includes_result_files(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime
) -> None:
    service = await make_service(runtime)
    panel = await make_panel(runtime, service)
    source = await make_file(runtime, alice.id)
    job = await make_job(runtime, user_id=alice.id, service=service, panel=panel, files=[source])
    result = await make_file(runtime, alice.id, b"r", kind="result", job_id=job.id)
    items = (await client.get("/api/v1/files", headers=alice.headers)).json()["items"]
    by_id = {item["id"]: item for item in items}
    assert by_id[result.id]["kind"] == "result"
    assert by_id[result.id]["job_id"] == job.id


async def test_delete_removes_row_and_bytes(
    client: httpx.AsyncClient, alice: Actor, settings: Settings, runtime: Runtime
) -> None:
    file_id = (await upload(client, alice, "a.vcf.gz", VCF)).json()["id"]
    assert len(stored_paths(settings)) == 1
    response = await client.delete(f"/api/v1/files/{file_id}", headers=alice.headers)
    assert response.status_code == 204
    assert stored_paths(settings) == set()
    assert await count_files(runtime) == 0
    response = await client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
    assert response.status_code == 404


@pytest.mark.parametrize("status", ["pending", "queued", "running", "cancelling"])
async def test_delete_refused_while_an_active_job_uses_the_file(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, settings: Settings, status: str
) -> None:
    service = await make_service(runtime)
    panel = await make_panel(runtime, service)
    record = await make_file(runtime, alice.id)
    job = await make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[record], status=status
    )
    response = await client.delete(f"/api/v1/files/{record.id}", headers=alice.headers)
    assert response.status_code == 409
    assert job.id in response.json()["detail"]
    assert await count_files(runtime) == 1
    assert len(stored_paths(settings)) == 1


async def test_delete_allowed_when_only_finished_jobs_used_the_file(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, settings: Settings
) -> None:
    service = await make_service(runtime)
    panel = await make_panel(runtime, service)
    record = await make_file(runtime, alice.id)
    job = await make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[record], status="completed"
    )
    response = await client.delete(f"/api/v1/files/{record.id}", headers=alice.headers)
    assert response.status_code == 204
    assert stored_paths(settings) == set()
    detail = (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).json()
    assert detail["input_files"] == []
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(JobInput)) == 0


async def test_missing_bytes_answer_404_before_streaming(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    file_id = (await upload(client, alice, "a.vcf", VCF)).json()["id"]
    for path in stored_paths(settings):
        (settings.data_dir / "files" / path).unlink()
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- authorization ------------------------------------------------------------------------


async def test_anonymous_is_refused_everywhere(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    file_id = (await upload(client, alice, "a.vcf", VCF)).json()["id"]
    calls = [
        ("POST", "/api/v1/files"),
        ("GET", "/api/v1/files"),
        ("GET", f"/api/v1/files/{file_id}"),
        ("GET", f"/api/v1/files/{file_id}/content"),
        ("DELETE", f"/api/v1/files/{file_id}"),
    ]
    for method, url in calls:
        response = await client.request(method, url)
        assert response.status_code == 401, (method, url)
        assert response.json()["code"] == "authentication_required"
    response = await client.post(
        "/api/v1/files",
        files={"file": ("x.vcf", b"x")},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401
    assert len(stored_paths(settings)) == 1


async def test_users_cannot_see_or_touch_each_others_files(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, settings: Settings, runtime: Runtime
) -> None:
    file_id = (await upload(client, alice, "a.vcf", VCF)).json()["id"]
    for method, url in [
        ("GET", f"/api/v1/files/{file_id}"),
        ("GET", f"/api/v1/files/{file_id}/content"),
        ("DELETE", f"/api/v1/files/{file_id}"),
    ]:
        response = await client.request(method, url, headers=bob.headers)
        assert response.status_code == 404, (method, url)
        assert response.json()["detail"] == f"file {file_id} not found"
    listing = (await client.get("/api/v1/files", headers=bob.headers)).json()
    assert listing["items"] == []
    assert listing["total"] == 0
    assert await count_files(runtime) == 1
    assert len(stored_paths(settings)) == 1


async def test_admin_sees_and_deletes_any_file(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, settings: Settings
) -> None:
    file_id = (await upload(client, alice, "a.vcf", VCF)).json()["id"]
    response = await client.get(f"/api/v1/files/{file_id}", headers=admin.headers)
    assert response.status_code == 200
    response = await client.get(f"/api/v1/files/{file_id}/content", headers=admin.headers)
    assert response.content == VCF
    response = await client.delete(f"/api/v1/files/{file_id}", headers=admin.headers)
    assert response.status_code == 204
    assert stored_paths(settings) == set()


async def test_unknown_file_is_404(client: httpx.AsyncClient, alice: Actor) -> None:
    for method, suffix in [("GET", ""), ("GET", "/content"), ("DELETE", "")]:
        response = await client.request(
            method, f"/api/v1/files/does-not-exist{suffix}", headers=alice.headers
        )
        assert response.status_code == 404


# --- bad input: each leaves nothing behind ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown", "suffix"),
    [
        ("../../etc/passwd", "passwd", ".bin"),
        ("..\\x.vcf.gz", "x.vcf.gz", ".vcf.gz"),
        ("/etc/cron.d/evil.vcf", "evil.vcf", ".vcf"),
        ("..", "upload", ".bin"),
        ("a\x07b\x1b[31m.bcf", "ab[31m.bcf", ".bcf"),
        ("x" * 1000 + ".vcf.gz", "x" * 193 + ".vcf.gz", ".vcf.gz"),
    ],
)
async def test_client_filenames_are_display_names_only(
    client: httpx.AsyncClient,
    alice: Actor,
    settings: Settings,
    raw: str,
    shown: str,
    suffix: str,
) -> None:
    response = await client.post(
        "/api/v1/files",
        content=multipart([("file", raw, VCF)]),
        headers=multipart_headers(alice),
    )
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == shown
    (path,) = stored_paths(settings)
    assert path.startswith(f"inputs/{alice.id}_")
    assert path.endswith(suffix)
    assert ".." not in path


async def assert_nothing_stored(runtime: Runtime, settings: Settings) -> None:
    assert await count_files(runtime) == 0
    assert stored_paths(settings) == set()


async def test_file_over_the_limit_is_refused_with_declared_length(
    client: httpx.AsyncClient, alice: Actor, settings: Settings, runtime: Runtime
) -> None:
    response = await upload(client, alice, "big.vcf.gz", b"x" * (LIMIT + 2 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    await assert_nothing_stored(runtime, settings)


async def test_file_over_the_limit_is_refused_while_streaming(
    client: httpx.AsyncClient, alice: Actor, settings: Settings, runtime: Runtime
) -> None:
    """No Content-Length to go by: the limit is enforced on the bytes as they come."""
    body = multipart([("file", "big.vcf", vcf_start(LIMIT + 1))])
    sent = 0

    async def pieces() -> AsyncIterator[bytes]:
        nonlocal sent
        for start in range(0, len(body), 65536):
            sent += 1
            yield body[start : start + 65536]

    response = await client.post(
        "/api/v1/files", content=pieces(), headers=multipart_headers(alice)
    )
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]
    await assert_nothing_stored(runtime, settings)


async def test_file_at_the_limit_is_accepted(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    response = await upload(client, alice, "edge.vcf", sized_vcf(LIMIT))
    assert response.status_code == 201
    assert response.json()["size"] == LIMIT


@pytest.mark.parametrize(
    ("content_type", "body", "fragment"),
    [
        pytest.param(
            "multipart/form-data",
            multipart([("file", "a.vcf", b"x")]),
            "no boundary",
            id="no-boundary",
        ),
        pytest.param(
            OMIT, multipart([("file", "a.vcf", b"x")]), "multipart/form-data", id="no-content-type"
        ),
        pytest.param(
            "application/json", b'{"file": "x"}', "multipart/form-data", id="json-instead"
        ),
        pytest.param(
            None,
            multipart([("file", "a.vcf", vcf_text(variants=200))], close=False)[:-100],
            "ended before its closing boundary",
            id="truncated",
        ),
        pytest.param(None, b"", "ended before its closing boundary", id="empty-body"),
        pytest.param(None, b"this is not multipart at all\r\n", "malformed", id="garbage"),
        pytest.param(
            None,
            multipart([("file", "a.vcf", VCF), ("file", "b.vcf", VCF)]),
            "at most 1 file",
            id="two-files",
        ),
        pytest.param(
            None, multipart([("document", "a.vcf", b"x")]), "unexpected", id="wrong-field"
        ),
        pytest.param(
            None,
            multipart([("file", "a.vcf", VCF), ("note", None, b"hi")]),
            "unexpected form field 'note'",
            id="extra-field",
        ),
        pytest.param(None, multipart([("file", None, b"x")]), "must be a file", id="not-a-file"),
        pytest.param(None, multipart([("file", "a.vcf", b"")]), "is empty", id="empty-file"),
        pytest.param(None, multipart([]), "send one file", id="no-parts"),
    ],
)
async def test_malformed_uploads_are_refused(
    client: httpx.AsyncClient,
    alice: Actor,
    settings: Settings,
    runtime: Runtime,
    content_type: str | None,
    body: bytes,
    fragment: str,
) -> None:
    response = await client.post(
        "/api/v1/files", content=body, headers=multipart_headers(alice, content_type)
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]
    await assert_nothing_stored(runtime, settings)


async def test_client_hanging_up_mid_upload_leaves_nothing(
    app: FastAPI, alice: Actor, settings: Settings, runtime: Runtime
) -> None:
    """Talk ASGI directly: the server sees half a body, then the client disconnects."""
    body = multipart([("file", "a.vcf", make_vcf(variants=2_000, level=0))])
    incoming: list[Message] = [
        {"type": "http.request", "body": body[:100_000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    headers = {**multipart_headers(alice), "Content-Length": str(len(body))}
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/files",
        "raw_path": b"/api/v1/files",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("hub.test", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 422
    await assert_nothing_stored(runtime, settings)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=x"])
async def test_bad_paging_is_422(client: httpx.AsyncClient, alice: Actor, query: str) -> None:
    response = await client.get(f"/api/v1/files?{query}", headers=alice.headers)
    assert response.status_code == 422
