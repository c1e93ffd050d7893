"""RunLogs whose stdout/stderr are URLs (the spec, toil): the connector reads their tails.

Only the last 64 KiB is read (`Range: bytes=-65536`, or the tail of a server that ignores
Range), with the credential only for the WES server's own origin; its text gives the step
lines and the engine's `error:` line; a log that cannot be fetched never fails the poll.
Servers from tests/support/tiny_wes.py on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imputehub.clock import FakeClock
from imputehub.connectors.base import ExternalRef, ExternalState, ServiceInfo
from imputehub.connectors.wes import WesConnector
from imputehub.connectors.wes.states import to_status
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive
from tests.support.tiny_wes import Run, TinyState, tiny_server
from tests.support.wes_jobs import wes_hub_job

FILLER = b"INFO a line of engine chatter that nobody needs to read\n" * 3000  # ~170 KiB
CREDENTIAL = "wes-log-token"


@pytest.fixture
def wes() -> Iterator[TinyState]:
    with tiny_server() as server:
        yield server


@pytest.fixture
def other() -> Iterator[TinyState]:
    with tiny_server() as server:
        yield server


def service(server: TinyState, **config: object) -> ServiceInfo:
    return ServiceInfo(
        id="s", slug="w", api_type="ga4gh_wes", base_url=server.wes_url, api_config=config
    )


# Logs on loopback origins other than the WES server's own need the admin's leave.
PRIVATE_OK = {"allow_private_urls": True}


def a_run(server: TinyState, state: str, **run_log: str) -> ExternalRef:
    server.runs["r1"] = Run(run_id="r1", tags={}, states=[state])
    server.run_log = lambda run_id: dict(run_log)
    return ExternalRef(external_id="r1")


async def test_the_tail_of_a_relative_log_url_gives_the_latest_step(wes: TinyState) -> None:
    # Read whole, stdout would show its step; only the tails are read.
    wes.files["stdout.log"] = b"Phasing: 100%\n" + FILLER
    wes.files["stderr.log"] = FILLER + b"Imputation: 40%\n"
    ref = a_run(wes, "RUNNING", stdout="/files/stdout.log", stderr="/files/stderr.log")

    status = await WesConnector().poll(service(wes), ref, CREDENTIAL)

    assert status.state is ExternalState.RUNNING
    assert "Imputation: 40%" in status.logs
    assert "Phasing: 100%" not in status.logs
    fetches = wes.requests("GET", "/files/")
    assert [f.headers["Range"] for f in fetches] == ["bytes=-65536", "bytes=-65536"]
    assert all(f.headers["Authorization"] == f"Bearer {CREDENTIAL}" for f in fetches)


async def test_a_server_that_ignores_range_is_read_only_to_its_tail(wes: TinyState) -> None:
    wes.honour_range = False
    wes.files["stderr.log"] = b"error: an early complaint, long forgotten\n" + FILLER
    ref = a_run(wes, "EXECUTOR_ERROR", stderr=f"{wes.url}/files/stderr.log", stdout="")

    status = await WesConnector().poll(service(wes), ref, CREDENTIAL)

    assert status.state is ExternalState.FAILED
    assert status.message is not None
    assert status.message.startswith("the workflow run ended in EXECUTOR_ERROR: INFO a line")
    assert "early complaint" not in status.message


async def test_a_log_on_another_origin_gets_no_credential(wes: TinyState, other: TinyState) -> None:
    other.files["stdout.log"] = b"Quality control: 100%\n"
    ref = a_run(wes, "RUNNING", stdout=f"{other.url}/files/stdout.log")

    status = await WesConnector().poll(service(wes, **PRIVATE_OK), ref, CREDENTIAL)

    assert "Quality control: 100%" in status.logs
    [fetch] = other.requests("GET", "/files/stdout.log")
    assert "Authorization" not in fetch.headers


async def test_a_log_that_cannot_be_fetched_is_noted_and_the_poll_goes_on(
    wes: TinyState,
) -> None:
    ref = a_run(
        wes,
        "RUNNING",
        stdout=f"{wes.url}/files/missing.log?signature=s3cr3t",
        stderr="http://127.0.0.1:9/stderr.log",  # nothing listens there
    )

    status = await WesConnector().poll(service(wes, **PRIVATE_OK), ref, CREDENTIAL)

    assert status.state is ExternalState.RUNNING
    assert f"stdout: the log at {wes.url}/files/missing.log could not be fetched (HTTP 404)" in (
        status.logs
    )
    assert any(
        line.startswith("stderr: the log at http://127.0.0.1:9/stderr.log could not be fetched")
        for line in status.logs
    )
    assert not any("s3cr3t" in line for line in status.logs)


def test_a_log_url_that_was_not_fetched_is_never_read_as_log_text() -> None:
    status = to_status(
        {"state": "SYSTEM_ERROR", "run_log": {"stderr": "https://wes/x/stderr", "exit_code": 1}}
    )
    assert status.message == "the workflow run ended in SYSTEM_ERROR (exit code 1)"
    assert status.logs == ("WES state: SYSTEM_ERROR",)


async def test_a_job_fails_with_the_error_line_of_a_log_given_by_url(
    runtime: Runtime, clock: FakeClock, wes: TinyState
) -> None:
    wes.states = ["RUNNING", "EXECUTOR_ERROR"]
    wes.files["err.log"] = FILLER + b"error: no typed site on chromosome '20' matches the panel\n"
    wes.run_log = lambda run_id: {"stderr": "/files/err.log", "exit_code": 1}
    job = await wes_hub_job(runtime, wes.wes_url, credential=CREDENTIAL)

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "failed"
    assert done.error_message == "no typed site on chromosome '20' matches the panel"
