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
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.peers import PEERS, binary, free_port, running_peer

PEER = PEERS / "sapporo"
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


def run_sapporo(directory: Path) -> Iterator[Sapporo]:
    """Start sapporo in `directory`, wait until /service-info answers, stop it afterwards."""
    run_dir = directory / "runs"
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = directory / "sapporo.log"
    port = free_port()
    hub_bin = Path(sys.executable).parent  # the hub's .venv/bin: `imputehub`
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(hub_bin), str(PEER / ".venv" / "bin"), os.environ["PATH"]]),
        # A cancelled run's engine gets this long to stop before it is killed.
        "SAPPORO_CANCEL_GRACE_SECONDS": "5",
    }
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(binary("sapporo", "sapporo")),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--run-dir", str(run_dir),
        "--run-sh", str(PEER / "run.sh"),
        "--url-prefix", PREFIX,
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}{PREFIX}"
    ready = f"{base_url}/service-info"
    with contextlib.ExitStack() as stack:
        stack.callback(_stop_runs, run_dir)  # after the server is gone (see _stop_runs)
        stack.enter_context(
            running_peer(
                "sapporo",
                command,
                cwd=directory,
                env=env,
                log_path=log_path,
                ready_url=ready,
                start_timeout=START_TIMEOUT,
                stop_timeout=STOP_TIMEOUT,
            )
        )
        yield Sapporo(base_url=base_url, run_dir=run_dir, log_path=log_path)


def _stop_runs(run_dir: Path) -> None:
    # Runs still going (run.sh keeps its engine in a process group of its own): stop them
    # the way sapporo itself would, by signalling their run.sh.
    for pid_file in run_dir.glob("*/*/run.pid"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


@pytest.fixture(scope="session", name="sapporo")
def sapporo_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sapporo]:
    yield from run_sapporo(tmp_path_factory.mktemp("sapporo"))
