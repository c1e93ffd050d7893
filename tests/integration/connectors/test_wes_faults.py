"""Faults of a WES server, through the hub: the worker, the real connector and a real HTTP
server on loopback (tests/support/tiny_wes.py) that is slow, answers 500 or malformed JSON,
or hangs up halfway through a result. Each job ends in the right state with a message that
says why, is submitted once, and never keeps a broken file as a result."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.wes import connector as wes_connector
from imputehub.db.models import Job
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive, result_files, status_updates, stored_bytes
from tests.support.tiny_wes import WES, TinyState, tiny_server
from tests.support.wes_jobs import wes_hub_job

DOSE = b"dose-bytes " * 5000
INFO = b"info-bytes " * 300


@pytest.fixture
def wes() -> Iterator[TinyState]:
    with tiny_server() as server:
        server.files = {"dose.vcf.gz": DOSE, "info.gz": INFO}
        server.outputs = lambda run_id: {
            "dose": {"class": "File", "location": f"{server.url}/files/dose.vcf.gz"},
            "info": {"class": "File", "location": f"{server.url}/files/info.gz"},
        }
        yield server


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # A WES answer slower than this is a timeout; the tiny server's slow answers take 2 s.
    monkeypatch.setattr(wes_connector, "API_TIMEOUT", httpx.Timeout(0.5))


async def follow(runtime: Runtime, clock: FakeClock, job: Job) -> Job:
    return await drive(runtime, Worker(runtime), clock, job.id, rounds=40)


async def messages(runtime: Runtime, job_id: str) -> list[str]:
    return [u.message or "" for u in await status_updates(runtime, job_id)]


async def assert_results_complete(runtime: Runtime, job_id: str) -> None:
    files = {f.filename: f for f in await result_files(runtime, job_id)}
    assert sorted(files) == ["dose.vcf.gz", "info.gz"]
    assert await stored_bytes(runtime, files["dose.vcf.gz"].storage_key) == DOSE
    assert await stored_bytes(runtime, files["info.gz"].storage_key) == INFO


def run_path(wes: TinyState) -> str:
    [run_id] = wes.runs
    return f"{WES}/runs/{run_id}"


async def submitted(runtime: Runtime, clock: FakeClock, job: Job, wes: TinyState) -> str:
    """Run the worker until the job is at the server; the run's status path."""
    worker = Worker(runtime)
    for _ in range(5):
        await worker.run_once()
        if wes.runs:
            return run_path(wes)
        clock.advance(1.0)
    raise AssertionError("the job never reached the WES server")


@pytest.mark.parametrize(
    ("fault", "times", "said_why"),
    [
        ("slow", 2, "did not answer within 0.5 s"),  # slower than the (shortened) timeout
        ("500", 4, "the WES service answered HTTP 500"),
        ("malformed", 2, "the WES service sent a malformed answer"),
    ],
    ids=["slower-than-the-timeout", "500-burst", "malformed-json"],
)
async def test_a_status_fault_delays_the_job_until_the_server_recovers(
    runtime: Runtime, clock: FakeClock, wes: TinyState, fault: str, times: int, said_why: str
) -> None:
    job = await wes_hub_job(runtime, wes.wes_url)
    path = await submitted(runtime, clock, job, wes)
    wes.fault(path, fault, times=times)

    done = await follow(runtime, clock, job)

    assert done.status == "completed", done.error_log
    said = await messages(runtime, job.id)
    assert any(said_why in m for m in said), said
    assert len(wes.requests("POST", f"{WES}/runs")) == 1
    await assert_results_complete(runtime, job.id)


async def test_a_burst_of_500s_on_a_result_download_is_retried(
    runtime: Runtime, clock: FakeClock, wes: TinyState
) -> None:
    wes.fault("/files/info.gz", "500", times=3)
    job = await wes_hub_job(runtime, wes.wes_url)

    done = await follow(runtime, clock, job)

    assert done.status == "completed", done.error_log
    said = await messages(runtime, job.id)
    assert any("the download of result info.gz answered HTTP 500" in m for m in said), said
    assert len(wes.requests("POST", f"{WES}/runs")) == 1
    await assert_results_complete(runtime, job.id)


async def test_a_download_cut_off_midway_is_fetched_again_whole(
    runtime: Runtime, clock: FakeClock, wes: TinyState
) -> None:
    wes.fault("/files/dose.vcf.gz", "drop", times=2)
    job = await wes_hub_job(runtime, wes.wes_url)

    done = await follow(runtime, clock, job)

    assert done.status == "completed", done.error_log
    said = await messages(runtime, job.id)
    assert any("the download of result dose.vcf.gz broke off" in m for m in said), said
    assert len(wes.requests("GET", "/files/dose.vcf.gz")) == 3
    assert len(wes.requests("POST", f"{WES}/runs")) == 1
    await assert_results_complete(runtime, job.id)


@contextlib.asynccontextmanager
async def impatient_hub(
    settings: Settings, clock: FakeClock, **overrides: Any
) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings.model_copy(update=overrides), clock=clock)
    try:
        yield runtime
    finally:
        await runtime.close()


async def test_a_download_that_never_completes_fails_the_job_without_a_partial_result(
    settings: Settings, clock: FakeClock, wes: TinyState
) -> None:
    wes.fault("/files/dose.vcf.gz", "drop", times=100)
    async with impatient_hub(settings, clock, max_transient_attempts=3) as runtime:
        job = await wes_hub_job(runtime, wes.wes_url)

        done = await follow(runtime, clock, job)

        assert done.status == "failed"
        assert done.error_message is not None
        assert "gave up after 3 attempts" in done.error_message
        assert "the download of result dose.vcf.gz broke off" in done.error_message
        stored = {f.filename: f for f in await result_files(runtime, job.id)}
        assert "dose.vcf.gz" not in stored  # no truncated file passes for a result
        assert not await runtime.storage.exists(f"results/{job.id}/dose.vcf.gz")
        assert len(wes.requests("POST", f"{WES}/runs")) == 1
