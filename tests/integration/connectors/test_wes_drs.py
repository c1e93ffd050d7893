"""Result files given as `drs://` URIs: resolved through DRS 1.x and checked, through the hub.

Two servers from tests/support/tiny_wes.py on loopback: the WES server (which also serves a
DRS object of its own) and a foreign DRS server with its own storage. `drs_scheme: http`
lets DRS be reached over plain HTTP on loopback, and `allow_private_urls: true` lets the hub
fetch from loopback origins other than the WES server's own, as on a private deployment.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

import pytest

from imputehub.clock import FakeClock
from imputehub.connectors.base import ExternalRef, ResultFile, ServiceInfo
from imputehub.connectors.wes import WesConnector
from imputehub.connectors.wes.drs import drs_object_url
from imputehub.domain.errors import PermanentServiceError
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive, result_files, status_updates, stored_bytes
from tests.support.tiny_wes import DRS, Run, TinyState, tiny_server
from tests.support.wes_jobs import wes_hub_job

DOSE = b"dose from the foreign DRS server " * 3000
INFO = b"info from the WES server's own DRS " * 100
CREDENTIAL = "wes-secret-token"


def host(server: TinyState) -> str:
    return server.url.removeprefix("http://")


def drs_object(
    object_id: str, data: bytes, name: str | None = None, **access: object
) -> dict[str, object]:
    return {
        "id": object_id,
        "name": name,
        "self_uri": f"drs://example/{object_id}",
        "size": len(data),
        "created_time": "2026-11-22T10:00:00Z",
        "checksums": [{"checksum": hashlib.sha256(data).hexdigest(), "type": "sha-256"}],
        "access_methods": [access],
    }


@pytest.fixture
def foreign() -> Iterator[TinyState]:
    """A DRS server (and its storage) on another origin than the WES server."""
    with tiny_server() as server:
        server.files = {"dose.vcf.gz": DOSE}
        server.drs_objects["obj-dose"] = drs_object(
            "obj-dose",
            DOSE,
            "dose.vcf.gz",
            type="https",
            access_url={
                "url": f"{server.url}/files/dose.vcf.gz",
                "headers": [
                    "Authorization: Bearer signed-by-drs",
                    # Headers a DRS server may not choose: never sent.
                    "Metadata-Flavor: Google",
                    "Cookie: session=stolen",
                    "X-Forwarded-For: 10.0.0.1",
                    "Connection: close",
                ],
            },
        )
        yield server


@pytest.fixture
def wes(foreign: TinyState) -> Iterator[TinyState]:
    with tiny_server() as server:
        server.files = {"info.gz": INFO}
        server.drs_objects["obj-info"] = drs_object("obj-info", INFO, type="https", access_id="a1")
        server.drs_access[("obj-info", "a1")] = {"url": f"{server.url}/files/info.gz"}
        server.outputs = lambda run_id: {
            # Named by its DRS object, and by the CWL File's basename.
            "dose": {"class": "File", "location": f"drs://{host(foreign)}/obj-dose"},
            "info": {
                "class": "File",
                "basename": "info.gz",
                "location": f"drs://{host(server)}/obj-info",
            },
        }
        yield server


async def test_drs_results_are_resolved_checked_and_stored(
    runtime: Runtime, clock: FakeClock, wes: TinyState, foreign: TinyState
) -> None:
    job = await wes_hub_job(
        runtime, wes.wes_url, credential=CREDENTIAL, drs_scheme="http", allow_private_urls=True
    )

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "completed", done.error_log
    files = {f.filename: f for f in await result_files(runtime, job.id)}
    assert sorted(files) == ["dose.vcf.gz", "info.gz"]
    assert await stored_bytes(runtime, files["dose.vcf.gz"].storage_key) == DOSE
    assert await stored_bytes(runtime, files["info.gz"].storage_key) == INFO
    # The WES server's own DRS (object and access id) gets the credential ...
    own = wes.requests("GET", f"{DRS}obj-info")
    assert [s.path for s in own] == [f"{DRS}obj-info", f"{DRS}obj-info/access/a1"]
    assert all(s.headers.get("Authorization") == f"Bearer {CREDENTIAL}" for s in own)
    # ... a foreign DRS server and its storage never see it; its own storage gets the
    # Authorization the DRS server chose, and none of the headers it may not choose.
    assert all(CREDENTIAL not in s.headers.get("Authorization", "") for s in foreign.seen)
    [download] = foreign.requests("GET", "/files/dose.vcf.gz")
    assert download.headers.get("Authorization") == "Bearer signed-by-drs"
    sent = {name.lower() for name in download.headers}
    assert not sent & {"metadata-flavor", "cookie", "x-forwarded-for"}
    assert download.headers.get("Connection") != "close"


async def test_a_download_whose_checksum_differs_from_the_drs_object_is_fetched_again(
    runtime: Runtime, clock: FakeClock, wes: TinyState, foreign: TinyState
) -> None:
    foreign.fault("/files/dose.vcf.gz", "corrupt", times=1)
    job = await wes_hub_job(
        runtime, wes.wes_url, credential=CREDENTIAL, drs_scheme="http", allow_private_urls=True
    )

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "completed", done.error_log
    said = [u.message or "" for u in await status_updates(runtime, job.id)]
    assert any("arrived with a sha256 other than its DRS object's" in m for m in said), said
    files = {f.filename: f for f in await result_files(runtime, job.id)}
    assert await stored_bytes(runtime, files["dose.vcf.gz"].storage_key) == DOSE
    assert len(foreign.requests("GET", "/files/dose.vcf.gz")) == 2


class MemorySink:
    """The ResultSink interface, keeping results in memory (small test files only)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        data = b"".join([chunk async for chunk in chunks])
        self.files[name] = data
        return ResultFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def test_a_drs_object_without_http_access_or_a_bad_drs_scheme_fails_plainly(
    wes: TinyState,
) -> None:
    wes.drs_objects["obj-s3"] = drs_object(
        "obj-s3", b"x", type="s3", access_url={"url": "s3://bucket/key"}
    )
    wes.outputs = lambda run_id: {"x": {"class": "File", "location": f"drs://{host(wes)}/obj-s3"}}
    connector = WesConnector()
    config = {"drs_scheme": "http"}
    service = ServiceInfo(
        id="s", slug="w", api_type="ga4gh_wes", base_url=wes.wes_url, api_config=config
    )
    run_id = "r-s3"
    wes.runs[run_id] = Run(run_id=run_id, tags={}, states=["COMPLETE"])
    sink = MemorySink()

    with pytest.raises(PermanentServiceError, match="offers no http\\(s\\) access"):
        await connector.fetch_results(service, ExternalRef(external_id=run_id), None, sink)
    wrong = ServiceInfo(
        id="s",
        slug="w",
        api_type="ga4gh_wes",
        base_url=wes.wes_url,
        api_config={"drs_scheme": "ftp"},
    )
    with pytest.raises(PermanentServiceError, match="drs_scheme 'ftp'"):
        await connector.fetch_results(wrong, ExternalRef(external_id=run_id), None, sink)
    assert sink.files == {}


def test_a_drs_uri_names_its_object_on_the_host_s_drs_api() -> None:
    assert (
        drs_object_url("drs://drs.example.org/abc/1", "https")
        == "https://drs.example.org/ga4gh/drs/v1/objects/abc%2F1"
    )
    with pytest.raises(PermanentServiceError, match="not a DRS URI"):
        drs_object_url("drs://drs.example.org/", "https")
