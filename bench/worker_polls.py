"""Benchmark: how many running Michigan jobs one `imputehub worker` process follows.

N running jobs of a registered Michigan service (its credential in the vault) are written
straight into a fresh PostgreSQL database, due one after another across one poll interval.
A stand-in Michigan server in its own process(es) (a raw asyncio server: it must not be the
bottleneck) answers `GET /api/v2/jobs/{id}/status` as "running", the same answer every
time, and notes when each job was asked. One real `imputehub worker` process follows the
jobs for `--duration` seconds. After a warm-up of one interval the bench measures:

  polls/s          status requests the server saw per second (due: N / interval)
  on time          the share of polls that came within interval + 5 s of the job's previous
                   poll (a job not polled again by the end, although due, counts as late)
  worker CPU/poll  the worker process's utime + stime (/proc/<pid>/stat) over the window,
                   divided by the polls in it
  server CPU       the stand-in server's, likewise
  database         PostgreSQL backends' CPU and committed transactions of the bench
                   database, per poll

and, side by side, a baseline: a bare asyncio + httpx loop sending the same GETs with one
shared client (CPU per request). A benchmark that prints, never a test:

    python bench/worker_polls.py                                   # 10,000 jobs, 30 s
    python bench/worker_polls.py --jobs 500 --interval 5 --duration 30
    python bench/worker_polls.py --worker-env IMPUTEHUB_WORKER_CONCURRENCY=20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg

# Run as `python bench/worker_polls.py`: the helpers next to it are importable.
from _hub import free_port, libpq, postgres_database, running_job
from sqlalchemy.engine import make_url
from tests.support import factories  # _hub put the repository root on sys.path

from imputehub.clock import SystemClock
from imputehub.config import Settings
from imputehub.connectors.michigan import states
from imputehub.db.migrate import upgrade
from imputehub.db.models import JobStatusUpdate
from imputehub.domain import jobs as rules
from imputehub.domain.jobs import JobStatus, Step
from imputehub.registry.credentials import PLATFORM
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.quiet_polls import running_message

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-token"  # noqa: S105 - the stand-in server's API token
SECRET_KEY = "w" * 40
LATE_AFTER = 5.0  # seconds past the interval a poll may come and still be on time
TICK = os.sysconf("SC_CLK_TCK")
BASELINE_PREFIX = "baseline-"

# What the stand-in server says of every job: running, two of the app's steps done.
ANSWER: dict[str, object] = {
    "application": "Genotype Imputation 2.0.12",
    "applicationId": "imputationserver2",
    "name": "bench",
    "state": 2,
    "positionInQueue": -1,
    "submittedOn": 1_700_000_000_000,
    "startTime": 1_700_000_001_000,
    "endTime": 0,
    "steps": [
        {
            "id": 1,
            "name": "Input Validation",
            "logMessages": [{"message": "3 valid VCF files", "type": 0, "time": 1}],
        },
        {
            "id": 2,
            "name": "Quality Control",
            "logMessages": [{"message": "QC passed", "type": 0, "time": 2}],
        },
    ],
    "outputParams": [],
    "deletedOn": 0,
}
STATUS_PATH = re.compile(rb"^/api/v2/jobs/([^/]+)/status$")


# ---- the stand-in Michigan server (`--serve`, its own process) ---------------------------


class _Status(asyncio.Protocol):
    """HTTP/1.1 keep-alive, GET only: a status answer per job, 401 without a token."""

    def __init__(self, seen: list[tuple[bytes, float]]) -> None:
        self.seen = seen
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            line, _, headers = head.partition(b"\r\n")
            lowered = headers.lower()
            parts = line.split(b" ")
            match = STATUS_PATH.match(parts[1]) if len(parts) == 3 else None
            if b"x-auth-token: " + TOKEN.encode() not in lowered:
                status, body = b"401 Unauthorized", b'{"message": "Login Failed!"}'
            elif match is None:
                status, body = b"404 Not Found", b'{"message": "Not found."}'
            else:
                job_id = match.group(1)
                self.seen.append((job_id, time.time()))
                answer = dict(ANSWER, id=job_id.decode(), currentTime=int(time.time() * 1000))
                status, body = b"200 OK", json.dumps(answer).encode()
            close = b"connection: close" in lowered
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                + (b"Connection: close\r\n" if close else b"")
                + b"\r\n" + body
            )  # fmt: skip
            if close:
                self.transport.close()
                return


def serve(port: int, record: Path) -> None:
    """Answer until SIGTERM, then write `job_id time` per request seen to `record`."""
    seen: list[tuple[bytes, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # several processes
        sock.bind(("127.0.0.1", port))
        server = await loop.create_server(lambda: _Status(seen), sock=sock, backlog=4096)
        await stop.wait()
        server.close()

    asyncio.run(main())
    with record.open("w") as out:
        out.writelines(f"{job.decode()} {at:.6f}\n" for job, at in seen)


# ---- measuring processes -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    return 0.0


def database_backends(name: str) -> list[int]:
    """PostgreSQL backends serving database `name` (their process title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if title.startswith(b"postgres: ") and f" {name} ".encode() in title:
                pids.append(int(entry.name))
    return pids


class Snapshot:
    def __init__(self, libpq: str, name: str, worker: int, servers: list[int]) -> None:
        self.at = time.time()
        self.worker = cpu_seconds(worker)
        self.server = sum(cpu_seconds(pid) for pid in servers)
        self.backends = {pid: cpu_seconds(pid) for pid in database_backends(name)}
        with psycopg.connect(libpq, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
            ).fetchone()
        self.commits = int(row[0]) if row else 0

    def backend_cpu_since(self, start: Snapshot) -> float:
        return sum(cpu - start.backends.get(pid, 0.0) for pid, cpu in self.backends.items())


# ---- the hub's side ------------------------------------------------------------------------


async def seed(runtime: Runtime, jobs: int, interval: float, port: int) -> None:
    """A user, a Michigan service with its token in the vault, and `jobs` running jobs
    whose recorded state matches the server's answer, due evenly across one interval."""
    now = runtime.clock.now()
    user = await factories.make_user(runtime, email="bench@example.org")
    service = await factories.make_service(
        runtime,
        slug="michigan-bench",
        base_url=f"http://127.0.0.1:{port}",
        credential_encrypted=runtime.vault.encrypt(TOKEN),
        credential_verified=True,
        health_next_run_at=now + timedelta(days=1),  # no health checks during the run
    )
    panel = await factories.make_panel(runtime, service)
    heard = states.to_status(ANSWER)
    progress = rules.service_progress(heard.progress or 0.0)
    message = running_message(service.name)
    for first in range(0, jobs, 1000):
        async with runtime.db.session() as session:
            batch = [
                running_job(
                    user.id,
                    service.id,
                    panel.id,
                    name=f"bench job {n}",
                    now=now,
                    progress=progress,
                    build=panel.build,
                    population="mixed",
                    started_at=now,
                    submit_started_at=now,
                    external_job_id=f"job-bench-{n}",
                    credential_source=PLATFORM,
                    service_logs=list(heard.logs),
                    next_step=Step.POLL.value,
                    next_run_at=now + timedelta(seconds=interval * n / jobs),
                )
                for n in range(first, min(first + 1000, jobs))
            ]
            session.add_all(batch)
            await session.flush()
            session.add_all(
                JobStatusUpdate(
                    job_id=job.id,
                    status=JobStatus.RUNNING.value,
                    progress=progress,
                    message=message,
                    created_at=now,
                )
                for job in batch
            )


def wait_for_server(port: int, servers: list[subprocess.Popen[bytes]]) -> None:
    """Until the stand-in server accepts connections (its start-up imports take a while)."""
    deadline = time.monotonic() + 120
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline or any(s.poll() is not None for s in servers):
            raise SystemExit("the stand-in Michigan server did not start")
        time.sleep(0.1)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "imputehub", "worker"], env=env, stdout=out, stderr=out
    )
    deadline = time.monotonic() + 60
    while "worker started" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return process


# ---- the baseline --------------------------------------------------------------------------


async def baseline(port: int, requests: int, concurrency: int) -> tuple[float, float]:
    """Bare asyncio + httpx, one shared client: CPU seconds per request, requests/s."""
    url = f"http://127.0.0.1:{port}/api/v2/jobs/{BASELINE_PREFIX}{{}}/status"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue = iter(range(requests))
    async with httpx.AsyncClient(headers={"X-Auth-Token": TOKEN}, limits=limits) as client:

        async def one_by_one() -> None:
            for n in queue:
                response = await client.get(url.format(n))
                response.raise_for_status()
                response.json()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_by_one() for _ in range(concurrency)))
        return (time.process_time() - cpu) / requests, requests / (time.perf_counter() - wall)


# ---- figures -------------------------------------------------------------------------------


def read_polls(records: list[Path]) -> dict[str, list[float]]:
    polls: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for line in record.read_text().splitlines():
            job, at = line.split()
            if not job.startswith(BASELINE_PREFIX):
                polls[job].append(float(at))
    for times in polls.values():
        times.sort()
    return polls


def timeliness(
    polls: dict[str, list[float]], jobs: int, start: float, end: float, interval: float
) -> tuple[int, int, list[float], int]:
    """(polls in the window, on-time polls among them + open gaps, gaps, jobs always on time)."""
    limit = interval + LATE_AFTER
    gaps: list[float] = []
    late_open = 0
    steady = 0
    for n in range(jobs):
        times = polls.get(f"job-bench-{n}", [])
        before = [t for t in times if t < start]
        inside = [t for t in times if start <= t <= end]
        chain = before[-1:] + inside
        mine = [b - a for a, b in itertools.pairwise(chain)]
        gaps.extend(mine)
        last = chain[-1] if chain else start - interval
        is_late_open = end - last > limit
        late_open += is_late_open
        steady += bool(inside) and not is_late_open and all(g <= limit for g in mine)
    on_time = sum(g <= limit for g in gaps)
    return on_time, len(gaps) + late_open, gaps, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="running jobs to follow")
    parser.add_argument("--interval", type=float, default=30.0, help="poll interval (s)")
    parser.add_argument("--duration", type=float, default=120.0, help="worker run (s)")
    parser.add_argument("--database", default=DEFAULT_URL, help="a PostgreSQL server")
    parser.add_argument("--server-processes", type=int, default=1)
    parser.add_argument("--baseline-requests", type=int, default=5000)
    parser.add_argument("--baseline-concurrency", type=int, default=20)
    parser.add_argument(
        "--worker-env", action="append", default=[], help="KEY=VALUE for the worker, repeatable"
    )
    parser.add_argument("--worker-log", type=Path, help="keep the worker's log here")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server's process
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.record)
        return

    port = free_port()
    server_libpq = libpq(args.database)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        records = [folder / f"server-{n}.txt" for n in range(args.server_processes)]
        servers: list[subprocess.Popen[bytes]] = [
            subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port), "--record", str(record)]
            )
            for record in records
        ]
        worker: subprocess.Popen[bytes] | None = None
        with postgres_database(args.database) as url:
            name = str(make_url(url).database)
            try:
                upgrade(url)  # alembic runs its own event loop: before ours
                settings = Settings.from_environ(
                    {}, data_dir=folder, database_url=url, secret_key=SECRET_KEY
                )

                async def prepare() -> None:
                    runtime = build_runtime(settings, clock=SystemClock())
                    try:
                        await seed(runtime, args.jobs, args.interval, port)
                    finally:
                        await runtime.close()

                asyncio.run(prepare())
                wait_for_server(port, servers)
                env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
                env.update(
                    IMPUTEHUB_DATA_DIR=str(folder),
                    IMPUTEHUB_DATABASE_URL=url,
                    IMPUTEHUB_SECRET_KEY=SECRET_KEY,
                    IMPUTEHUB_POLL_INTERVAL_SECONDS=str(args.interval),
                    IMPUTEHUB_LOG_FORMAT="text",
                )
                env.update(item.split("=", 1) for item in args.worker_env)
                log = args.worker_log or folder / "worker.log"
                worker = start_worker(env, log)
                began = time.time()
                warmup = min(args.interval, args.duration / 3)
                time.sleep(warmup)
                first = Snapshot(server_libpq, name, worker.pid, [s.pid for s in servers])
                time.sleep(max(args.duration - warmup, 1.0))
                last = Snapshot(server_libpq, name, worker.pid, [s.pid for s in servers])
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=90)
                worker_errors = [
                    line
                    for line in log.read_text(errors="replace").splitlines()
                    if "ERROR" in line or "Traceback" in line
                ]
                per_request, base_rate = asyncio.run(
                    baseline(port, args.baseline_requests, args.baseline_concurrency)
                )
            finally:
                if worker is not None and worker.poll() is None:
                    worker.kill()
                for server in servers:
                    server.send_signal(signal.SIGTERM)
                for server in servers:
                    server.wait(timeout=60)
        polls = read_polls(records)

    window = last.at - first.at
    on_time, counted, gaps, steady = timeliness(polls, args.jobs, first.at, last.at, args.interval)
    in_window = sum(first.at <= t <= last.at for times in polls.values() for t in times)
    rate = in_window / window
    print(
        f"{args.jobs} running Michigan jobs, poll interval {args.interval:g} s, one worker "
        f"process, PostgreSQL; measured {window:.0f} s after {first.at - began:.0f} s warm-up"
    )
    print(f"  polls/s sustained        {rate:8.1f}   (due: {args.jobs / args.interval:.1f})")
    print(
        f"  on time (<= {args.interval + LATE_AFTER:g} s)       {on_time / max(counted, 1):8.1%}"
        f"   gaps p50 {statistics.median(gaps) if gaps else 0:.1f} s, "
        f"p95 {_quantile(gaps, 0.95):.1f} s, max {max(gaps, default=0):.1f} s"
    )
    print(
        f"  jobs held                {steady:8d}   of {args.jobs} polled on time throughout "
        f"(capacity at this rate: {rate * args.interval:.0f} jobs)"
    )
    polls_n = max(in_window, 1)
    print(
        f"  worker CPU per poll      {1000 * (last.worker - first.worker) / polls_n:8.2f} ms"
        f"   ({(last.worker - first.worker) / window:.0%} of a core)"
    )
    print(
        f"  database per poll        {1000 * last.backend_cpu_since(first) / polls_n:8.2f} ms "
        f"CPU of its PostgreSQL backends, "
        f"{(last.commits - first.commits) / polls_n:.2f} transactions"
    )
    print(
        f"  stand-in server CPU      {1000 * (last.server - first.server) / polls_n:8.2f} ms"
        f" per request ({(last.server - first.server) / window:.0%} of a core)"
    )
    print(
        f"  baseline: asyncio + httpx, one shared client, {args.baseline_concurrency} at once: "
        f"{1000 * per_request:.2f} ms CPU per request ({base_rate:.0f} requests/s)"
    )
    if worker_errors:
        print(f"  worker log: {len(worker_errors)} error lines, e.g. {worker_errors[0][:200]}")


def _quantile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


if __name__ == "__main__":
    main()
