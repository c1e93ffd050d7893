"""The hub learns that a local run ended when it ends, not at the next poll.

Every poll interval here is an hour and the clock does not move: a job can only finish
because the worker was told its run ended (connectors/local/watch.py, worker/end_watch.py).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.local.runs import RunDir, RunState, hostname, process_started
from imputehub.connectors.local.watch import wait_for_end
from imputehub.db.models import User
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.engine.demo import DemoPanel
from imputehub.engine.tools import check_tools
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.engine.local_support import (
    WorkerProcesses,
    demo_job,
    local_hub,
    long_demo_panel,
    run_dir,
    wait_for_beagle,
)
from tests.integration.worker.processes import wait_until
from tests.integration.worker.support import load_job, result_files

TOOLS = check_tools()


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    assert TOOLS.healthy, TOOLS.message  # `make test` installs them; missing fails, never skips


HOUR = 3600.0
# Nothing but the end of the run can make the next poll due.
HOURLY = {
    "engine_poll_interval_seconds": HOUR,
    "worker_poll_interval": HOUR,
    "poll_interval_seconds": HOUR,
}


@pytest.fixture(scope="module")
def long_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPanel:
    """Beagle runs for seconds: time to kill the worker mid-run."""
    return long_demo_panel(tmp_path_factory.mktemp("long-demo"), 8_000_000)


async def _user(hub: Runtime) -> str:
    now = hub.clock.now()
    async with hub.db.session() as session:
        user = User(username="dora", password_hash="!", role="user", created_at=now, updated_at=now)
        session.add(user)
    return user.id


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.05)


async def test_with_hourly_polls_a_job_still_completes_when_its_run_ends(
    settings: Settings, clock: FakeClock, demo: DemoPanel
) -> None:
    async with local_hub(settings, clock, **HOURLY) as hub:
        job = await demo_job(hub, demo, await _user(hub))
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(hub).run(stop))
        try:

            async def ended() -> bool:
                return JobStatus((await load_job(hub, job.id)).status) in TERMINAL

            await _eventually(ended, "the job's end", within=180)
        finally:
            stop.set()
            await worker

        done = await load_job(hub, job.id)
        assert done.status == "completed", done.error_message
        names = {f.filename for f in await result_files(hub, job.id)}
        assert "chr20.dose.vcf.gz" in names
        assert not run_dir(hub, job.id).path.exists()  # fetched, then removed


@pytest.mark.timeout(360)  # simulating the long panel, then Beagle on it, on a busy machine
async def test_a_worker_restarted_mid_run_still_learns_of_its_end(
    settings: Settings, clock: FakeClock, long_demo: DemoPanel, tmp_path: Path
) -> None:
    async with local_hub(settings, clock) as hub:
        job = await demo_job(hub, long_demo, await _user(hub))
        workers = WorkerProcesses(settings, tmp_path, HOURLY)
        doomed = workers.start("doomed")
        run = run_dir(hub, job.id)
        try:
            await wait_for_beagle(run)

            async def submitted() -> bool:
                # Recorded and let go: the next poll is an hour away.
                current = await load_job(hub, job.id)
                return current.external_job_id is not None and current.lease_owner is None

            await wait_until(submitted, workers=[doomed], what="the submit's outcome")
        finally:
            doomed.kill()  # no clean stop: its watch of the run dies with it
        assert not run.state().final  # the run goes on without a worker watching it

        done = await workers.finish(hub, job.id)
        assert done.status == "completed", done.error_message
        assert not any("restarting" in line for line in done.service_logs)  # adopted, not rerun
        names = {f.filename for f in await result_files(hub, job.id)}
        assert "chr20.dose.vcf.gz" in names


# ---- the watch itself: on this host (pidfd) and from another machine (state file) ----------


def _running(run: RunDir, pid: int, host: str) -> RunState:
    state = RunState(
        state="running",
        heartbeat_at=0.0,
        host=host,
        pid=pid,
        pid_started=process_started(pid),
    )
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_state(state)
    return state


async def test_a_runner_that_dies_on_this_host_ends_the_wait(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    runner = await asyncio.create_subprocess_exec("sleep", "600")
    try:
        _running(run, runner.pid, hostname())
        waiting = asyncio.create_task(wait_for_end(run))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # a live runner: still waiting

        runner.send_signal(signal.SIGKILL)  # as the OOM killer would
        await asyncio.wait_for(waiting, timeout=30)  # the next poll would restart it now
    finally:
        if runner.returncode is None:
            runner.kill()
        await runner.wait()


async def test_a_run_on_another_machine_ends_the_wait_with_its_final_state(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path / "run")
    state = _running(run, 1, "another-machine")
    waiting = asyncio.create_task(wait_for_end(run))
    run.write_state(replace(state, progress=50.0))  # a heartbeat: not the end
    await asyncio.sleep(0.6)
    assert not waiting.done()

    run.write_state(replace(state, state="completed", progress=100.0))
    await asyncio.wait_for(waiting, timeout=30)
