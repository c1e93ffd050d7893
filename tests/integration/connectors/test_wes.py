"""The hub end to end with the GA4GH WES connector against a real WES server (sapporo),
running the shipped CWL workflow (`imputehub engine run`) on the simulated demo panel.

The panel reaches the workflow by its absolute path on this machine (the service's
`api_config.panels[].location`), as a WES server's own panel files would; the study's VCFs
travel as `workflow_attachment` parts. Also here: the state table and the two shapes of
`outputs`, which need no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.connectors.base import ExternalRef, ExternalState, InputFile, JobSpec, ServiceInfo
from imputehub.connectors.wes import WesConnector
from imputehub.connectors.wes.connector import TAG
from imputehub.connectors.wes.outputs import output_files
from imputehub.connectors.wes.states import STATES, to_status
from imputehub.db.models import Job, User
from imputehub.domain.errors import (
    CredentialRejected,
    JobLost,
    PermanentServiceError,
    TransientServiceError,
)
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.engine.accuracy import dosage_r2
from imputehub.engine.demo import DemoPanel
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import (
    eventually,
    load_job,
    request_cancel,
    result_files,
    stored_bytes,
)
from tests.support import factories, vcf
from tests.support.sapporo import Sapporo, sapporo_fixture  # noqa: F401 - session fixture

# Real runs take tens of seconds; the worker is driven in real time, its clock moved on.
FOLLOW_SECONDS = 300.0


async def wes_job(
    runtime: Runtime, server: Sapporo, demo: DemoPanel, content: bytes, **config: Any
) -> Job:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(username="dana", password_hash="!", role="user", created_at=now, updated_at=now)
        session.add(user)
    service = await factories.make_service(
        runtime,
        slug="sapporo",
        api_type="ga4gh_wes",
        base_url=server.base_url,
        api_config={
            "workflow_engine": "cwltool",
            "panels": [
                {
                    "panel_id": "demo",
                    "display_name": "Demo panel",
                    "build": "hg19",
                    "location": str(demo.panel),
                }
            ],
            "extra_params": {"heap_mb": 512},
            **config,
        },
    )
    panel = await factories.make_panel(runtime, service, slug="demo", panel_id="demo")
    stored = await factories.make_file(runtime, user.id, content, filename="study.chr20.vcf.gz")
    return await factories.make_job(
        runtime, user_id=user.id, service=service, panel=panel, files=[stored]
    )


async def follow(
    runtime: Runtime,
    clock: FakeClock,
    job_id: str,
    *,
    until: frozenset[JobStatus] = TERMINAL,
) -> Job:
    """Run the worker until the job's status is in `until`, waiting for the real server."""
    worker = Worker(runtime)
    deadline = time.monotonic() + FOLLOW_SECONDS
    while time.monotonic() < deadline:
        await worker.run_once()
        job = await load_job(runtime, job_id)
        if JobStatus(job.status) in until:
            return job
        clock.advance(runtime.settings.poll_interval_seconds)
        await asyncio.sleep(0.5)
    raise AssertionError(f"job still {job.status} after {FOLLOW_SECONDS} s")


def run_of(server: Sapporo, run_id: str) -> dict[str, Any]:
    body = httpx.get(f"{server.base_url}/runs/{run_id}", timeout=10.0).json()
    assert isinstance(body, dict)
    return body


def runs_tagged(server: Sapporo, job_id: str) -> list[str]:
    body = httpx.get(f"{server.base_url}/runs", params={"page_size": 1000}, timeout=10.0).json()
    return [
        run["run_id"]
        for run in body["runs"]
        if (run.get("tags") or {}).get("imputehub_job_id") == job_id
    ]


async def test_a_job_runs_the_shipped_workflow_at_the_wes_server_and_its_results_are_stored(
    runtime: Runtime, clock: FakeClock, sapporo: Sapporo, demo: DemoPanel, tmp_path: Path
) -> None:
    job = await wes_job(runtime, sapporo, demo, demo.targets.read_bytes())

    done = await follow(runtime, clock, job.id)

    assert done.status == "completed", done.error_log
    assert done.external_job_id is not None
    run = run_of(sapporo, done.external_job_id)
    assert run["state"] == "COMPLETE"
    assert run["request"]["tags"] == {"imputehub_job_id": job.id}
    files = {f.filename: f for f in await result_files(runtime, job.id)}
    assert {"chr20.dose.vcf.gz", "chr20.info.gz", "qc_report.html"} <= set(files)
    dose = tmp_path / "chr20.dose.vcf.gz"
    dose.write_bytes(await stored_bytes(runtime, files["chr20.dose.vcf.gz"].storage_key))
    assert dosage_r2(dose, demo.truth) >= 0.85


async def test_cancelling_a_running_job_cancels_the_wes_run(
    runtime: Runtime, clock: FakeClock, sapporo: Sapporo, demo: DemoPanel
) -> None:
    job = await wes_job(runtime, sapporo, demo, demo.targets.read_bytes())
    running = await follow(
        runtime, clock, job.id, until=frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
    )
    assert running.external_job_id is not None
    run_id = running.external_job_id

    async def run_started() -> bool:
        return bool(run_of(sapporo, run_id)["state"] == "RUNNING")

    await eventually(run_started, what="the WES run to start", within=60.0)
    await request_cancel(runtime, job.id)

    done = await follow(runtime, clock, job.id)

    assert done.status == "cancelled"

    async def run_canceled() -> bool:
        return bool(run_of(sapporo, run_id)["state"] == "CANCELED")

    await eventually(run_canceled, what="sapporo to cancel the run", within=60.0)
    assert await result_files(runtime, job.id) == []


async def test_a_run_that_fails_fails_the_job_with_the_run_s_reason(
    runtime: Runtime, clock: FakeClock, sapporo: Sapporo, demo: DemoPanel
) -> None:
    # A valid VCF whose sites the panel does not have (another region): the engine refuses it.
    job = await wes_job(runtime, sapporo, demo, vcf.make_vcf())

    done = await follow(runtime, clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "no typed site on chromosome '20' matches the panel" in done.error_message
    assert done.external_job_id is not None
    assert run_of(sapporo, done.external_job_id)["state"] == "EXECUTOR_ERROR"


async def test_a_worker_killed_between_submit_and_recording_does_not_submit_twice(
    runtime: Runtime, clock: FakeClock, sapporo: Sapporo, demo: DemoPanel
) -> None:
    job = await wes_job(runtime, sapporo, demo, demo.targets.read_bytes())
    doomed = asyncio.create_task(Worker(runtime).run_once())

    async def reached_service() -> bool:
        return len(runs_tagged(sapporo, job.id)) == 1

    await eventually(reached_service, what="the run to reach the WES server", within=60.0)
    doomed.cancel()  # the worker dies, possibly before it recorded the run id
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    inside = await load_job(runtime, job.id)
    if inside.external_job_id is None:
        clock.advance(runtime.settings.worker_lease_seconds + 1)  # its lease runs out

    done = await follow(runtime, clock, job.id)

    assert done.status == "completed", done.error_log
    assert runs_tagged(sapporo, job.id) == [done.external_job_id]


async def test_find_recognises_a_run_by_its_tag_after_an_interrupted_submit(
    sapporo: Sapporo, demo: DemoPanel
) -> None:
    connector = WesConnector()
    service = ServiceInfo(
        id="s1",
        slug="sapporo",
        api_type="ga4gh_wes",
        base_url=sapporo.base_url,
        api_config={"workflow_engine": "cwltool"},
    )
    content = demo.targets.read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        yield content

    spec = JobSpec(
        job_id="job-interrupted",
        name="interrupted",
        panel_id=str(demo.panel),  # no `panels` entry: sent as the id, which fails the run
        build="hg19",
        phasing="eagle",
        population=None,
        mode="imputation",
        r2_filter=None,
        inputs=[InputFile(name="t.vcf.gz", size=len(content), sha256="", open=chunks)],
    )
    key = f"key-{uuid.uuid4().hex}"
    # The hub crashed after this POST, before it recorded the run id.
    submitted = await connector.submit(service, spec, None, key)

    found = await connector.find(service, key, None)

    assert found is not None
    assert found.external_id == submitted.external_id
    assert await connector.find(service, f"key-{uuid.uuid4().hex}", None) is None
    assert runs_tagged(sapporo, key) == [submitted.external_id]


# --- without a server: the state table and the shapes of `outputs` ---


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
        ("DELETING", ExternalState.RUNNING),
        ("COMPLETE", ExternalState.COMPLETED),
        ("EXECUTOR_ERROR", ExternalState.FAILED),
        ("SYSTEM_ERROR", ExternalState.FAILED),
        ("PREEMPTED", ExternalState.FAILED),
        ("COMPLETE_WITH_ERRORS", ExternalState.FAILED),
        ("PREPROCESSING_ERROR", ExternalState.FAILED),
        ("NOT_PROCESSED", ExternalState.FAILED),
        ("CANCELED", ExternalState.CANCELLED),
        ("DELETED", ExternalState.CANCELLED),
        ("SOMETHING_NEW", ExternalState.QUEUED),
    ],
)
def test_every_wes_state_maps_to_a_hub_state(state: str, expected: ExternalState) -> None:
    assert to_status({"state": state}).state is expected


def test_the_state_table_covers_wes_1_1_sapporo_and_dnastack() -> None:
    spec = {"UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "COMPLETE"}
    spec |= {"EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "CANCELING", "PREEMPTED"}
    extra = {"DELETED", "DELETING", "PREPROCESSING", "COMPLETE_WITH_ERRORS"}
    extra |= {"PREPROCESSING_ERROR", "NOT_PROCESSED"}
    assert spec | extra <= set(STATES)


def test_a_failed_run_reports_the_engine_s_error_line() -> None:
    status = to_status(
        {
            "state": "EXECUTOR_ERROR",
            "run_log": {"stderr": "INFO starting\nerror: the panel is not indexed\nbye\n"},
        }
    )
    assert status.message == "the panel is not indexed"


def test_a_failed_run_without_logs_names_its_state_and_exit_code() -> None:
    status = to_status({"state": "SYSTEM_ERROR", "run_log": {"exit_code": 137}})
    assert status.message == "the workflow run ended in SYSTEM_ERROR (exit code 137)"


def test_a_log_url_is_not_read_as_log_text() -> None:
    # The connector fetches log URLs before this (test_wes_logs.py); one left is not text.
    status = to_status({"state": "RUNNING", "run_log": {"stdout": "https://wes/x/stdout"}})
    assert status.logs == ("WES state: RUNNING",)


def test_outputs_as_a_list_of_file_names_and_urls() -> None:
    base = "http://wes.example/ga4gh/wes/v1"
    files = output_files(
        [
            {"file_name": "results/chr20.dose.vcf.gz", "file_url": f"{base}/runs/1/outputs/a"},
            {"file_name": "results/statistics/x.txt", "file_url": f"{base}/runs/1/outputs/b"},
        ],
        base,
    )
    assert [(f.name, f.url) for f in files] == [
        ("chr20.dose.vcf.gz", f"{base}/runs/1/outputs/a"),
        ("statistics/x.txt", f"{base}/runs/1/outputs/b"),
    ]


def test_outputs_as_an_object_of_cwl_files_and_directories() -> None:
    files = output_files(
        {
            "report": {"class": "File", "location": "https://s3.example/r/qc_report.html"},
            "doses": [
                {"class": "File", "location": "https://s3.example/r/chr1.dose.vcf.gz"},
                {"class": "File", "location": "https://s3.example/r/chr2.dose.vcf.gz"},
            ],
            "stats": {
                "class": "Directory",
                "basename": "statistics",
                "listing": [
                    {
                        "class": "File",
                        "basename": "snps-excluded.txt",
                        "location": "https://s3.example/r/s/1",
                    }
                ],
            },
            "count": 3,
        },
        "https://wes.example/ga4gh/wes/v1",
    )
    assert sorted(f.name for f in files) == [
        "chr1.dose.vcf.gz",
        "chr2.dose.vcf.gz",
        "qc_report.html",
        "statistics/snps-excluded.txt",
    ]


def test_outputs_the_hub_cannot_download_are_refused_plainly() -> None:
    # drs:// is resolved when the results are fetched (test_wes_drs.py).
    [drs] = output_files({"dose": {"class": "File", "location": "drs://drs.example/abc"}}, "")
    assert drs.url == "drs://drs.example/abc"
    with pytest.raises(PermanentServiceError, match="cannot download"):
        output_files({"dose": {"class": "File", "location": "file:///data/x.vcf.gz"}}, "http://w")


# --- a tiny WES server of our own: how answers and auth are handled ---


class _Handler(BaseHTTPRequestHandler):
    server: _TinyWes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if self.path == "/token":
            self.server.token_requests.append(form)
            self._answer(200, {"access_token": "tok-1", "expires_in": 3600})
        else:
            self._answer(404, {"msg": "no such path", "status_code": 404})

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") not in ("Bearer good", "Bearer tok-1"):
            self._answer(401, {"msg": "bad token", "status_code": 401})
        elif self.path.startswith("/runs/gone"):
            self._answer(404, {"msg": "run not found", "status_code": 404})
        elif self.path.startswith("/runs/broken"):
            self._answer(500, {"msg": "oops", "status_code": 500})
        elif self.path.startswith("/runs/bad"):
            self._answer(400, {"msg": "run_id is not a UUID", "status_code": 400})
        elif self.path.startswith("/runs?"):
            # Spec-style: tags only in each run's own RunLog, paged with "" at the end.
            if "page_token=2" in self.path:
                self._answer(200, {"workflows": [{"run_id": "r2"}], "next_page_token": ""})
            else:
                self._answer(200, {"workflows": [{"run_id": "r1"}], "next_page_token": "2"})
        elif self.path.startswith("/runs/r"):
            run_id = self.path.split("/")[2]
            self._answer(200, {"run_id": run_id, "request": {"tags": {TAG: f"job-{run_id}"}}})
        else:
            self._answer(404, {"msg": "no such path", "status_code": 404})


class _TinyWes(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token_requests: list[dict[str, list[str]]] = []
        self.authorizations: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def tiny() -> Iterator[_TinyWes]:
    server = _TinyWes()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _service(url: str, **config: Any) -> ServiceInfo:
    return ServiceInfo(id="s", slug="w", api_type="ga4gh_wes", base_url=url, api_config=config)


async def test_answers_become_the_hub_s_typed_errors(tiny: _TinyWes) -> None:
    connector = WesConnector()
    service = _service(tiny.url)

    with pytest.raises(CredentialRejected, match="bad token"):
        await connector.poll(service, ExternalRef(external_id="r1"), "wrong")
    with pytest.raises(JobLost):
        await connector.poll(service, ExternalRef(external_id="gone"), "good")
    with pytest.raises(TransientServiceError):
        await connector.poll(service, ExternalRef(external_id="broken"), "good")
    with pytest.raises(PermanentServiceError, match="run_id is not a UUID"):
        await connector.poll(service, ExternalRef(external_id="bad"), "good")
    assert "Bearer good" in tiny.authorizations


async def test_find_pages_through_runs_and_reads_each_run_s_tags(tiny: _TinyWes) -> None:
    connector = WesConnector()
    service = _service(tiny.url)

    found = await connector.find(service, "job-r2", "good")

    assert found is not None
    assert found.external_id == "r2"
    assert await connector.find(service, "job-elsewhere", "good") is None


async def test_oauth2_client_credentials_are_exchanged_once_for_a_cached_token(
    tiny: _TinyWes,
) -> None:
    connector = WesConnector()
    service = _service(tiny.url, token_url=f"{tiny.url}/token", client_id="hub", scope="wes")

    await connector.poll(service, ExternalRef(external_id="r1"), "client-secret")
    await connector.poll(service, ExternalRef(external_id="r2"), "client-secret")

    assert len(tiny.token_requests) == 1
    assert tiny.token_requests[0]["grant_type"] == ["client_credentials"]
    assert tiny.token_requests[0]["scope"] == ["wes"]
    assert tiny.authorizations == ["Bearer tok-1", "Bearer tok-1"]
