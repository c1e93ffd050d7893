"""A second real GA4GH WES server for the tests: wes-service 5.0 (`wes-server`, cwl_runner
backend) running the sapporo peer's cwltool without containers.

wes-service lives in an environment of its own (tests/peers/wes_service, a separate uv
project that `make deps-test` syncs). It keeps its runs under `<cwd>/workflows` and stages
attachments in TMPDIR, so both point into the test's directory. Its quirks, which the
connector must tolerate: `"workflows"` instead of `"runs"` in listings (no tags there),
cancel is a no-op, an unknown run is HTTP 500, outputs are `file://` CWL Files only.
One server per test module on a free loopback port, stopped (with its runs) at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.sapporo import PEER as SAPPORO_PEER
from tests.support.sapporo import ROOT, _free_port, _log_tail

PEER = ROOT / "tests" / "peers" / "wes_service"
COPY_CWL = PEER / "copy.cwl"  # sleeps `sleep` seconds, then joins its inputs into one file
PREFIX = "/ga4gh/wes/v1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class WesService:
    base_url: str  # ends in /ga4gh/wes/v1
    directory: Path


def _binary(peer: Path, name: str) -> Path:
    binary = peer / ".venv" / "bin" / name
    if not binary.exists():
        raise RuntimeError(
            f"{binary} is missing: run `make deps-test` (it syncs the test peers with "
            f"`uv sync --frozen --project {peer.relative_to(ROOT)}`)"
        )
    return binary


def run_wes_service(directory: Path) -> Iterator[WesService]:
    """Start wes-server in `directory`, wait until it lists runs, stop it afterwards."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    log_path = directory / "wes-server.log"
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(directory / "tmp")}
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(_binary(PEER, "wes-server")),
        "--port", str(port),
        "--opt", f"runner={_binary(SAPPORO_PEER, 'cwltool')}",
        "--opt", "extra=--no-container",
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
                raise RuntimeError(f"wes-server exited at start:\n{_log_tail(log_path)}")
            try:
                # Not /service-info: wes-service runs `cwltool --version` for each one.
                if httpx.get(f"{base_url}/runs", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"wes-server did not answer in time:\n{_log_tail(log_path)}")
            time.sleep(0.2)
        yield WesService(base_url=base_url, directory=directory)
    finally:
        # The whole process group: the server and the cwltool runs it started.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
