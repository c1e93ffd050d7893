"""The DNAstack Workbench connector against the emulated Workbench (token endpoint + eWES).

Connector level: the JSON run request with signed links and the job's tag, paging by
`pagination.next_page_url`, the OAuth2 token (cached, refreshed, refused), settings refused
plainly, the state table. The hub end to end: a job on a `dnastack` service whose inputs the
emulator downloads from the hub's own signed links (the app served on loopback at
IMPUTEHUB_PUBLIC_URL), followed to stored results, and the ways such a run fails or is
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.base import (
    ExternalRef,
    ExternalState,
    InputFile,
    JobSpec,
    ResultFile,
    ServiceInfo,
)
from imputehub.connectors.dnastack import DnastackConnector
from imputehub.connectors.wes.states import to_status
from imputehub.db.models import Job, User
from imputehub.domain.errors import CredentialRejected, PermanentServiceError
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import (
    drive,
    eventually,
    load_job,
    request_cancel,
    result_files,
    stored_bytes,
)
from tests.support import factories
from tests.support.dnastack_emulator import DnastackEmulator, running_emulator

CLIENT_ID = "imputehub-client"
SECRET = "workbench-client-secret-7f3a"
NAMESPACE = "lab-42"
WORKFLOW = "https://workbench.example/workflows/imputation/1.0/impute.wdl"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[DnastackEmulator]:
    with running_emulator(tmp_path / "workbench") as server:
        server.add_client(CLIENT_ID, SECRET, NAMESPACE)
        yield server


def api_config(emulator: DnastackEmulator, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "namespace": NAMESPACE,
        "token_url": emulator.token_url(),
        "client_id": CLIENT_ID,
        "workflow_url": WORKFLOW,
        "workflow_name": "imputation",
        "engine_id": "gcp-engine",
        "params": {
            "inputs": "impute.inputs",
            "panel": "impute.panel",
            "mode": "impute.mode",
            "r2_filter": None,
        },
    }
    config.update(changes)
    return {key: value for key, value in config.items() if value is not None}


def service_of(emulator: DnastackEmulator, **changes: Any) -> ServiceInfo:
    return ServiceInfo(
        id="svc",
        slug="workbench",
        api_type="dnastack",
        base_url=emulator.endpoint(),
        api_config=api_config(emulator, **changes),
    )


# --- connector level: inputs served by a plain static file server on loopback ---


@pytest.fixture
def files_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietFiles, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def spec_of(*inputs: tuple[str, bytes, str | None]) -> JobSpec:
    def opener(content: bytes) -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            yield content

        return chunks

    return JobSpec(
        job_id="job-1",
        name="my study",
        panel_id="1000g-phase3",
        build="hg38",
        phasing="eagle",
        population=None,
        mode="imputation",
        r2_filter=0.3,
        inputs=[
            InputFile(name=name, size=len(content), sha256="", open=opener(content), url=url)
            for name, content, url in inputs
        ],
    )


class MemorySink:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        data = b"".join([chunk async for chunk in chunks])
        self.files[name] = data
        return ResultFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def test_submit_sends_one_json_request_with_signed_links_and_the_job_s_tag(
    emulator: DnastackEmulator,
) -> None:
    connector = DnastackConnector()
    link = "https://hub.example/api/v1/links/j/f/study.vcf.gz?expires=1&signature=ab"
    spec = spec_of(("study.vcf.gz", b"vcf bytes", link))

    ref = await connector.submit(service_of(emulator), spec, SECRET, "job-key-1")

    [submission] = emulator.accepted()
    assert submission["content_type"] == "application/json"
    assert submission["body"] == {
        "workflow_url": WORKFLOW,
        "workflow_type": "WDL",
        "workflow_type_version": "1.0",
        "workflow_params": {
            "impute.inputs": [link],  # a WDL File is its URL
            "impute.panel": "1000g-phase3",
            "impute.mode": "imputation",
        },
        "tags": {"imputehub_job_id": "job-key-1"},
        "workflow_name": "imputation",
        "engine_id": "gcp-engine",
    }
    assert ref.external_id == emulator.run_tagged("job-key-1").id
    # The run lives in the configured namespace, under the eWES endpoint.
    assert ("POST", f"/ewes/{NAMESPACE}/ga4gh/wes/v1/runs") in emulator.calls


async def test_a_run_is_followed_from_queued_to_its_result_files(
    emulator: DnastackEmulator, files_server: tuple[str, Path]
) -> None:
    url, folder = files_server
    content = gzip.compress(b"##fileformat=VCFv4.2\n" * 50)
    (folder / "chr20.vcf.gz").write_bytes(content)
    connector = DnastackConnector()
    service = service_of(emulator)
    ref = await connector.submit(
        service, spec_of(("chr20.vcf.gz", content, f"{url}/chr20.vcf.gz")), SECRET, "k"
    )

    seen = [(await connector.poll(service, ref, SECRET)).state for _ in range(3)]
    sink = MemorySink()
    stored = await connector.fetch_results(service, ref, SECRET, sink)

    assert seen == [ExternalState.QUEUED, ExternalState.RUNNING, ExternalState.COMPLETED]
    assert emulator.fetches == [(f"{url}/chr20.vcf.gz", 200)]
    assert sorted(f.name for f in stored) == ["chr20.dose.vcf.gz", "chr20.info"]
    assert sink.files["chr20.dose.vcf.gz"] == content
    assert hashlib.sha256(content).hexdigest() in sink.files["chr20.info"].decode()


@pytest.mark.parametrize("relative", [False, True])
async def test_find_follows_next_page_urls_to_a_run_by_its_tag(
    emulator: DnastackEmulator, relative: bool
) -> None:
    emulator.relative_pages = relative
    connector = DnastackConnector()
    service = service_of(emulator)
    spec = spec_of(("a.vcf.gz", b"x", "https://hub.example/a.vcf.gz"))
    refs = [await connector.submit(service, spec, SECRET, f"key-{i}") for i in range(5)]

    found = await connector.find(service, "key-0", SECRET)  # the oldest: the third page

    assert found is not None
    assert found.external_id == refs[0].external_id
    listings = [c for c in emulator.calls if c == ("GET", f"/ewes/{NAMESPACE}/ga4gh/wes/v1/runs")]
    assert len(listings) == 3
    assert await connector.find(service, "key-elsewhere", SECRET) is None


async def test_the_token_is_fetched_once_and_reused_while_it_lives(
    emulator: DnastackEmulator,
) -> None:
    emulator.resource = "https://workspaces.example/api/ewes/"
    emulator.scope = "wes"
    connector = DnastackConnector()
    service = service_of(emulator, resource=emulator.resource, scope="wes")
    spec = spec_of(("a.vcf.gz", b"x", "https://hub.example/a.vcf.gz"))
    ref = await connector.submit(service, spec, SECRET, "key")

    await connector.poll(service, ref, SECRET)
    await connector.poll(service, ref, SECRET)

    assert len(emulator.token_requests) == 1
    assert emulator.token_requests[0] == {
        "grant_type": "client_credentials",
        "resource": "https://workspaces.example/api/ewes/",
        "scope": "wes",
    }


async def test_an_expired_token_is_replaced_without_failing_the_call(
    emulator: DnastackEmulator,
) -> None:
    connector = DnastackConnector()
    service = service_of(emulator)
    spec = spec_of(("a.vcf.gz", b"x", "https://hub.example/a.vcf.gz"))
    ref = await connector.submit(service, spec, SECRET, "key")
    emulator.expire_tokens()  # the Workbench ends the token before the hub expected

    status = await connector.poll(service, ref, SECRET)

    assert status.state is ExternalState.QUEUED
    assert len(emulator.token_requests) == 2


async def test_a_short_lived_token_is_fetched_again_for_each_call(
    emulator: DnastackEmulator,
) -> None:
    emulator.token_lifetime = 30  # shorter than the connector's safety margin
    connector = DnastackConnector()
    service = service_of(emulator)
    spec = spec_of(("a.vcf.gz", b"x", "https://hub.example/a.vcf.gz"))
    ref = await connector.submit(service, spec, SECRET, "key")

    status = await connector.poll(service, ref, SECRET)

    assert status.state is ExternalState.QUEUED
    [submitted_with] = [t for m, _, t in emulator.bearers if m == "POST"]
    read = f"/ewes/{NAMESPACE}/ga4gh/wes/v1/runs/{ref.external_id}"
    [polled_with] = [t for m, path, t in emulator.bearers if (m, path) == ("GET", read)]
    assert polled_with != submitted_with


async def test_a_refused_client_secret_is_a_rejected_credential(
    emulator: DnastackEmulator,
) -> None:
    connector = DnastackConnector()
    service = service_of(emulator)

    with pytest.raises(CredentialRejected, match="refused the client credentials") as caught:
        await connector.poll(service, ExternalRef(external_id="r"), "not-the-secret")
    verdict = await connector.verify_credential(service, "not-the-secret")
    accepted = await connector.verify_credential(service, SECRET)

    assert "not-the-secret" not in caught.value.message
    assert not verdict.valid
    assert accepted.valid
    assert accepted.message == "DNAstack Workbench accepted the client credentials"
    assert emulator.calls[-1] == ("GET", f"/ewes/{NAMESPACE}/ga4gh/wes/v1/runs")


async def test_a_wrong_resource_is_refused_by_the_token_endpoint(
    emulator: DnastackEmulator,
) -> None:
    emulator.resource = "https://workspaces.example/api/ewes/"
    service = service_of(emulator, resource="https://elsewhere.example/")

    verdict = await DnastackConnector().verify_credential(service, SECRET)

    assert not verdict.valid
    assert "HTTP 400" in verdict.message


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"namespace": None}, "lack namespace"),
        ({"token_url": None, "client_id": None}, "lack token_url, client_id"),
        ({"workflow_url": None}, "name no workflow_url"),
    ],
)
async def test_incomplete_settings_are_refused_plainly_before_any_request(
    emulator: DnastackEmulator, missing: dict[str, Any], named: str
) -> None:
    service = service_of(emulator, **missing)
    spec = spec_of(("a.vcf.gz", b"x", "https://hub.example/a.vcf.gz"))

    with pytest.raises(PermanentServiceError, match=named):
        await DnastackConnector().submit(service, spec, SECRET, "key")

    assert emulator.calls == []


async def test_inputs_without_a_hub_link_are_refused_with_the_setting_to_fix(
    emulator: DnastackEmulator,
) -> None:
    spec = spec_of(("a.vcf.gz", b"x", None))  # the hub has no IMPUTEHUB_PUBLIC_URL

    with pytest.raises(PermanentServiceError, match="IMPUTEHUB_PUBLIC_URL"):
        await DnastackConnector().submit(service_of(emulator), spec, SECRET, "key")

    assert emulator.calls == []


async def test_the_emulator_refuses_multipart_and_unknown_fields(
    emulator: DnastackEmulator,
) -> None:
    runs = f"{emulator.endpoint()}/{NAMESPACE}/ga4gh/wes/v1/runs"
    async with httpx.AsyncClient() as client:
        grant = {"grant_type": "client_credentials"}
        answer = await client.post(emulator.token_url(), data=grant, auth=(CLIENT_ID, SECRET))
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        multipart = await client.post(runs, data={"workflow_url": WORKFLOW}, files={"f": b"x"})
        unknown = await client.post(
            runs, json={"workflow_url": WORKFLOW, "workflow_attachment": []}
        )
        anonymous = await client.get(runs, headers={"Authorization": ""})

    assert multipart.status_code == 400
    assert "multipart/form-data" in multipart.json()["msg"]
    assert unknown.status_code == 400
    assert unknown.json()["msg"] == 'Unrecognized field "workflow_attachment"'
    assert anonymous.status_code == 401
    assert emulator.accepted() == []


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("QUEUED", ExternalState.QUEUED),
        ("INITIALIZING", ExternalState.QUEUED),
        ("PAUSED", ExternalState.QUEUED),
        ("UNKNOWN", ExternalState.QUEUED),
        ("PREPROCESSING", ExternalState.QUEUED),
        ("RUNNING", ExternalState.RUNNING),
        ("CANCELING", ExternalState.RUNNING),
        ("COMPLETE", ExternalState.COMPLETED),
        ("COMPLETE_WITH_ERRORS", ExternalState.FAILED),
        ("PREPROCESSING_ERROR", ExternalState.FAILED),
        ("NOT_PROCESSED", ExternalState.FAILED),
        ("EXECUTOR_ERROR", ExternalState.FAILED),
        ("SYSTEM_ERROR", ExternalState.FAILED),
        ("CANCELED", ExternalState.CANCELLED),
    ],
)
def test_every_dnastack_state_maps_to_a_hub_state(state: str, expected: ExternalState) -> None:
    assert to_status({"state": state}).state is expected


def test_a_failed_run_s_errors_are_its_message() -> None:
    status = to_status(
        {"state": "PREPROCESSING_ERROR", "errors": ["Failed to localize input a.vcf.gz", " "]}
    )
    assert status.message == "Failed to localize input a.vcf.gz"
    assert to_status({"state": "NOT_PROCESSED"}).message == (
        "the workflow run ended in NOT_PROCESSED"
    )


# --- the hub end to end: the app serves the signed input links on loopback ---


@pytest.fixture
def settings(settings: Settings, hub_socket: socket.socket) -> Settings:
    port = hub_socket.getsockname()[1]
    return settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})


@pytest.fixture
async def hub_url(app: FastAPI, hub_socket: socket.socket) -> AsyncIterator[str]:
    """The test's app served over real HTTP in the test's own event loop."""
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[hub_socket]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the test server stopped before it started")
        await asyncio.sleep(0.01)
    host, port = hub_socket.getsockname()[:2]
    yield f"http://{host}:{port}"
    server.should_exit = True
    await task


async def dnastack_job(
    runtime: Runtime, emulator: DnastackEmulator, content: bytes, credential: str = SECRET
) -> Job:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(username="erin", password_hash="!", role="user", created_at=now, updated_at=now)
        session.add(user)
    service = await factories.make_service(
        runtime,
        slug="workbench",
        api_type="dnastack",
        base_url=emulator.endpoint(),
        api_config=api_config(emulator),
        credential_encrypted=runtime.vault.encrypt(credential),
    )
    panel = await factories.make_panel(runtime, service, slug="g1k", panel_id="1000g-phase3")
    stored = await factories.make_file(runtime, user.id, content, filename="study.chr20.vcf.gz")
    return await factories.make_job(
        runtime, user_id=user.id, service=service, panel=panel, files=[stored]
    )


async def test_a_job_runs_at_the_workbench_on_the_hub_s_signed_links_and_its_results_are_stored(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    content = input_vcf()
    job = await dnastack_job(runtime, emulator, content)

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "completed", done.error_log
    run = emulator.run_tagged(job.id)
    assert done.external_job_id == run.id
    [link] = run.request["workflow_params"]["impute.inputs"]
    assert link.startswith(f"{hub_url}/api/v1/links/{job.id}/")
    assert emulator.fetches == [(link, 200)]  # the Workbench downloaded the input itself
    files = {f.filename: f for f in await result_files(runtime, job.id)}
    assert sorted(files) == ["study.chr20.dose.vcf.gz", "study.chr20.info"]
    assert await stored_bytes(runtime, files["study.chr20.dose.vcf.gz"].storage_key) == content
    info = await stored_bytes(runtime, files["study.chr20.info"].storage_key)
    assert hashlib.sha256(content).hexdigest() in info.decode()


def input_vcf() -> bytes:
    """A small gzip VCF; the emulator copies it, it does not parse it."""
    lines = [f"20\t{60000 + i}\t.\tG\tA\t.\tPASS\t.\tGT\t0|1" for i in range(100)]
    return gzip.compress(("##fileformat=VCFv4.2\n" + "\n".join(lines) + "\n").encode())


async def test_a_run_completed_with_errors_fails_the_job_with_the_workbench_s_message(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    job = await dnastack_job(runtime, emulator, input_vcf())
    emulator.script(job.id, "Task impute.beagle failed: the VM ran out of memory")

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "Task impute.beagle failed: the VM ran out of memory" in done.error_message
    assert emulator.run_tagged(job.id).state == "COMPLETE_WITH_ERRORS"
    assert await result_files(runtime, job.id) == []


async def test_inputs_the_workbench_cannot_download_fail_the_job_in_preprocessing(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    job = await dnastack_job(runtime, emulator, input_vcf())
    emulator.auto_advance = False  # the run waits in the Workbench's queue...
    queued = await drive(
        runtime, Worker(runtime), clock, job.id, until=frozenset({JobStatus.QUEUED})
    )
    assert queued.external_job_id is not None
    clock.advance(runtime.settings.input_link_seconds + 60)  # ... longer than links live
    emulator.auto_advance = True

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "Failed to localize input study.chr20.vcf.gz: HTTP 403" in done.error_message
    assert emulator.run_tagged(job.id).state == "PREPROCESSING_ERROR"
    assert [status for _, status in emulator.fetches] == [403]


async def test_cancelling_a_job_cancels_the_workbench_run(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    job = await dnastack_job(runtime, emulator, input_vcf())
    emulator.auto_advance = False
    queued = await drive(
        runtime, Worker(runtime), clock, job.id, until=frozenset({JobStatus.QUEUED})
    )
    await request_cancel(runtime, job.id)

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "cancelled"
    run = emulator.runs[str(queued.external_job_id)]
    assert run.state == "CANCELED"
    assert ("POST", f"/ewes/{NAMESPACE}/ga4gh/wes/v1/runs/{run.id}/cancel") in emulator.calls
    assert await result_files(runtime, job.id) == []


async def test_a_refused_client_secret_fails_the_job_without_showing_it(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    wrong = f"revoked-{uuid.uuid4().hex}"
    job = await dnastack_job(runtime, emulator, input_vcf(), credential=wrong)

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "refused the client credentials" in done.error_message
    assert wrong not in done.error_message
    assert emulator.accepted() == []
    assert (await load_job(runtime, job.id)).external_job_id is None


async def test_a_worker_killed_between_submit_and_recording_does_not_submit_twice(
    runtime: Runtime, clock: FakeClock, emulator: DnastackEmulator, hub_url: str
) -> None:
    job = await dnastack_job(runtime, emulator, input_vcf())
    emulator.hold_submits = True  # the Workbench creates the run but never answers
    doomed = asyncio.create_task(Worker(runtime).run_once())

    async def reached_service() -> bool:
        return len(emulator.accepted()) == 1

    await eventually(reached_service, what="the run request to reach the Workbench")
    doomed.cancel()  # the worker dies before it learns the run id
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    emulator.hold_submits = False
    assert (await load_job(runtime, job.id)).external_job_id is None

    clock.advance(runtime.settings.worker_lease_seconds + 1)  # its lease runs out
    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "completed", done.error_log
    assert len(emulator.accepted()) == 1
    assert done.external_job_id == emulator.run_tagged(job.id).id  # found by its tag
    assert len(await result_files(runtime, job.id)) == 2
