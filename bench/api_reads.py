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
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

# Run as `python bench/api_reads.py`: the helpers next to it are importable.
from _hub import (
    bench_panel,
    bench_service,
    bootstrap_admin,
    free_port,
    hub_env,
    login,
    prepare_hub_database,
    running_job,
    started,
)
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from imputehub.db.models import JobInput, StoredFile, User
from imputehub.domain.jobs import Step

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


def seed_job(data_dir: Path, *, username: str, inputs: int) -> str:
    """A running job of `username` with `inputs` input files, as a worker leaves it after
    submission (not due: no worker would touch it). Returns its id."""
    now = datetime.now(UTC)
    engine = create_engine(f"sqlite:///{data_dir / 'imputehub.db'}")
    with Session(engine) as session, session.begin():
        user = session.query(User).filter_by(username=username).one()
        service = bench_service(now)
        session.add(service)
        session.flush()
        panel = bench_panel(service.id, now)
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
        job = running_job(
            user.id,
            service.id,
            panel.id,
            name="bench job",
            now=now,
            progress=42.0,
            population="mixed",
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


# One caller at full speed is what the API rate limit exists to stop; measured here is what
# a read costs, so the limit is off.
NO_RATE_LIMIT = {"IMPUTEHUB_RATE_LIMIT_API": "0"}


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
                hub_cmd,
                env=hub_env(data_dir, **NO_RATE_LIMIT),
                log=work / "api.log",
                probe=f"{base}/api/v1/health",
            ),
        ):
            token = login(base)
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
