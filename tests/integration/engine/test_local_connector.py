"""The local connector's edges, without running Beagle: staging, hostile names, bad ids, orphans."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from imputehub.connectors.base import (
    ExternalRef,
    ExternalState,
    InputFile,
    JobSpec,
    ServiceInfo,
)
from imputehub.connectors.local import EngineConfig, LocalConnector
from imputehub.connectors.local.runs import RunDir, RunState, hostname, process_started
from imputehub.domain.errors import JobLost, PermanentServiceError, TransientServiceError
from imputehub.engine.panel_store import PanelMeta, PanelStore

SERVICE = ServiceInfo(id="s", slug="local", api_type="local", base_url="local://engine")
CONTENT = b"\x1f\x8b" + b"not really a VCF, never run here" * 100


def _input(name: str, content: bytes = CONTENT, sha256: str | None = None) -> InputFile:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    return InputFile(
        name=name,
        size=len(content),
        sha256=sha256 or hashlib.sha256(content).hexdigest(),
        open=chunks,
    )


def _spec(*inputs: InputFile, panel: str = "demo", mode: str = "imputation") -> JobSpec:
    return JobSpec(
        job_id="job-1",
        name="study",
        panel_id=panel,
        build="hg19",
        phasing="beagle",
        population=None,
        mode=mode,
        r2_filter=None,
        inputs=list(inputs),
    )


@pytest.fixture
def engine_dir(tmp_path: Path) -> Path:
    store = PanelStore(tmp_path / "engine" / "panels")
    store.directory("demo").mkdir(parents=True)
    store.save_meta(PanelMeta(panel_id="demo", display_name="Demo", build="hg19", contigs=("20",)))
    return tmp_path / "engine"


@pytest.fixture
def connector(engine_dir: Path) -> LocalConnector:
    # `true` stands in for the runner's Python: these tests look at staging, not at runs.
    jar = Path("/usr/share/beagle/beagle.jar")
    return LocalConnector(
        EngineConfig(engine_dir=engine_dir, beagle_jar=jar, python="true", stale_seconds=5)
    )


async def test_submit_stages_inputs_under_safe_names_and_is_idempotent(
    connector: LocalConnector, engine_dir: Path
) -> None:
    spec = _spec(_input("../../etc/passwd.vcf.gz"), _input(".hidden.vcf.gz"))

    ref = await connector.submit(SERVICE, spec, None, "job-1")
    again = await connector.submit(SERVICE, spec, None, "job-1")

    assert ref.external_id == again.external_id == "job-1"
    run = RunDir(engine_dir / "runs" / "job-1")
    assert run.spec().inputs == ("inputs/0/passwd.vcf.gz", "inputs/1/hidden.vcf.gz")
    assert (run.path / "inputs/0/passwd.vcf.gz").read_bytes() == CONTENT
    assert not (engine_dir / "etc").exists()
    assert await connector.find(SERVICE, "job-1", None) == ref
    assert await connector.find(SERVICE, "job-2", None) is None
    assert [p.name for p in (engine_dir / "runs").iterdir()] == ["job-1"]  # no staging left
    assert stat.S_IMODE((engine_dir / "runs").stat().st_mode) == 0o700  # users' genotypes


async def test_a_corrupt_input_is_refused_and_nothing_is_left_behind(
    connector: LocalConnector, engine_dir: Path
) -> None:
    spec = _spec(_input("study.vcf.gz", sha256="0" * 64))

    with pytest.raises(TransientServiceError, match="does not match its checksum"):
        await connector.submit(SERVICE, spec, None, "job-1")

    assert list((engine_dir / "runs").iterdir()) == []
    assert await connector.find(SERVICE, "job-1", None) is None


async def test_an_unknown_panel_or_mode_is_a_permanent_error(connector: LocalConnector) -> None:
    with pytest.raises(PermanentServiceError, match="no reference panel 'other'"):
        await connector.submit(SERVICE, _spec(_input("a.vcf.gz"), panel="other"), None, "j")
    with pytest.raises(PermanentServiceError, match="not a valid local panel id"):
        await connector.submit(SERVICE, _spec(_input("a.vcf.gz"), panel="../x"), None, "j")
    with pytest.raises(PermanentServiceError, match="cannot run mode"):
        await connector.submit(SERVICE, _spec(_input("a.vcf.gz"), mode="phasing"), None, "j")


@pytest.mark.parametrize("external_id", ["../job-1", "a/b", ".staging-x", ""])
async def test_ids_that_are_not_a_run_name_are_lost_jobs(
    connector: LocalConnector, external_id: str
) -> None:
    with pytest.raises(JobLost):
        await connector.poll(SERVICE, ExternalRef(external_id=external_id), None)


async def test_poll_of_a_gone_run_says_so(connector: LocalConnector) -> None:
    with pytest.raises(JobLost, match="gone"):
        await connector.poll(SERVICE, ExternalRef(external_id="job-9"), None)


async def test_a_run_whose_process_is_gone_is_restarted_then_given_up(
    connector: LocalConnector, engine_dir: Path
) -> None:
    await connector.submit(SERVICE, _spec(_input("a.vcf.gz")), None, "job-1")
    run = RunDir(engine_dir / "runs" / "job-1")
    # A runner that died: its pid no longer exists on this machine.
    dead = RunState(
        state="running", host=hostname(), pid=2**22 + 1, pid_started="1", heartbeat_at=time.time()
    )
    run.write_state(dead)

    status = await connector.poll(SERVICE, ExternalRef(external_id="job-1"), None)
    assert status.state == ExternalState.QUEUED
    assert run.state().restarts == 1
    assert "restarting it from the beginning" in status.logs[-1]

    run.write_state(replace(dead, restarts=3))
    status = await connector.poll(SERVICE, ExternalRef(external_id="job-1"), None)
    assert status.state == ExternalState.FAILED
    assert status.message is not None
    assert "lost 4 times" in status.message


async def test_a_live_run_with_a_fresh_heartbeat_is_left_alone(
    connector: LocalConnector, engine_dir: Path
) -> None:
    await connector.submit(SERVICE, _spec(_input("a.vcf.gz")), None, "job-1")
    run = RunDir(engine_dir / "runs" / "job-1")
    me = process_started(os.getpid())
    run.write_state(
        RunState(
            state="running",
            step="Phasing and Imputation",
            progress=42.0,
            host=hostname(),
            pid=os.getpid(),
            pid_started=me,
            heartbeat_at=time.time(),
            logs=("started",),
        )
    )

    status = await connector.poll(SERVICE, ExternalRef(external_id="job-1"), None)

    assert status.state == ExternalState.RUNNING
    assert status.progress == 42.0
    assert status.poll_after == connector.config.poll_interval
    assert run.state().restarts == 0


async def test_ended_runs_are_kept_for_the_operator_then_swept_by_health_checks(
    engine_dir: Path,
) -> None:
    connector = LocalConnector(
        EngineConfig(
            engine_dir=engine_dir,
            beagle_jar=Path("/usr/share/beagle/beagle.jar"),
            python="true",
            keep_finished_seconds=3600,
        )
    )
    runs = engine_dir / "runs"
    day_ago = time.time() - 24 * 3600

    def run(name: str, state: str, *, age: float | None = None) -> Path:
        directory = RunDir(runs / name)
        (directory.path / "work").mkdir(parents=True)
        directory.write_state(RunState(state=state, heartbeat_at=time.time()))
        if age is not None:
            os.utime(directory.state_file, (age, age))
        return directory.path

    old_failure = run("failed-yesterday", "failed", age=day_ago)
    new_failure = run("failed-now", "failed")
    long_job = run("running-for-a-day", "running", age=day_ago)
    crash_staging = runs / ".staging-job-9-0000"
    crash_staging.mkdir()
    os.utime(crash_staging, (day_ago, day_ago))

    await connector.check_health(SERVICE)

    assert not old_failure.exists()
    assert not crash_staging.exists()
    # A recent failure stays to be read; a run still going is never touched, however old.
    assert new_failure.is_dir()
    assert long_job.is_dir()
