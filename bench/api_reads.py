"""Benchmark: job status reads from a real `imputehub api` next to a minimal FastAPI app.

In one run:

  hub       `imputehub api` (the same uvicorn start-up as `serve`, without the worker) on a
            fresh SQLite data dir holding one running job with input files; a logged-in
            caller reads GET /api/v1/jobs/{id}/progress and GET /api/v1/jobs/{id}.
  baseline  a minimal FastAPI + async SQLAlchemy app (aiosqlite) that reads one SQLite row
            per request, under the same uvicorn settings (httptools and uvloop when
            installed), in its own process.

Each is driven with N concurrent keep-alive connections by `wrk` when it is installed, else
by an asyncio + httpx load generator in its own process. Prints req/s, p50, p99 and the
hub's share of the baseline's req/s. A benchmark that prints figures, never a test:

    python bench/api_reads.py                       # 16 connections, 3 rounds of 10 s
    python bench/api_reads.py --seconds 3 --rounds 1 --connections 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from imputehub.db import migrate
from imputehub.db.models import Base, Job, JobInput, ReferencePanel, Service, StoredFile, User
from imputehub.domain.jobs import JobStatus, Step

PASSWORD = "benchmark password 0123"  # noqa: S105 - a throwaway local hub

BASELINE_APP = textwrap.dedent(
    """
    import sys

    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{sys.argv[1]}")
    sessions = async_sessionmaker(engine)
    app = FastAPI()


    @app.get("/item/{item_id}")
    async def item(item_id: str) -> dict:
        async with sessions() as session:
            row = (
                await session.execute(
                    text("SELECT id, status, progress, updated_at FROM jobs WHERE id = :id"),
                    {"id": item_id},
                )
            ).one()
        return dict(row._mapping)


    # Like `imputehub serve`: http="auto", loop="auto" (httptools, uvloop when installed).
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    ).run()
    """
)

LOADGEN = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import httpx

    url, token = sys.argv[1], sys.argv[2]
    connections, seconds = int(sys.argv[3]), float(sys.argv[4])
    headers = {"Authorization": f"Bearer {token}"} if token else {}


    async def one(client, until, latencies):
        while time.perf_counter() < until:
            start = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()


    async def main():
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            latencies = []
            start = time.perf_counter()
            until = start + seconds
            await asyncio.gather(*(one(client, until, latencies) for _ in range(connections)))
            elapsed = time.perf_counter() - start
        latencies.sort()
        print(json.dumps({
            "rps": len(latencies) / elapsed,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        }))


    asyncio.run(main())
    """
)


@dataclass(frozen=True)
class Figure:
    rps: float
    p50: float  # seconds
    p99: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare_hub_database(data_dir: Path) -> None:
    """The schema, stamped as migrated, so `imputehub api` accepts it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "imputehub.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(migrate.alembic_config(f"sqlite+aiosqlite:///{path}"), "head")


def seed_job(data_dir: Path, *, username: str, inputs: int) -> str:
    """A running job of `username` with `inputs` input files, as a worker leaves it after
    submission (not due: no worker would touch it). Returns its id."""
    now = datetime.now(UTC)
    engine = create_engine(f"sqlite:///{data_dir / 'imputehub.db'}")
    with Session(engine) as session, session.begin():
        user = session.query(User).filter_by(username=username).one()
        service = Service(
            name="Bench service",
            slug="bench",
            api_type="michigan",
            base_url="https://imputation.example.org",
            supported_builds=["hg19"],
            api_config={},
            is_active=True,
            health_status="healthy",
            created_at=now,
            updated_at=now,
        )
        session.add(service)
        session.flush()
        panel = ReferencePanel(
            service_id=service.id,
            slug="bench-panel",
            panel_id="apps@bench@1.0.0",
            display_name="Bench panel",
            build="hg19",
            populations=["mixed"],
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(panel)
        files = [
            StoredFile(
                user_id=user.id,
                kind="input",
                filename=f"study.chr{i + 1}.vcf.gz",
                storage_key=f"inputs/{uuid.uuid4().hex}",
                size=1000,
                sha256="0" * 64,
                created_at=now,
            )
            for i in range(inputs)
        ]
        session.add_all(files)
        session.flush()
        job = Job(
            user_id=user.id,
            service_id=service.id,
            reference_panel_id=panel.id,
            name="bench job",
            status=JobStatus.RUNNING.value,
            progress=42.0,
            build="hg19",
            phasing="eagle",
            population="mixed",
            mode="imputation",
            created_at=now,
            updated_at=now,
            submit_started_at=now,
            next_step=Step.POLL.value,
            next_run_at=now + timedelta(days=1),
            attempts=0,
            service_logs=["submitted"],
            error_log=[],
        )
        job.inputs = [JobInput(file_id=f.id, position=i) for i, f in enumerate(files)]
        session.add(job)
        session.flush()
        job_id = job.id
    engine.dispose()
    return job_id


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"a server exited early; see {log}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit(f"a server did not start; see {log}") from None
            time.sleep(0.1)


@contextmanager
def started(args: list[str], *, env: dict[str, str], log: Path, probe: str) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(probe, process, log)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def hub_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
    env.update(
        IMPUTEHUB_DATA_DIR=str(data_dir),
        IMPUTEHUB_ADMIN_USERNAME="admin",
        IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
        IMPUTEHUB_LOG_LEVEL="WARNING",
        IMPUTEHUB_ENGINE_BOOTSTRAP="false",
        # One caller at full speed is what the API rate limit exists to stop; measured here
        # is what a read costs, so the limit is off.
        IMPUTEHUB_RATE_LIMIT_API="0",
    )
    return env


def bootstrap_admin(data_dir: Path, log: Path) -> None:
    """`imputehub serve` once, briefly: it makes the first admin (then we stop it)."""
    port = free_port()
    cmd = [sys.executable, "-m", "imputehub", "serve", "--port", str(port)]
    with started(
        cmd, env=hub_env(data_dir), log=log, probe=f"http://127.0.0.1:{port}/api/v1/health"
    ):
        pass


_WRK_TIME = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def drive(url: str, token: str, *, connections: int, seconds: float) -> Figure:
    """`connections` keep-alive connections reading `url` for `seconds`."""
    if shutil.which("wrk"):
        cmd = ["wrk", "--latency", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s"]
        if token:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
        if "Non-2xx" in out:
            raise SystemExit(f"{url} answered errors:\n{out}")
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        times = {m[0]: float(m[1]) * _UNITS[m[2]] for m in _WRK_TIME.findall(out)}
        return Figure(rps=rps, p50=times["50"], p99=times["99"])
    args = [sys.executable, "-c", LOADGEN, url, token, str(connections), str(seconds)]
    result = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    return Figure(rps=result["rps"], p50=result["p50"], p99=result["p99"])


def median(runs: list[Figure]) -> Figure:
    """The run of median req/s."""
    return sorted(runs, key=lambda figure: figure.rps)[len(runs) // 2]


def show(what: str, figure: Figure, baseline: Figure | None = None) -> None:
    ratio = f"  {figure.rps / baseline.rps:.2f}x baseline" if baseline else ""
    print(
        f"{what:<34} {figure.rps:8.0f} req/s  p50 {figure.p50 * 1000:6.1f} ms  "
        f"p99 {figure.p99 * 1000:6.1f} ms{ratio}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=3, help="input files of the job")
    parser.add_argument("--dir", default=None, help="where the scratch data dir goes")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
    try:
        data_dir = work / "hub"
        prepare_hub_database(data_dir)
        bootstrap_admin(data_dir, work / "serve.log")
        job_id = seed_job(data_dir, username="admin", inputs=args.inputs)
        # The baseline reads the same row of a copy of the same database.
        baseline_db = work / "baseline.db"
        source = sqlite3.connect(data_dir / "imputehub.db")
        with sqlite3.connect(baseline_db) as target:
            source.backup(target)
        source.close()
        print(
            f"{args.connections} connections, {args.rounds} rounds of {args.seconds:g} s, "
            f"load from {'wrk' if shutil.which('wrk') else 'httpx'}; job with "
            f"{args.inputs} input files",
            flush=True,
        )
        baseline_port, hub_port = free_port(), free_port()
        baseline_base = f"http://127.0.0.1:{baseline_port}"
        base = f"http://127.0.0.1:{hub_port}"
        baseline_cmd = [sys.executable, "-c", BASELINE_APP, str(baseline_db), str(baseline_port)]
        hub_cmd = [sys.executable, "-m", "imputehub", "api", "--port", str(hub_port)]
        with (
            started(
                baseline_cmd,
                env=dict(os.environ),
                log=work / "baseline.log",
                probe=f"{baseline_base}/docs",
            ),
            started(
                hub_cmd, env=hub_env(data_dir), log=work / "api.log", probe=f"{base}/api/v1/health"
            ),
        ):
            login = httpx.post(
                f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
            )
            login.raise_for_status()
            token = login.json()["access_token"]
            targets = {
                "baseline: one row per request": (f"{baseline_base}/item/{job_id}", ""),
                "hub: GET /api/v1/jobs/{id}/progress": (
                    f"{base}/api/v1/jobs/{job_id}/progress",
                    token,
                ),
                "hub: GET /api/v1/jobs/{id}": (f"{base}/api/v1/jobs/{job_id}", token),
            }
            for url, bearer in targets.values():
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                httpx.get(url, headers=headers).raise_for_status()
                drive(url, bearer, connections=args.connections, seconds=1)  # warm
            # Rounds take turns, so that a machine busy for a while slows all alike; the
            # median round of each is shown.
            figures: dict[str, list[Figure]] = {what: [] for what in targets}
            for _ in range(args.rounds):
                for what, (url, bearer) in targets.items():
                    figures[what].append(
                        drive(url, bearer, connections=args.connections, seconds=args.seconds)
                    )
            baseline = median(figures["baseline: one row per request"])
            for what, runs in figures.items():
                show(what, median(runs), None if what.startswith("baseline") else baseline)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
