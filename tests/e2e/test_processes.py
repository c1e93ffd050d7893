"""The scaled-out shape: `db upgrade`, then separate `api` and `worker` processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import HubProcess, cli, hub_env
from tests.support import databases
from tests.support.peers import free_port

# One database: the processes' signals and start-up are what is tested here.
pytestmark = pytest.mark.parametrize(
    "empty_database_url", [databases.preferring_postgres()], indirect=True
)


def test_api_refuses_a_database_that_was_not_migrated(
    tmp_path: Path, empty_database_url: str
) -> None:
    port = free_port()
    env = hub_env(tmp_path, empty_database_url)
    with HubProcess(
        "api",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
        env=env,
        cwd=tmp_path,
        name="api",
    ) as api:
        assert api.wait_for_exit() == 1
    assert "run `imputehub db upgrade` first" in api.stderr
    assert "Traceback" not in api.stderr
    assert api.stdout == ""


def test_worker_registers_and_stops_on_sigterm_next_to_an_api(
    tmp_path: Path, empty_database_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = str(tmp_path / "data")
    env = hub_env(tmp_path, empty_database_url)

    upgraded = cli("db", "upgrade", "--data-dir", data_dir, env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "latest schema" in upgraded.stdout

    with (
        HubProcess(
            "api", "--port", str(port), "--data-dir", data_dir, env=env, cwd=tmp_path, name="api"
        ) as api,
        HubProcess(
            "worker", "--data-dir", data_dir, env=env, cwd=tmp_path, name="worker"
        ) as worker,
    ):
        health = api.wait_until_healthy(base)
        assert health["database"] == "ok"
        deadline = time.monotonic() + 90  # a hang guard on a loaded machine
        while health["workers"]["alive"] < 1:
            assert time.monotonic() < deadline, worker.describe()
            time.sleep(0.1)
            health = httpx.get(f"{base}/api/v1/health").json()
        assert health["status"] == "ok"

        assert worker.stop(signal.SIGTERM) == 0, worker.describe()
        assert "Traceback" not in worker.stderr
        # A worker that stopped cleanly takes its heartbeat with it.
        assert httpx.get(f"{base}/api/v1/health").json()["workers"]["alive"] == 0
        assert api.stop() == 0, api.describe()
