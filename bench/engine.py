"""Benchmark: a demo job through the hub end to end, next to Beagle alone on the same input.

Simulates the demo panel (chr20, hg19; default 1 Mb, 500 panel and 50 target individuals)
into a temporary directory, then in one run, `--repeat` times each:

  hub           a real hub in this process (SQLite and local-disk storage in a temporary
                data dir, the default connectors, the real clock): the panel imported into
                the engine's store and registered as a local service, the targets uploaded
                through the HTTP API (not timed: uploads have their own benchmark), then
                the real worker loop running while `POST /jobs` creates the job. Timed by
                the hub's own record, from the job's creation to `completed` (result files
                in the hub's storage): pick-up, staging, the runner, validation, QC, Beagle,
                summary, noticing the end and fetching the results. The split is read from
                the runner's state file and from timestamps around the worker's calls to the
                engine (the hub's own local connector, wrapped, not changed).
  beagle alone  `java -Xmx<heap>m -jar beagle.jar gt=<targets> ref=<panel> out=<prefix>
                nthreads=<threads> gp=true` on the same files, same heap and threads.

The hub learns that a run ended the moment its runner exits (a pidfd on the runner,
connectors/local/watch.py): the poll that sees the end is made due at once and the worker
woken (worker/end_watch.py), so the poll intervals no longer bound the overhead; they only
set how often progress is read. The job is picked up at once (the API wakes the worker of
its own process, as in `serve`) and the fetch follows the last poll at once (the worker
wakes when a step ends). Both intervals are options, at the hub's defaults unless given.
The goal (issue 17): hub ≤ 1.2 times Beagle alone at the default size, ≤ 1.1 times at 10 Mb. The
dosage r² of each result against the simulated truth shows that the work done was real.
A benchmark that prints figures, never a test:

    python bench/engine.py                          # 1 Mb demo panel, default intervals
    python bench/engine.py --length 10000000        # 10 Mb: Beagle dominates
    python bench/engine.py --repeat 3               # medians of three
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from imputehub.accounts import users
from imputehub.app import create_app
from imputehub.config import Settings
from imputehub.connectors.base import (
    Connector,
    ExternalRef,
    ExternalStatus,
    Health,
    JobSpec,
    PanelInfo,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.local.runs import RunDir
from imputehub.db.models import Base, StoredFile
from imputehub.engine.accuracy import dosage_r2
from imputehub.engine.demo import DEMO_SEED, DemoPanel, simulate_demo_panel
from imputehub.engine.panel_import import PanelTools, import_panel
from imputehub.engine.panel_store import PanelStore
from imputehub.engine.pipeline import IMPUTATION, QUALITY_CONTROL, SUMMARY, VALIDATION
from imputehub.engine.tools import check_tools
from imputehub.registry import local_engine
from imputehub.runtime import Runtime, build_runtime, default_connectors
from imputehub.worker.loop import Worker

USERNAME = "bench"
PASSWORD = "benchmark password 0123"  # noqa: S105 - a throwaway in-process hub
PANEL_ID = "demo"
SERVICE_SLUG = "local"
DOSE_FILE = "chr20.dose.vcf.gz"
TERMINAL = ("completed", "failed", "cancelled")
WATCH_SECONDS = 0.05  # how often the run's state file is read for the pipeline split
STATUS_SECONDS = 0.2  # how often the client asks for the job's status (not in the timing)
DEFAULTS = Settings.model_fields


def default(name: str) -> Any:
    return DEFAULTS[name].default


# ---- the hub ------------------------------------------------------------------------------


class Stopwatch:
    """The hub's own connector, unchanged, with the start and end of each call written down
    (wall clock), so the span can be split where the worker called the engine."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, float, float]] = []  # (call, job id, start, end)
        self.ends: dict[str, float] = {}  # job id -> when the watch saw its run end

    async def check_health(self, service: ServiceInfo) -> Health:
        return await self.inner.check_health(service)

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        return await self.inner.list_panels(service, credential)

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        return await self.inner.find(
            service, idempotency_key, credential, submitted_after=submitted_after
        )

    # The local connector's optional end watch (worker/end_watch.py), passed through.
    def watch_end(self, external_id: str, on_end: Callable[[], Awaitable[None]]) -> None:
        def ended() -> Awaitable[None]:
            self.ends[external_id] = time.time()
            return on_end()

        self.inner.watch_end(external_id, ended)  # type: ignore[attr-defined]

    async def stop_watches(self) -> None:
        await self.inner.stop_watches()  # type: ignore[attr-defined]

    async def submit(
        self, service: ServiceInfo, job: JobSpec, credential: str | None, idempotency_key: str
    ) -> ExternalRef:
        start = time.time()
        ref = await self.inner.submit(service, job, credential, idempotency_key)
        self.calls.append(("submit", idempotency_key, start, time.time()))
        return ref

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        start = time.time()
        status = await self.inner.poll(service, ref, credential)
        self.calls.append((f"poll:{status.state.value}", ref.external_id, start, time.time()))
        return status

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        await self.inner.cancel(service, ref, credential)

    async def fetch_results(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None, sink: ResultSink
    ) -> list[ResultFile]:
        start = time.time()
        files = await self.inner.fetch_results(service, ref, credential, sink)
        self.calls.append(("fetch", ref.external_id, start, time.time()))
        return files

    def last(self, job_id: str, call: str) -> tuple[float, float]:
        """(start, end) of the last such call for the job."""
        found = [(a, b) for name, job, a, b in self.calls if job == job_id and name == call]
        if not found:
            sys.exit(f"the worker never made a {call} call for job {job_id}")
        return found[-1]

    def polls(self, job_id: str) -> int:
        return sum(1 for name, job, *_ in self.calls if job == job_id and name.startswith("poll"))


@dataclass
class Hub:
    runtime: Runtime
    stopwatch: Stopwatch
    client: httpx.AsyncClient
    headers: dict[str, str]
    file_id: str


@dataclass
class HubRun:
    seconds: float  # the hub's record: created_at -> completed_at
    phases: list[tuple[str, float]]
    beagle_step: float  # the runner's Imputation step, as watched
    polls: int
    r2: float


def utc(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _register_local_engine(runtime: Runtime, demo: DemoPanel) -> None:
    """What `imputehub panels import` does: the files into the store, then the rows."""
    store = PanelStore.in_engine_dir(runtime.settings.resolved_engine_dir)
    meta = await asyncio.to_thread(
        import_panel,
        store,
        demo.panel,
        panel_id=PANEL_ID,
        display_name="Demo panel (benchmark)",
        build=demo.build,
        populations=("demo",),
        tools=PanelTools(),
    )
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        service = await local_engine.create_local_service(
            session,
            name="Local engine (Beagle 5.4)",
            slug=SERVICE_SLUG,
            base_url="http://localhost",
            now=now,
        )
        await local_engine.record_local_panel(session, service, meta, now=now, slug=PANEL_ID)
        await users.create_user(session, username=USERNAME, password=PASSWORD, now=now)


async def _until_healthy(hub: Hub, within: float = 60.0) -> None:
    """The worker's first health check has passed (users only see healthy services)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = await hub.client.get(f"/api/v1/services/{SERVICE_SLUG}", headers=hub.headers)
        if answer.status_code == 200 and answer.json()["health_status"] == "healthy":
            return
        await asyncio.sleep(0.1)
    sys.exit(f"the local engine did not become healthy: {answer.text}")


@contextlib.asynccontextmanager
async def running_hub(
    data_dir: Path, demo: DemoPanel, args: argparse.Namespace
) -> AsyncIterator[Hub]:
    """A hub in this process with its worker loop running, the targets already uploaded."""
    settings = Settings.from_environ(
        {},  # nothing from the environment or a .env file: a fresh, default hub
        data_dir=data_dir,
        engine_poll_interval_seconds=args.poll_interval,
        worker_poll_interval=args.worker_poll_interval,
        engine_heap_mb=args.heap_mb,
        engine_threads=args.threads,
    )
    stopwatch = Stopwatch(default_connectors(settings)["local"])
    runtime = build_runtime(settings, connectors={"local": stopwatch})
    stop = asyncio.Event()
    worker: asyncio.Task[None] | None = None
    try:
        async with runtime.db.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        await _register_local_engine(runtime, demo)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub.bench", timeout=600
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": USERNAME, "password": PASSWORD}
            )
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            with demo.targets.open("rb") as handle:
                uploaded = await client.post(
                    "/api/v1/files",
                    headers=headers,
                    files={"file": ("study.chr20.vcf.gz", handle, "application/gzip")},
                )
            if uploaded.status_code != 201:
                sys.exit(f"the upload was refused: {uploaded.text}")
            hub = Hub(
                runtime=runtime,
                stopwatch=stopwatch,
                client=client,
                headers=headers,
                file_id=uploaded.json()["id"],
            )
            worker = asyncio.create_task(Worker(runtime).run(stop))
            await _until_healthy(hub)
            yield hub
    finally:
        stop.set()
        if worker is not None:
            await worker
        await runtime.close()


class RunWatch:
    """When each pipeline step and the run's end were first seen in the run's state file."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.first_seen: dict[str, float] = {}
        self.stopped = asyncio.Event()

    async def watch(self) -> None:
        while not self.stopped.is_set():
            state = await asyncio.to_thread(self.run.state)
            now = time.time()
            if state.state == "running" and state.step:
                self.first_seen.setdefault(state.step, now)
            if state.final:
                self.first_seen.setdefault(state.state, now)
            await asyncio.sleep(WATCH_SECONDS)

    def start(self, step: str, *later: str) -> float | None:
        """When `step` started; a step too short to be seen starts when the next one does."""
        for name in (step, *later):
            if name in self.first_seen:
                return self.first_seen[name]
        return None


async def _download(hub: Hub, file_id: str, path: Path) -> Path:
    """A result file from the hub's storage, streamed to `path`."""
    async with hub.runtime.db.session() as session:
        record = await session.get(StoredFile, file_id)
    assert record is not None
    with path.open("wb") as out:
        async for chunk in hub.runtime.storage.read(record.storage_key):
            await asyncio.to_thread(out.write, chunk)
    return path


def _phases(
    job_id: str, created: float, completed: float, stopwatch: Stopwatch, watch: RunWatch
) -> list[tuple[str, float]]:
    """The span split where the worker called the engine and where the runner changed step
    (wall clock); what is left over is the hub's database writes between steps."""
    submit_start, submit_end = stopwatch.last(job_id, "submit")
    poll_start, poll_end = stopwatch.last(job_id, "poll:completed")
    fetch_start, fetch_end = stopwatch.last(job_id, "fetch")
    order = (VALIDATION, QUALITY_CONTROL, IMPUTATION, SUMMARY, "completed")
    steps = [watch.start(name, *order[index + 1 :]) for index, name in enumerate(order)]
    if any(s is None for s in steps):
        sys.exit("the run's steps were not seen in its state file")
    validation, qc, imputation, summary, done = (s for s in steps if s is not None)
    phases = [
        ("waiting for a worker to pick the job up", submit_start - created),
        ("submit: stage the input, start the runner", submit_end - submit_start),
        ("runner process start-up", validation - submit_end),
        (f"runner: {VALIDATION}", qc - validation),
        (f"runner: {QUALITY_CONTROL}", imputation - qc),
        (f"runner: {IMPUTATION} (Beagle)", summary - imputation),
        (f"runner: {SUMMARY}", done - summary),
        *_noticing(stopwatch.ends.get(job_id), done, poll_start),
        ("waiting for a worker to pick the fetch up", fetch_start - poll_end),
        ("fetch: results into the hub's storage", fetch_end - fetch_start),
    ]
    rest = completed - created - sum(seconds for _, seconds in phases)
    return [*phases, ("the hub's database writes between steps", rest)]


def _noticing(seen: float | None, done: float, poll_start: float) -> list[tuple[str, float]]:
    """From the final state to the poll that reads it: the watch, then the claim."""
    if seen is None or seen > poll_start:  # no watch, or a poll came first
        return [("waiting for the poll that notices the end", poll_start - done)]
    # The watch may see the exit before this script's own 50 ms look at the state file.
    seen = max(seen, done)
    return [
        ("waiting: runner exit seen by the watch", seen - done),
        ("waiting: the poll made due and claimed", poll_start - seen),
    ]


async def run_hub_job(hub: Hub, demo: DemoPanel, scratch: Path, number: int) -> HubRun:
    body = {
        "name": f"benchmark {number}",
        "service_id": SERVICE_SLUG,
        "reference_panel_id": PANEL_ID,
        "input_file_ids": [hub.file_id],
        "build": demo.build,
        "phasing": "beagle",
        "population": "demo",
    }
    created = await hub.client.post("/api/v1/jobs", headers=hub.headers, json=body)
    if created.status_code != 201:
        sys.exit(f"POST /jobs was refused: {created.text}")
    job_id = created.json()["id"]
    watch = RunWatch(RunDir(hub.runtime.settings.resolved_engine_dir / "runs" / job_id))
    watching = asyncio.create_task(watch.watch())
    try:
        while True:
            job = (await hub.client.get(f"/api/v1/jobs/{job_id}", headers=hub.headers)).json()
            if job["status"] in TERMINAL:
                break
            await asyncio.sleep(STATUS_SECONDS)
    finally:
        watch.stopped.set()
        await watching
    if job["status"] != "completed":
        sys.exit(f"the job ended {job['status']}: {job['error_message']}")
    start = utc(job["created_at"]).timestamp()
    end = utc(job["completed_at"]).timestamp()
    results = (await hub.client.get(f"/api/v1/jobs/{job_id}/results", headers=hub.headers)).json()
    dose_id = next(r["id"] for r in results if r["filename"] == DOSE_FILE)
    dose = await _download(hub, dose_id, scratch / f"hub-{number}.{DOSE_FILE}")
    phases = _phases(job_id, start, end, hub.stopwatch, watch)
    beagle_step = next((s for name, s in phases if name.endswith("(Beagle)")), float("nan"))
    return HubRun(
        seconds=end - start,
        phases=phases,
        beagle_step=beagle_step,
        polls=hub.stopwatch.polls(job_id),
        r2=await asyncio.to_thread(dosage_r2, dose, demo.truth),
    )


# ---- Beagle alone -------------------------------------------------------------------------


def run_beagle_alone(
    demo: DemoPanel, scratch: Path, number: int, *, heap_mb: int, threads: int, java: str, jar: Path
) -> tuple[float, float]:
    """Seconds, and the dosage r² of its output against the truth."""
    prefix = scratch / f"beagle-{number}"
    command = [
        java,
        f"-Xmx{heap_mb}m",
        "-jar",
        str(jar),
        f"gt={demo.targets}",
        f"ref={demo.panel}",
        f"out={prefix}",
        f"nthreads={threads}",
        "gp=true",
    ]
    with (scratch / f"beagle-{number}.stdout").open("wb") as log:
        start = time.perf_counter()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"Beagle failed (exit {done.returncode}); see {prefix}.log")
    return seconds, dosage_r2(prefix.with_name(prefix.name + ".vcf.gz"), demo.truth)


# ---- the run ------------------------------------------------------------------------------


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


async def benchmark(args: argparse.Namespace, work: Path) -> None:
    seconds, demo = timed(
        lambda: simulate_demo_panel(
            work / "demo",
            seed=args.seed,
            panel_samples=args.panel_samples,
            target_samples=args.targets,
            length=args.length,
        )
    )
    print(
        f"demo panel: {args.length / 1e6:g} Mb of chr{demo.contig}, {demo.panel_samples} panel "
        f"individuals, {demo.panel_variants:,} sites; targets: {demo.target_samples} "
        f"individuals, {demo.target_variants:,} array sites (simulated in {seconds:.1f} s)"
    )
    print(
        f"Beagle: heap {args.heap_mb} MB, {args.threads} threads; hub: engine poll interval "
        f"{args.poll_interval:g} s, worker poll interval {args.worker_poll_interval:g} s"
    )
    hub_runs: list[HubRun] = []
    alone: list[tuple[float, float]] = []
    async with running_hub(work / "hub", demo, args) as hub:
        settings = hub.runtime.settings
        for number in range(1, args.repeat + 1):
            alone.append(
                await asyncio.to_thread(
                    run_beagle_alone,
                    demo,
                    work,
                    number,
                    heap_mb=settings.engine_heap_mb,
                    threads=settings.engine_threads,
                    java=settings.java,
                    jar=settings.beagle_jar,
                )
            )
            hub_runs.append(await run_hub_job(hub, demo, work, number))

    print(
        f"\n{'run':<6}{'hub end-to-end':>16}{'Beagle alone':>14}{'overhead':>11}{'%':>8}"
        f"{'ratio':>8}{'r² hub':>9}{'r² alone':>10}"
    )
    for number, (run, (beagle, beagle_r2)) in enumerate(zip(hub_runs, alone, strict=True), 1):
        overhead = run.seconds - beagle
        print(
            f"{number:<6}{run.seconds:>14.2f} s{beagle:>12.2f} s{overhead:>9.2f} s"
            f"{100 * overhead / beagle:>7.0f}%{run.seconds / beagle:>7.2f}x"
            f"{run.r2:>9.3f}{beagle_r2:>10.3f}"
        )
    if args.repeat > 1:
        hub_median = statistics.median(r.seconds for r in hub_runs)
        alone_median = statistics.median(b for b, _ in alone)
        overhead = hub_median - alone_median
        print(
            f"{'median':<6}{hub_median:>14.2f} s{alone_median:>12.2f} s{overhead:>9.2f} s"
            f"{100 * overhead / alone_median:>7.0f}%{hub_median / alone_median:>7.2f}x"
        )

    last = hub_runs[-1]
    print(
        f"\nwhere the hub's {last.seconds:.2f} s went (run {len(hub_runs)}, "
        f"{last.polls} polls of the run; the runner's steps as seen every "
        f"{WATCH_SECONDS * 1000:.0f} ms in its state file):"
    )
    for name, seconds in last.phases:
        print(f"  {name:<46}{seconds:>8.2f} s")
    waiting = sum(s for name, s in last.phases if name.startswith("waiting"))
    work_s = last.seconds - waiting - last.beagle_step
    print(
        f"\nwaiting (pick-up, noticing the end, the fetch's claim): {waiting:.2f} s; the hub's "
        f"own work besides Beagle (staging, runner, validation, QC, summary, fetch, "
        f"database): {work_s:.2f} s.\n"
        f"The end is noticed when the runner exits, not at a poll: the poll intervals "
        f"(engine {args.poll_interval:g} s, worker {args.worker_poll_interval:g} s) only set "
        f"how often progress is read.\n"
        f"The runner's Beagle step took {last.beagle_step:.2f} s (on the QC-filtered targets), "
        f"Beagle alone {alone[-1][0]:.2f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1_000_000, help="bp simulated (1 Mb)")
    parser.add_argument("--targets", type=int, default=50, help="target individuals (50)")
    parser.add_argument("--panel-samples", type=int, default=500, help="panel individuals")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (default 1)")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=default("engine_poll_interval_seconds"),
        help="seconds between polls of a local run (the hub's default: %(default)s)",
    )
    parser.add_argument(
        "--worker-poll-interval",
        type=float,
        default=default("worker_poll_interval"),
        help="seconds an idle worker waits before looking for due work (%(default)s)",
    )
    parser.add_argument("--heap-mb", type=int, default=default("engine_heap_mb"))
    parser.add_argument("--threads", type=int, default=default("engine_threads"))
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    tools = check_tools()
    if not tools.healthy:
        sys.exit(tools.message)

    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        asyncio.run(benchmark(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
