"""A real GA4GH WES server for the tests: sapporo 2.4.0 running cwltool without containers.

sapporo and cwltool live in an environment of their own (tests/peers/sapporo, a separate uv
project that `make deps-test` syncs), so their dependencies never touch the hub's. The run
script there is sapporo's own with `run_cwltool` calling `cwltool --no-container`; PATH puts
the hub's `.venv/bin` first so the shipped workflow finds the `imputehub` command.
One server per test session on a free loopback port, stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "peers" / "sapporo"
PREFIX = "/ga4gh/wes/v1"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Sapporo:
    base_url: str  # ends in /ga4gh/wes/v1
    run_dir: Path
    log_path: Path

    def run_path(self, run_id: str) -> Path:
        """Where sapporo keeps a run's files (state.txt, outputs/, stderr.log ...)."""
        return self.run_dir / run_id[:2] / run_id


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _binary() -> Path:
    binary = PEER / ".venv" / "bin" / "sapporo"
    if not binary.exists():
        raise RuntimeError(
            f"{binary} is missing: run `make deps-test` (it syncs the sapporo test peer with "
            "`uv sync --frozen --project tests/peers/sapporo`)"
        )
    return binary


def run_sapporo(directory: Path) -> Iterator[Sapporo]:
    """Start sapporo in `directory`, wait until /service-info answers, stop it afterwards."""
    run_dir = directory / "runs"
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = directory / "sapporo.log"
    port = _free_port()
    hub_bin = Path(sys.executable).parent  # the hub's .venv/bin: `imputehub`
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(hub_bin), str(PEER / ".venv" / "bin"), os.environ["PATH"]]),
        # A cancelled run's engine gets this long to stop before it is killed.
        "SAPPORO_CANCEL_GRACE_SECONDS": "5",
    }
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(_binary()),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--run-dir", str(run_dir),
        "--run-sh", str(PEER / "run.sh"),
        "--url-prefix", PREFIX,
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}{PREFIX}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sapporo exited at start:\n{_log_tail(log_path)}")
            try:
                if httpx.get(f"{base_url}/service-info", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sapporo did not answer in time:\n{_log_tail(log_path)}")
            time.sleep(0.2)
        yield Sapporo(base_url=base_url, run_dir=run_dir, log_path=log_path)
    finally:
        # The whole process group: the server and any run.sh / cwltool it started.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
        # Runs still going (run.sh keeps its engine in a process group of its own): stop them
        # the way sapporo itself would, by signalling their run.sh.
        for pid_file in run_dir.glob("*/*/run.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


@pytest.fixture(scope="session", name="sapporo")
def sapporo_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sapporo]:
    yield from run_sapporo(tmp_path_factory.mktemp("sapporo"))
