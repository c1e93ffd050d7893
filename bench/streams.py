"""Benchmark: what open live event streams (SSE) cost one API process.

Starts the real API (`imputehub api`, its own process) on a fresh database, opens 10, 100
and 1,000 server-sent event streams over loopback (half `/api/v1/events`, half a running
job's `/api/v1/jobs/{id}/events`, spread over `--users` users), and measures over a window
while they idle and while another process writes `--rate` events per second:

  CPU %        the API process's user + system time / wall time (/proc/<pid>/stat)
  queries/s    statements the API process sent to the database: counted inside it by a
               SQLAlchemy `before_cursor_execute` listener this script installs in a small
               wrapper around the CLI (same count on SQLite and PostgreSQL; src/ is unchanged)
  delivered    events received by all user streams / events they should have received

The baseline is the same measurement of the design before the shared reader (one poller
per stream), run from `--baseline-ref` (a commit, extracted with `git archive` into a
temporary directory; nothing in the repository changes), and an idle API process with no
stream. A benchmark that prints, never a test:

    python bench/streams.py                                     # SQLite, 10/100/1000
    python bench/streams.py --levels 10,100 --seconds 5 --baseline idle
    python bench/streams.py --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

# Run as `python bench/streams.py`: the helpers next to it are importable.
from _hub import (
    REPO,
    bench_panel,
    bench_service,
    free_port,
    hub_env,
    postgres_database,
    running_job,
    started,
)

from imputehub.accounts import api_tokens
from imputehub.clock import SystemClock
from imputehub.config import Settings
from imputehub.db.migrate import upgrade
from imputehub.db.models import Job, User
from imputehub.domain.jobs import JobStatus
from imputehub.notify import outbox
from imputehub.runtime import Runtime, build_runtime

# The last commit with one database poller per stream (before notify/event_feed.py).
PRE_CHANGE = "0513f89d8f160a468d91ec41ee00670f554ecfde"
SECRET = "s" * 40

# Runs the CLI with a statement counter: every statement the process sends is counted and
# the count written to a file a few times a second, for this script to read.
WRAPPER = r"""
import os, sys, threading, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
count = [0]
def counted(*args):
    count[0] += 1
event.listen(Engine, "before_cursor_execute", counted)
path = sys.argv[1]
def dump():
    while True:
        with open(path + ".tmp", "w") as out:
            out.write(str(count[0]))
        os.replace(path + ".tmp", path)
        time.sleep(0.05)
threading.Thread(target=dump, daemon=True).start()
import imputehub
print("imputehub from", os.path.dirname(imputehub.__file__), file=sys.stderr, flush=True)
from imputehub.cli.main import run
sys.exit(run(sys.argv[2:]))
"""


@dataclass
class Hub:
    process: subprocess.Popen[bytes]
    url: str
    counter: Path

    def queries(self) -> int:
        for _ in range(20):
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.counter.read_text())
            time.sleep(0.01)
        raise RuntimeError("the API process's statement counter is unreadable")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Seeded:
    tokens: list[str]  # one per user
    users: list[str]
    jobs: list[str]  # one running job per user


async def seed(runtime: Runtime, users: int) -> Seeded:
    now = runtime.clock.now()
    found = Seeded(tokens=[], users=[], jobs=[])
    async with runtime.db.session() as session:
        service = bench_service(now)
        session.add(service)
        await session.flush()
        panel = bench_panel(service.id, now)
        session.add(panel)
        await session.flush()
        for n in range(users):
            user = User(username=f"bench{n}", password_hash="!", created_at=now, updated_at=now)  # noqa: S106
            session.add(user)
            await session.flush()
            made = await api_tokens.create_token(session, user, name="bench", now=now)
            job = running_job(user.id, service.id, panel.id, name=f"job {n}", now=now)
            session.add(job)
            await session.flush()
            found.tokens.append(made.token)
            found.users.append(user.id)
            found.jobs.append(job.id)
    return found


async def write_events(runtime: Runtime, jobs: list[str], rate: float, stop: asyncio.Event) -> int:
    """Status changes with their events, `rate` a second, round-robin over the jobs."""
    written = 0
    statuses = (JobStatus.QUEUED, JobStatus.RUNNING)
    start = time.perf_counter()
    while not stop.is_set():
        job_id = jobs[written % len(jobs)]
        async with runtime.db.session() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            status = statuses[written % 2]
            job.status = status.value
            job.progress = float(written % 90)
            outbox.job_changed(session, job, status, now=runtime.clock.now(), message="")
        written += 1
        delay = start + written / rate - time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(delay, 0))
    return written


class Streams:
    """N open streams; counts the events (messages with an id) each user's streams got."""

    def __init__(self, url: str, seeded: Seeded, count: int) -> None:
        self.url = url
        self.seeded = seeded
        self.count = count
        self.opened = 0
        self.user_events = 0  # events received on /events streams
        self.tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(60.0, read=None)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=timeout) as http:
            for n in range(self.count):
                self.tasks.append(asyncio.create_task(self._one(http, n)))
            try:
                # All open, or the first that failed says why.
                ready = asyncio.create_task(self.ready.wait())
                async with asyncio.timeout(180):
                    await asyncio.wait([ready, *self.tasks], return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                for task in self.tasks:
                    if task.done() and task.exception() is not None:
                        raise RuntimeError("a stream failed") from task.exception()
                yield
            finally:
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _one(self, http: httpx.AsyncClient, n: int) -> None:
        who = n % len(self.seeded.tokens)
        headers = {"Authorization": f"Bearer {self.seeded.tokens[who]}"}
        on_job = n % 2 == 1
        path = f"/api/v1/jobs/{self.seeded.jobs[who]}/events" if on_job else "/api/v1/events"
        if on_job:
            headers["Last-Event-ID"] = str(10**15)  # no replay: only what is new
        async with http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(
                    f"stream refused: {response.status_code} {await response.aread()!r}"
                )
            self.opened += 1
            if self.opened == self.count:
                self.ready.set()
            async for line in response.aiter_lines():
                if line.startswith("id: ") and not on_job:
                    self.user_events += 1


@contextlib.contextmanager
def api_process(
    data_dir: Path, database_url: str, pythonpath: Path | None, log: Path
) -> Iterator[Hub]:
    port = free_port()
    counter = data_dir / f"queries-{port}"
    env = hub_env(
        data_dir,
        IMPUTEHUB_DATABASE_URL=database_url,
        IMPUTEHUB_SECRET_KEY=SECRET,
        IMPUTEHUB_MAX_STREAMS_PER_USER="100000",
        IMPUTEHUB_RATE_LIMIT_API="0",  # 1,000 opens from one address within seconds
    )
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", WRAPPER, str(counter), "api", "--host", "127.0.0.1"]
    cmd += ["--port", str(port)]
    with started(cmd, env=env, log=log, probe=f"{url}/api/v1/health") as process:
        yield Hub(process=process, url=url, counter=counter)


@dataclass
class Figures:
    cpu: float
    queries: float
    delivered: str = ""


async def window(hub: Hub, seconds: float) -> Figures:
    cpu, queries, start = hub.cpu_seconds(), hub.queries(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - start
    return Figures(
        cpu=100 * (hub.cpu_seconds() - cpu) / wall, queries=(hub.queries() - queries) / wall
    )


async def measure_level(
    hub: Hub, runtime: Runtime, seeded: Seeded, count: int, args: argparse.Namespace
) -> tuple[Figures, Figures]:
    streams = Streams(hub.url, seeded, count)
    async with streams.open():
        await asyncio.sleep(args.settle)
        idle = await window(hub, args.seconds)
        stop = asyncio.Event()
        before = streams.user_events
        writer = asyncio.create_task(write_events(runtime, seeded.jobs, args.rate, stop))
        busy = await window(hub, args.seconds)
        stop.set()
        written = await writer
        # Each event goes to every /events stream of its user.
        user_streams = [n for n in range(count) if n % 2 == 0]
        per_user = [
            sum(1 for n in user_streams if n % len(seeded.tokens) == u)
            for u in range(len(seeded.tokens))
        ]
        expected = sum(per_user[i % len(seeded.tokens)] for i in range(written))
        # The last events reach the clients: wait while the count still grows.
        seen, still = -1, 0
        while streams.user_events - before < expected and still < 3:
            still = still + 1 if streams.user_events == seen else 0
            seen = streams.user_events
            await asyncio.sleep(1)
        busy.delivered = f"{streams.user_events - before}/{expected}"
    return idle, busy


async def run_design(
    name: str, pythonpath: Path | None, database_url: str, args: argparse.Namespace, tmp: Path
) -> dict[int, tuple[Figures, Figures]]:
    data_dir = tmp / name.replace(" ", "-")
    data_dir.mkdir()
    settings = Settings.from_environ(
        {}, data_dir=data_dir, database_url=database_url, secret_key=SECRET
    )
    # Alembic runs its own event loop: in a thread, outside this one.
    await asyncio.to_thread(upgrade, settings.resolved_database_url)
    runtime = build_runtime(settings, clock=SystemClock())
    results: dict[int, tuple[Figures, Figures]] = {}
    try:
        seeded = await seed(runtime, args.users)
        with api_process(data_dir, database_url, pythonpath, tmp / "api.log") as hub:
            if name == "idle API":
                await asyncio.sleep(args.settle)
                results[0] = (await window(hub, args.seconds), Figures(cpu=0, queries=0))
                return results
            for count in args.levels:
                results[count] = await measure_level(hub, runtime, seeded, count, args)
                print(f"  {name}: {count} streams done", file=sys.stderr, flush=True)
    finally:
        await runtime.close()
    return results


def extract(ref: str, into: Path) -> Path:
    """The `src/` of commit `ref`, read with `git archive` (the repository is unchanged)."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "baseline", filter="data")
    return into / "baseline" / "src"


@contextlib.contextmanager
def database(url: str | None, tmp: Path) -> Iterator[Iterator[str]]:
    """A fresh database per design: SQLite files in `tmp`, or new PostgreSQL databases."""
    with contextlib.ExitStack() as made:

        def fresh() -> Iterator[str]:
            n = 0
            while True:
                n += 1
                if url is None:
                    yield f"sqlite+aiosqlite:///{tmp}/hub{n}.db"
                else:
                    yield made.enter_context(postgres_database(url))

        yield fresh()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        designs: list[tuple[str, Path | None]] = [("shared reader", None)]
        if args.baseline != "idle":
            designs.append(("per-stream poll", extract(args.baseline, tmp)))
        designs.append(("idle API", None))
        found: dict[str, dict[int, tuple[Figures, Figures]]] = {}
        with database(args.database, tmp) as urls:
            for name, path in designs:
                found[name] = await run_design(name, path, next(urls), args, tmp)
    idle = found.pop("idle API")[0][0]
    print(
        f"\nSSE streams on one API process ({'PostgreSQL' if args.database else 'SQLite'}), "
        f"{args.users} users, windows of {args.seconds:g} s, busy = {args.rate:g} events/s"
    )
    print(f"idle API process, no stream: CPU {idle.cpu:.1f} %, {idle.queries:.1f} queries/s")
    head = f"{'design':<16} {'streams':>7} {'idle CPU %':>10} {'idle q/s':>9} "
    print(head + f"{'busy CPU %':>10} {'busy q/s':>9} {'delivered':>13}")
    for name, levels in found.items():
        for count, (quiet, busy) in levels.items():
            print(
                f"{name:<16} {count:>7} {quiet.cpu:>10.1f} {quiet.queries:>9.1f} "
                f"{busy.cpu:>10.1f} {busy.queries:>9.1f} {busy.delivered:>13}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="10,100,1000", help="stream counts, comma-separated")
    parser.add_argument("--users", type=int, default=10, help="users the streams belong to")
    parser.add_argument("--seconds", type=float, default=8.0, help="each measuring window")
    parser.add_argument("--settle", type=float, default=5.0, help="pause after opening")
    parser.add_argument("--rate", type=float, default=20.0, help="events written a second")
    parser.add_argument("--database", default=None, help="PostgreSQL server URL (else SQLite)")
    parser.add_argument(
        "--baseline", default=PRE_CHANGE, help="commit of the per-stream design, or 'idle'"
    )
    args = parser.parse_args()
    args.levels = [int(n) for n in args.levels.split(",")]
    # Two descriptors a stream at most (client and server are separate processes).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * max(args.levels) + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
