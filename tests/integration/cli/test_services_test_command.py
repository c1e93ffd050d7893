"""`imputehub services test SERVICE` against a live hub whose worker runs the fake service:
the timings and verdict an operator reads, and the exit status monitoring relies on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.db.models import Job, Service
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.cli.conftest import Cli
from tests.support import factories
from tests.support.api import Actor
from tests.support.fake_connector import FakeConnector
from tests.support.vcf import make_vcf

FAST = ("--interval", "0.05")


@pytest.fixture
def fake(tmp_path: Path) -> FakeConnector:
    """The fake service the hub's runtime uses (its state lives in the same file)."""
    return FakeConnector(tmp_path / "fake.json")


@pytest.fixture
def admin_cli(cli: Cli, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The command line of the admin (the `cli` fixture's environment, the admin's token)."""
    monkeypatch.setenv("IMPUTEHUB_TOKEN", admin.headers["Authorization"].removeprefix("Bearer "))
    return cli


@contextlib.asynccontextmanager
async def worker_running(runtime: Runtime, clock: FakeClock) -> AsyncIterator[None]:
    """A worker doing rounds while the command runs, moving the hub's clock on."""
    worker = Worker(runtime)

    async def rounds() -> None:
        while True:
            await worker.run_once()
            clock.advance(1.0)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(rounds())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def a_service(runtime: Runtime) -> Service:
    service = await factories.make_service(
        runtime,
        slug="mich",
        name="Michigan Imputation Server",
        credential_encrypted=runtime.vault.encrypt("platform-token"),
    )
    await factories.make_panel(runtime, service, slug="hrc", contigs=["20"])
    return service


async def only_job(runtime: Runtime) -> Job:
    async with runtime.db.session() as session:
        jobs = list(await session.scalars(select(Job)))
    assert len(jobs) == 1
    return jobs[0]


async def test_a_passing_self_test_prints_its_timings_and_exits_0(
    runtime: Runtime, clock: FakeClock, fake: FakeConnector, admin_cli: Cli
) -> None:
    await a_service(runtime)
    fake.configure(results={"chr20.dose.vcf.gz": make_vcf(samples=50, variants=30)})

    async with worker_running(runtime, clock):
        done = await admin_cli("services", "test", "mich", *FAST)

    assert done.code == 0, done.out + done.err
    lines = done.out.splitlines()
    assert lines[0].startswith("self-test of Michigan Imputation Server on panel hrc: job ")
    for step in ("created", "submitted", "queued", "running", "fetching", "completed"):
        row = next(line for line in lines if line.startswith(step + " "))
        assert " s" in row, row  # a time, not "-"
    assert "results: 1 file(s)" in done.out
    assert "chr20.dose.vcf.gz (VCF, " in done.out
    assert "total time: " in done.out
    assert lines[-1].startswith("PASSED: the job completed")
    assert JobStatus((await only_job(runtime)).status) == JobStatus.COMPLETED


async def test_a_failing_self_test_names_the_services_error_and_exits_1(
    runtime: Runtime, clock: FakeClock, fake: FakeConnector, admin_cli: Cli
) -> None:
    await a_service(runtime)
    fake.configure(outcome="failed", failure_message="At least 20 samples must be uploaded.")

    async with worker_running(runtime, clock):
        done = await admin_cli("services", "test", "mich", *FAST)

    assert done.code == 1
    assert done.out.splitlines()[-1] == (
        "FAILED: the job failed: At least 20 samples must be uploaded."
    )
    assert "Traceback" not in done.err


async def test_the_json_report_is_for_scripts(
    runtime: Runtime, clock: FakeClock, fake: FakeConnector, admin_cli: Cli
) -> None:
    await a_service(runtime)
    fake.configure(results={"chr20.dose.vcf.gz": make_vcf(samples=50, variants=30)})

    async with worker_running(runtime, clock):
        done = await admin_cli("services", "test", "mich", "--json", *FAST)

    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["verdict"] == "passed"
    assert report["timed_out"] is False
    assert [step["name"] for step in report["steps"]][-1] == "completed"


async def test_no_verdict_in_time_exits_1_and_leaves_the_job_running(
    runtime: Runtime, admin_cli: Cli
) -> None:
    await a_service(runtime)  # no worker: the job never moves

    done = await admin_cli("services", "test", "mich", "--timeout", "1", *FAST)

    assert done.code == 1
    assert "FAILED: no verdict within 1 s (the job is pending" in done.out
    job = await only_job(runtime)
    assert job.id in done.out
    assert JobStatus(job.status) not in TERMINAL


async def test_a_user_is_refused_in_one_line(runtime: Runtime, cli: Cli) -> None:
    await a_service(runtime)

    done = await cli("services", "test", "mich", *FAST)

    assert done.code == 1
    assert done.err.startswith("error: ")
    assert "Traceback" not in done.err


async def test_an_unknown_service_or_panel_is_one_line(runtime: Runtime, admin_cli: Cli) -> None:
    await a_service(runtime)

    unknown = await admin_cli("services", "test", "nope", *FAST)
    no_panel = await admin_cli("services", "test", "mich", "--panel", "<b>x</b>", *FAST)

    assert unknown.code == 1
    assert unknown.err.strip() == "error: no service 'nope'"
    assert no_panel.code == 1
    assert no_panel.err.strip() == "error: unknown reference panel '<b>x</b>'"
