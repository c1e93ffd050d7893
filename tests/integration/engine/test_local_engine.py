"""The local engine through the hub: a worker submits, follows and fetches a real Beagle run."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.local.runs import process_started
from imputehub.db.models import Service, User
from imputehub.engine.accuracy import dosage_r2
from imputehub.engine.demo import DemoPanel
from imputehub.engine.pipeline import IMPUTATION, QUALITY_CONTROL, SUMMARY, VALIDATION
from imputehub.engine.tools import check_tools
from imputehub.registry.health import run_health_check
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.engine.local_support import (
    WorkerProcesses,
    demo_job,
    drive,
    install_panel,
    local_hub,
    local_job,
    long_demo_panel,
    run_dir,
    wait_for_beagle,
)
from tests.integration.worker.support import (
    request_cancel,
    result_files,
    status_updates,
)

TOOLS = check_tools()


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    assert TOOLS.healthy, TOOLS.message  # `make test` installs them; missing fails


@pytest.fixture(scope="module")
def long_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPanel:
    """A longer stretch, so Beagle runs for seconds: time to cancel or kill it mid-run."""
    return long_demo_panel(tmp_path_factory.mktemp("long-demo"), 12_000_000)


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock, demo: DemoPanel) -> AsyncIterator[Runtime]:
    async with local_hub(settings, clock) as runtime:
        install_panel(runtime.settings.resolved_engine_dir, demo)
        yield runtime


async def _user(hub: Runtime) -> str:
    now = hub.clock.now()
    async with hub.db.session() as session:
        user = User(
            username="carol", password_hash="!", role="user", created_at=now, updated_at=now
        )
        session.add(user)
    return user.id


def _renamed(source: Path, out: Path, chrom_map: dict[str, str]) -> bytes:
    """`source` with its chromosomes renamed (header and records) by bcftools."""
    mapping = out.with_suffix(".map")
    mapping.write_text("".join(f"{old}\t{new}\n" for old, new in chrom_map.items()))
    subprocess.run(
        ["bcftools", "annotate", "--rename-chrs", str(mapping), "-Oz", "-o", str(out), str(source)],
        check=True,
    )
    return out.read_bytes()


async def _download(hub: Runtime, key: str, path: Path) -> Path:
    chunks = [chunk async for chunk in hub.storage.read(key)]  # small test results
    await asyncio.to_thread(path.write_bytes, b"".join(chunks))
    return path


async def test_demo_targets_are_imputed_accurately_end_to_end(
    hub: Runtime, clock: FakeClock, demo: DemoPanel, tmp_path: Path
) -> None:
    user_id = await _user(hub)
    job = await local_job(hub, user_id, [("study.vcf.gz", demo.targets.read_bytes())])

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_message
    files = {f.filename: f for f in await result_files(hub, job.id)}
    assert set(files) == {
        "chr20.dose.vcf.gz",
        "chr20.dose.vcf.gz.tbi",
        "chr20.info.gz",
        "qc_report.txt",
        "qc_report.html",
        "snps-excluded.txt",
        "snps-typed-only.txt",
    }
    dose = await _download(hub, files["chr20.dose.vcf.gz"].storage_key, tmp_path / "d.vcf.gz")
    assert dosage_r2(dose, demo.truth) >= 0.85
    info = await _download(hub, files["chr20.info.gz"].storage_key, tmp_path / "i.gz")
    with gzip.open(info, "rt") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in handle]
    assert header == ["SNP", "REF", "ALT", "ALT_Frq", "MAF", "Rsq", "Genotyped"]
    assert len(rows) > demo.target_variants  # imputed sites, not only the typed ones
    assert all(0.0 <= float(row[5]) <= 1.0 for row in rows)  # Beagle's DR2
    assert {row[6] for row in rows} == {"Genotyped", "Imputed"}
    # The step messages reach the job's log; progress moved through the running band.
    steps = [line.split(":")[0] for line in done.service_logs]
    for step in (VALIDATION, QUALITY_CONTROL, IMPUTATION, SUMMARY):
        assert step in steps
    running = [u.progress for u in await status_updates(hub, job.id) if u.status == "running"]
    assert running
    assert all(10.0 <= p <= 90.0 for p in running)
    # Fetched: the run directory (staged inputs, outputs) is gone from the engine's disk.
    assert not run_dir(hub, job.id).path.exists()


async def test_qc_only_gives_the_report_and_statistics_without_imputing(
    hub: Runtime, clock: FakeClock, demo: DemoPanel
) -> None:
    user_id = await _user(hub)
    job = await local_job(
        hub, user_id, [("study.vcf.gz", demo.targets.read_bytes())], mode="qc_only"
    )

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_message
    names = {f.filename for f in await result_files(hub, job.id)}
    assert names == {"qc_report.txt", "qc_report.html", "snps-excluded.txt", "snps-typed-only.txt"}
    assert not any(line.startswith(IMPUTATION) for line in done.service_logs)


async def test_chr_prefixed_targets_are_renamed_to_the_panels_naming(
    hub: Runtime, clock: FakeClock, demo: DemoPanel, tmp_path: Path
) -> None:
    content = _renamed(demo.targets, tmp_path / "chr.vcf.gz", {"20": "chr20"})
    user_id = await _user(hub)
    job = await local_job(hub, user_id, [("study.chr.vcf.gz", content)])

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_message
    files = {f.filename: f for f in await result_files(hub, job.id)}
    assert "chr20.dose.vcf.gz" in files
    report = b"".join(
        [c async for c in hub.storage.read(files["qc_report.txt"].storage_key)]
    ).decode()
    assert "chr20 -> 20" in report


async def test_a_chromosome_the_panel_lacks_fails_the_job_with_a_clear_message(
    hub: Runtime, clock: FakeClock, demo: DemoPanel, tmp_path: Path
) -> None:
    content = _renamed(demo.targets, tmp_path / "chr21.vcf.gz", {"20": "21"})
    user_id = await _user(hub)
    job = await local_job(hub, user_id, [("study.21.vcf.gz", content)])

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "chromosome '21' is not in the reference panel" in done.error_message
    assert await result_files(hub, job.id) == []


async def test_cancelling_mid_run_stops_beagle_and_removes_the_run(
    settings: Settings, clock: FakeClock, long_demo: DemoPanel
) -> None:
    async with local_hub(settings, clock) as hub:
        job = await demo_job(hub, long_demo, await _user(hub))
        worker = Worker(hub)
        await worker.run_once()  # submit: stage, start the runner
        run = run_dir(hub, job.id)
        state = await wait_for_beagle(run)
        assert state.pid is not None
        assert state.beagle_pgid is not None

        await request_cancel(hub, job.id)
        done = await drive(hub, worker, clock, job.id)

        assert done.status == "cancelled"
        assert process_started(state.pid) is None  # the runner is gone
        with pytest.raises(ProcessLookupError):
            os.killpg(state.beagle_pgid, 0)  # and Beagle's whole group
        assert not run.path.exists()  # staged inputs and partial outputs removed
        assert await result_files(hub, job.id) == []


async def test_a_run_whose_process_died_is_restarted_and_completes(
    settings: Settings, clock: FakeClock, long_demo: DemoPanel
) -> None:
    async with local_hub(settings, clock) as hub:
        job = await demo_job(hub, long_demo, await _user(hub))
        worker = Worker(hub)
        await worker.run_once()
        run = run_dir(hub, job.id)
        state = await wait_for_beagle(run)
        assert state.pid is not None
        assert state.beagle_pgid is not None
        # As the OOM killer or a reboot would: the runner dies without a word. Beagle,
        # in its own group, lives on until the restart cleans it up.
        os.kill(state.pid, signal.SIGKILL)

        done = await drive(hub, worker, clock, job.id)

        assert done.status == "completed", done.error_message
        assert any("restarting it from the beginning" in line for line in done.service_logs)
        with pytest.raises(ProcessLookupError):
            os.killpg(state.beagle_pgid, 0)  # the orphaned Beagle did not run on
        names = {f.filename for f in await result_files(hub, job.id)}
        assert "chr20.dose.vcf.gz" in names


async def test_a_missing_tool_makes_the_engine_unhealthy_and_fails_jobs_plainly(
    settings: Settings, clock: FakeClock, demo: DemoPanel, tmp_path: Path
) -> None:
    async with local_hub(settings, clock, beagle_jar=tmp_path / "missing" / "beagle.jar") as hub:
        job = await demo_job(hub, demo, await _user(hub))
        # The hub's own health check of the service records it unhealthy, naming the fix.
        result = await run_health_check(hub, job.service_id)
        assert result.status == "unhealthy"
        async with hub.db.session() as session:
            service = await session.get(Service, job.service_id)
            assert service is not None
            assert service.health_status == "unhealthy"
            assert service.health_message is not None
            assert "apt-get install beagle" in service.health_message

        done = await drive(hub, Worker(hub), clock, job.id)

        assert done.status == "failed"
        assert done.error_message is not None
        assert "apt-get install beagle" in done.error_message


async def test_a_worker_killed_mid_run_leaves_the_run_going_and_another_worker_finishes_it(
    settings: Settings, clock: FakeClock, long_demo: DemoPanel, tmp_path: Path
) -> None:
    async with local_hub(settings, clock) as hub:
        job = await demo_job(hub, long_demo, await _user(hub))
        workers = WorkerProcesses(settings, tmp_path)
        doomed = workers.start("doomed")
        run = run_dir(hub, job.id)
        try:
            state = await wait_for_beagle(run)
        finally:
            doomed.kill()
        assert state.pid is not None
        # The run is not the worker's child in any way that dies with it.
        assert process_started(state.pid) == state.pid_started

        done = await workers.finish(hub, job.id)
        assert done.status == "completed", done.error_message
        assert not any("restarting" in line for line in done.service_logs)  # adopted, not rerun
        names = {f.filename for f in await result_files(hub, job.id)}
        assert "chr20.dose.vcf.gz" in names


async def test_the_jobs_r2_filter_leaves_out_poorly_imputed_sites(
    hub: Runtime, clock: FakeClock, demo: DemoPanel, tmp_path: Path
) -> None:
    user_id = await _user(hub)
    job = await local_job(
        hub, user_id, [("study.vcf.gz", demo.targets.read_bytes())], r2_filter=0.9
    )

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_message
    files = {f.filename: f for f in await result_files(hub, job.id)}
    info = await _download(hub, files["chr20.info.gz"].storage_key, tmp_path / "i.gz")
    with gzip.open(info, "rt") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    imputed = [float(row[5]) for row in rows if row[6] == "Imputed"]
    assert imputed
    assert min(imputed) >= 0.9
    assert len(rows) < demo.panel_variants  # some sites were dropped
