"""Helpers for the benchmarks that start and seed a throwaway hub.

The scripts run as `python bench/<name>.py` from the repository root, so this folder is on
`sys.path` and they `import _hub`. What is here:

  databases   `prepare_database` (the schema from the models, stamped as migrated, so the
              hub's start-up check accepts it), `prepare_hub_database` (the same in a
              SQLite data dir), `postgres_database` (a new PostgreSQL database, dropped
              afterwards) and `libpq` (a SQLAlchemy URL as psycopg takes it)
  processes   `free_port`, `hub_env` (a hub's environment: a data dir, an admin, nothing
              inherited from this shell's IMPUTEHUB_*), `started` (a server process, waited
              for and stopped), `bootstrap_admin`, `login`
  rows        `bench_service`, `bench_panel` and `running_job`: a Michigan service that is
              never called, its panel, and a running job, for a sync or async session

Importing it also puts the repository root on `sys.path`, so a benchmark can use the tests'
row factories and VCF makers (`tests.support`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from sqlalchemy import create_engine

from imputehub.db import migrate
from imputehub.db.models import Base, Job, ReferencePanel, Service
from imputehub.domain.jobs import JobStatus

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The tests' own helpers, importable now that the repository root is on sys.path.
from tests.support.databases import empty_postgres, libpq  # noqa: E402, F401 - libpq: re-exported
from tests.support.peers import free_port  # noqa: E402 - re-exported

PASSWORD = "benchmark password 0123"  # noqa: S105 - a throwaway local hub


# ---- databases ---------------------------------------------------------------------------


def prepare_database(url: str) -> None:
    """The schema built from the models and stamped as migrated (`serve` and `api` check
    it), whether or not the newest tables have their migration yet. `url` is the hub's
    (async driver) URL."""
    engine = create_engine(url.replace("+aiosqlite", ""))
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(migrate.alembic_config(url), "head")


def prepare_hub_database(data_dir: Path) -> None:
    """`prepare_database` for the SQLite database of data dir `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    prepare_database(f"sqlite+aiosqlite:///{data_dir / 'imputehub.db'}")


def postgres_database(server: str) -> contextlib.AbstractContextManager[str]:
    """A new, empty database on the PostgreSQL server of URL `server`: its URL. Dropped
    afterwards, open connections and all."""
    return empty_postgres("imputehub_bench", server=server)


# ---- processes ---------------------------------------------------------------------------


def hub_env(data_dir: Path, **more: str) -> dict[str, str]:
    """The environment of a hub process on `data_dir`, with `more` (IMPUTEHUB_* names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
    env.update(
        IMPUTEHUB_DATA_DIR=str(data_dir),
        IMPUTEHUB_ADMIN_USERNAME="admin",
        IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
        IMPUTEHUB_LOG_LEVEL="WARNING",
        # No demo panel simulation competing for the CPU while something is timed.
        IMPUTEHUB_ENGINE_BOOTSTRAP="false",
    )
    env.update(more)
    return env


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until `url` answers at all (any status), or the process ends or a minute passes."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            # The log goes with the benchmark's scratch dir: its end is shown here.
            raise SystemExit(f"a server exited early ({log}):\n{_tail(log)}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit(f"a server did not start ({log}):\n{_tail(log)}") from None
            time.sleep(0.1)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@contextmanager
def started(
    args: list[str], *, env: dict[str, str], log: Path, probe: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The process of `args`, its output in `log`, once `probe` answers; stopped with
    SIGINT (a clean uvicorn shutdown) afterwards, killed if it takes over 30 s."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(probe, process, log)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bootstrap_admin(data_dir: Path, log: Path) -> None:
    """`imputehub serve` once, briefly: it makes the first admin (then we stop it)."""
    port = free_port()
    cmd = [sys.executable, "-m", "imputehub", "serve", "--port", str(port)]
    with started(
        cmd, env=hub_env(data_dir), log=log, probe=f"http://127.0.0.1:{port}/api/v1/health"
    ):
        pass


def login(base: str) -> str:
    """The admin's access token from the hub at `base` (http://host:port)."""
    answer = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


# ---- rows ----------------------------------------------------------------------------------


def bench_service(now: datetime) -> Service:
    """A healthy Michigan service; nothing calls it (no worker runs, or its jobs are not due)."""
    return Service(
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


def bench_panel(service_id: str, now: datetime) -> ReferencePanel:
    """The hg19 panel of `bench_service` (flushed first, for its id)."""
    return ReferencePanel(
        service_id=service_id,
        slug="bench-panel",
        panel_id="apps@bench@1.0.0",
        display_name="Bench panel",
        build="hg19",
        populations=["mixed"],
        is_active=True,
        created_at=now,
        updated_at=now,
    )


def running_job(
    user_id: str, service_id: str, panel_id: str, *, name: str, now: datetime, **fields: Any
) -> Job:
    """A running hg19 imputation job, with `fields` (Job columns) added or replaced."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "service_id": service_id,
        "reference_panel_id": panel_id,
        "name": name,
        "status": JobStatus.RUNNING.value,
        "build": "hg19",
        "phasing": "eagle",
        "mode": "imputation",
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    return Job(**values)
