"""Shared set-up for tests of the local engine through the hub: panels, hubs, driving jobs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.local.runs import RunDir, RunState
from imputehub.db.models import Job, ReferencePanel, Service
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.engine.demo import DemoPanel, simulate_demo_panel
from imputehub.engine.panel_store import PANEL_VCF, PanelMeta, PanelStore
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.processes import WorkerProcess, start_worker, wait_until
from tests.integration.worker.support import load_job
from tests.support import factories

# The engine's settings in these tests: runs followed closely, Beagle small enough for CI.
LOCAL_ENGINE: dict[str, Any] = {
    "engine_poll_interval_seconds": 0.1,
    "engine_heap_mb": 1024,
    "engine_threads": 1,
}


def long_demo_panel(folder: Path, length: int) -> DemoPanel:
    """`length` bp of the demo panel with 20 targets in `folder`: Beagle runs for seconds on
    them, time to act while it runs."""
    return simulate_demo_panel(folder, length=length, target_samples=20)


def install_panel(engine_dir: Path, demo: DemoPanel, panel_id: str = "demo") -> PanelMeta:
    """Put a simulated panel into the engine's panel store, as `panels import` leaves it."""
    store = PanelStore(engine_dir / "panels")
    directory = store.directory(panel_id)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo.panel, directory / PANEL_VCF)
    shutil.copyfile(f"{demo.panel}.tbi", directory / f"{PANEL_VCF}.tbi")
    meta = PanelMeta(
        panel_id=panel_id,
        display_name=f"Demo panel {panel_id}",
        build=demo.build,
        populations=("DEMO",),
        sample_count=demo.panel_samples,
        variant_count=demo.panel_variants,
        contigs=(demo.contig,),
    )
    store.save_meta(meta)
    return meta


@contextlib.asynccontextmanager
async def local_hub(
    settings: Settings, clock: FakeClock, **overrides: Any
) -> AsyncIterator[Runtime]:
    """A hub whose connectors are the real ones (the local engine among them)."""
    values = {**LOCAL_ENGINE, **overrides}
    runtime = build_runtime(settings.model_copy(update=values), clock=clock)
    try:
        yield runtime
    finally:
        await runtime.close()


async def local_service(hub: Runtime, panel_id: str = "demo") -> tuple[Service, ReferencePanel]:
    service = await factories.make_service(
        hub, slug="local", api_type="local", base_url="local://engine", supported_builds=["hg19"]
    )
    panel = await factories.make_panel(
        hub, service, slug=panel_id, panel_id=panel_id, populations=["DEMO"]
    )
    return service, panel


async def local_job(
    hub: Runtime, user_id: str, files: list[tuple[str, bytes]], **fields: Any
) -> Job:
    service, panel = await local_service(hub)
    stored = [
        await factories.make_file(hub, user_id, content, filename=name) for name, content in files
    ]
    return await factories.make_job(
        hub,
        user_id=user_id,
        service=service,
        panel=panel,
        files=stored,
        population="DEMO",
        phasing="beagle",
        **fields,
    )


async def demo_job(hub: Runtime, demo: DemoPanel, user_id: str) -> Job:
    """A job of `user_id` imputing `demo`'s targets against `demo`, installed in the engine."""
    install_panel(hub.settings.resolved_engine_dir, demo)
    return await local_job(hub, user_id, [("study.vcf.gz", demo.targets.read_bytes())])


@dataclass
class WorkerProcesses:
    """`imputehub worker` processes of one hub: its settings with LOCAL_ENGINE and then
    `engine` on top, one fake connector state and one log folder under `tmp_path`."""

    settings: Settings
    tmp_path: Path
    engine: dict[str, Any] = field(default_factory=dict)

    def start(self, label: str) -> WorkerProcess:
        state, logs = self.tmp_path / "fake.json", self.tmp_path / "logs"
        engine = {**LOCAL_ENGINE, **self.engine}
        return start_worker(self.settings, state, label, logs, **engine)

    async def finish(self, hub: Runtime, job_id: str) -> Job:
        """A new worker ("survivor") until the job ends, then stopped cleanly: the job."""
        survivor = self.start("survivor")
        try:

            async def finished() -> bool:
                return JobStatus((await load_job(hub, job_id)).status) in TERMINAL

            await wait_until(finished, workers=[survivor], what="the job to finish", within=240)
        finally:
            assert survivor.stop() == 0, survivor.output()
        return await load_job(hub, job_id)


def run_dir(hub: Runtime, job_id: str) -> RunDir:
    return RunDir(hub.settings.resolved_engine_dir / "runs" / job_id)


async def drive(
    hub: Runtime,
    worker: Worker,
    clock: FakeClock,
    job_id: str,
    *,
    until: frozenset[JobStatus] = TERMINAL,
    within: float = 240.0,
) -> Job:
    """Run the worker (and the real engine, in real time) until the job's status is in `until`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        await worker.run_once()
        job = await load_job(hub, job_id)
        if JobStatus(job.status) in until:
            return job
        clock.advance(1.0)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job still {job.status} after {within} s")


async def wait_for_beagle(run: RunDir, within: float = 120.0) -> RunState:
    """The run's state once Beagle has started (its process group is recorded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        state = run.state()
        if state.beagle_pgid is not None:
            return state
        assert not state.final, f"the run ended ({state.state}: {state.message}) before Beagle"
        await asyncio.sleep(0.02)
    raise AssertionError("Beagle did not start")
