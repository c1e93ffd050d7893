"""The `local` connector: imputation by the hub's own machines (Beagle 5.4), as a service.

It speaks the same Protocol as the remote connectors, so jobs follow the same worker steps:
- submit stages the inputs into a run directory (streamed, checksums verified), writes the
  run's spec, and starts a detached runner process (`runner.py`); the job id names the run,
  so a submit interrupted by a crash is found again (`find`), never run twice;
- poll reads the runner's state file: progress and step messages, or the outcome. A run
  whose runner died (heartbeat stale, or its process gone on this machine) is an orphan:
  poll kills what is left of it and restarts it cleanly, up to `max_restarts` times;
- cancel asks the runner to stop, waits for it, kills its process groups if it will not,
  and removes the run directory (inputs and partial outputs);
- fetch_results streams the result files to the hub's storage, then removes the run;
- watch_end (optional, beyond the Protocol) calls back as soon as a run is over, so the
  worker polls it at once instead of one poll interval later (`watch.py`).

The run directories live under `<engine_dir>/runs`; see `runs.py` for their layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from imputehub.connectors.base import (
    ExternalRef,
    ExternalState,
    ExternalStatus,
    Health,
    HealthStatus,
    InputFile,
    JobSpec,
    PanelInfo,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.local.runs import RunDir, RunSpec, RunState, hostname, runner_alive
from imputehub.connectors.local.watch import OnEnd, RunWatches
from imputehub.domain.errors import JobLost, PermanentServiceError, TransientServiceError
from imputehub.engine.panel_store import PanelStore
from imputehub.engine.tools import check_tools

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    engine_dir: Path
    beagle_jar: Path
    java: str = "java"
    heap_mb: int = 2048
    threads: int = 2
    stale_seconds: float = 60.0
    max_restarts: int = 3
    poll_interval: float = 3.0
    cancel_wait_seconds: float = 15.0
    # Runs that ended without their results being fetched (failed ones, mostly) keep their
    # directory — runner.log, the pipeline's work files — this long for an operator to read,
    # then the health checks sweep them (with staging left by a crash).
    keep_finished_seconds: float = 7 * 24 * 3600.0
    python: str = sys.executable

    @property
    def runs(self) -> Path:
        return self.engine_dir / "runs"

    @property
    def panels(self) -> PanelStore:
        return PanelStore(self.engine_dir / "panels")


class LocalConnector:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.watches = RunWatches(self._run)

    # ---- service ----------------------------------------------------------------------

    async def check_health(self, service: ServiceInfo) -> Health:
        started = time.monotonic()
        check = await asyncio.to_thread(
            check_tools, beagle_jar=self.config.beagle_jar, java=self.config.java
        )
        await asyncio.to_thread(self._sweep)
        elapsed = (time.monotonic() - started) * 1000
        if not check.healthy:
            return Health(
                status=HealthStatus.UNHEALTHY, response_time_ms=elapsed, message=check.message
            )
        panels = await asyncio.to_thread(self.config.panels.list)
        message = f"Beagle, bcftools and tabix found; {len(panels)} reference panels"
        return Health(status=HealthStatus.HEALTHY, response_time_ms=elapsed, message=message)

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        metas = await asyncio.to_thread(self.config.panels.list)
        return [
            PanelInfo(
                panel_id=meta.panel_id,
                display_name=meta.display_name,
                build=meta.build,
                populations=meta.populations,
                sample_count=meta.sample_count,
                variant_count=meta.variant_count,
                description=meta.description,
            )
            for meta in metas
        ]

    # ---- jobs -------------------------------------------------------------------------

    def _run(self, external_id: str) -> RunDir:
        name = Path(external_id).name
        if not name or name != external_id or name.startswith("."):
            raise JobLost(f"'{external_id}' is not a local run")
        return RunDir(self.config.runs / name)

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        run = self._run(idempotency_key)
        if await asyncio.to_thread(run.exists):
            return ExternalRef(external_id=idempotency_key, poll_after=self.config.poll_interval)
        return None

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        run = self._run(idempotency_key)
        ref = ExternalRef(external_id=idempotency_key, poll_after=self.config.poll_interval)
        if await asyncio.to_thread(run.exists):
            return ref  # submitted before a crash: adopt it
        meta = await asyncio.to_thread(self.config.panels.load, job.panel_id)
        tools = await asyncio.to_thread(
            check_tools, beagle_jar=self.config.beagle_jar, java=self.config.java
        )
        if not tools.healthy:
            raise PermanentServiceError(tools.message)
        if job.mode not in ("imputation", "qc_only"):
            raise PermanentServiceError(f"the local engine cannot run mode '{job.mode}'")
        # Owner-only: runs hold users' genotypes, wherever ENGINE_DIR points.
        await asyncio.to_thread(self.config.runs.mkdir, 0o700, True, True)
        staging = self.config.runs / f".staging-{idempotency_key}-{secrets.token_hex(4)}"
        try:
            inputs = [
                await self._stage(staging, index, item) for index, item in enumerate(job.inputs)
            ]
            spec = RunSpec(
                inputs=tuple(inputs),
                panel_vcf=str(self.config.panels.vcf(meta.panel_id)),
                panel_name=meta.display_name,
                chrom_style=meta.chrom_style,
                mode=job.mode,
                heap_mb=self.config.heap_mb,
                threads=self.config.threads,
                java=self.config.java,
                beagle_jar=str(self.config.beagle_jar),
                r2_filter=job.r2_filter,
            )
            await asyncio.to_thread(_finish_staging, staging, spec, run)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        await self._start(run)
        return ref

    async def _stage(self, staging: Path, index: int, item: InputFile) -> str:
        """Copy one input into the run, verifying its checksum; its path in the run."""
        name = Path(item.name.replace("\\", "/")).name.lstrip(".") or f"input{index}.vcf.gz"
        relative = f"inputs/{index}/{name}"
        target = staging / relative
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        handle: BinaryIO = await asyncio.to_thread(open, target, "wb")
        try:
            async for chunk in item.open():
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)
        if digest.hexdigest() != item.sha256:
            raise TransientServiceError(
                f"{item.name}: the stored file does not match its checksum; staging it again"
            )
        return relative

    async def _start(self, run: RunDir) -> None:
        """Start a detached runner for `run` (`launch.py`: returns once it has forked)."""
        log: BinaryIO = await asyncio.to_thread(open, run.log_file, "ab")
        try:
            process = await asyncio.create_subprocess_exec(
                self.config.python,
                "-m",
                "imputehub.connectors.local.launch",
                str(run.path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: signals to the hub spare it
            )
            code = await process.wait()
        finally:
            log.close()
        if code != 0:
            raise TransientServiceError(
                f"the local engine could not start the run (exit code {code})"
            )

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        run = self._run(ref.external_id)
        if not await asyncio.to_thread(run.exists):
            raise JobLost("the local run directory is gone")
        state = await asyncio.to_thread(run.state)
        if not state.final and self._orphaned(state):
            state = await self._restart(run, state)
        return _status(state, self.config.poll_interval)

    def _orphaned(self, state: RunState) -> bool:
        if state.pid is None:
            # Staged but its runner never wrote a state: orphaned once that is overdue.
            return time.time() - state.heartbeat_at > self.config.stale_seconds
        alive = runner_alive(state)
        if alive is False:
            return True
        return time.time() - state.heartbeat_at > self.config.stale_seconds

    async def _restart(self, run: RunDir, state: RunState) -> RunState:
        await asyncio.to_thread(_kill_leftovers, state)
        if state.restarts >= self.config.max_restarts:
            message = (
                f"the local run's process was lost {state.restarts + 1} times "
                "(the machine may be short of memory); giving up"
            )
            failed = replace(state.log(f"failed: {message}"), state="failed", message=message)
            await asyncio.to_thread(run.write_state, failed)
            return failed
        restarted = replace(
            state.log("the run's process was lost; restarting it from the beginning"),
            state="queued",
            restarts=state.restarts + 1,
            pid=None,
            beagle_pgid=None,
            heartbeat_at=time.time(),
        )
        await asyncio.to_thread(run.write_state, restarted)
        await self._start(run)
        return restarted

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        run = self._run(ref.external_id)
        if not await asyncio.to_thread(run.path.is_dir):
            raise JobLost("the local run directory is gone")
        await asyncio.to_thread(run.cancel_file.touch)
        state = await asyncio.to_thread(run.state)
        if runner_alive(state) and state.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.cancel_wait_seconds
        while not state.final and runner_alive(state) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            state = await asyncio.to_thread(run.state)
        if runner_alive(state) is None and not state.final:
            # Another machine runs it; it will see the cancel file. Keep its directory.
            return
        await asyncio.to_thread(_kill_leftovers, state)
        await asyncio.to_thread(shutil.rmtree, run.path, True)

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]:
        run = self._run(ref.external_id)
        state = await asyncio.to_thread(run.state)
        if state.state != "completed":
            raise JobLost("the local run has no results (it did not complete)")
        paths = await asyncio.to_thread(_result_files, run.results)
        stored = [
            await sink.store(path.relative_to(run.results).as_posix(), _read(path))
            for path in paths
        ]
        await asyncio.to_thread(shutil.rmtree, run.path, True)
        return stored

    # ---- noticing the end --------------------------------------------------------------

    def watch_end(self, external_id: str, on_end: OnEnd) -> None:
        """Await `on_end()` once the run is over (final, runner lost, or removed).

        At most one waiter per run in this process; asking again while one waits does
        nothing. Waiters run in the calling event loop until `stop_watches`.
        """
        self.watches.watch(external_id, on_end)

    async def stop_watches(self) -> None:
        await self.watches.stop()

    # ---- housekeeping -------------------------------------------------------------------

    def _sweep(self) -> None:
        """Remove finished runs nobody fetched, and staging left by a crash, once old."""
        if not self.config.runs.is_dir():
            return
        cutoff = time.time() - self.config.keep_finished_seconds
        for child in self.config.runs.iterdir():
            with contextlib.suppress(OSError):
                if child.name.startswith(".staging-"):
                    if child.stat().st_mtime < cutoff:
                        shutil.rmtree(child, ignore_errors=True)
                    continue
                run = RunDir(child)
                state = run.state()
                if state.final and run.state_file.stat().st_mtime < cutoff:
                    shutil.rmtree(child, ignore_errors=True)


def _finish_staging(staging: Path, spec: RunSpec, run: RunDir) -> None:
    (staging / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    RunDir(staging).write_state(RunState(heartbeat_at=time.time(), host=hostname()))
    run.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, run.path)
    except OSError:
        if not run.exists():  # not a concurrent twin that won the race
            raise


def _kill_leftovers(state: RunState) -> None:
    """Kill the runner and Beagle groups of a run on this machine, if they still live."""
    if state.host != hostname():
        return
    groups = [state.beagle_pgid] if state.beagle_pgid else []
    if state.pid is not None and runner_alive(state):
        groups.insert(0, state.pid)  # a session leader: its pid is its group id
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def _result_files(results: Path) -> list[Path]:
    return sorted(path for path in results.rglob("*") if path.is_file())


async def _read(path: Path) -> AsyncIterator[bytes]:
    handle: BinaryIO = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def _status(state: RunState, poll_after: float) -> ExternalStatus:
    if state.state == "completed":
        return ExternalStatus(state=ExternalState.COMPLETED, progress=100.0, logs=state.logs)
    if state.state == "failed":
        return ExternalStatus(state=ExternalState.FAILED, message=state.message, logs=state.logs)
    if state.state == "cancelled":
        return ExternalStatus(state=ExternalState.CANCELLED, logs=state.logs)
    if state.state == "queued":
        return ExternalStatus(state=ExternalState.QUEUED, logs=state.logs, poll_after=poll_after)
    return ExternalStatus(
        state=ExternalState.RUNNING,
        progress=state.progress,
        logs=state.logs,
        poll_after=poll_after,
    )
