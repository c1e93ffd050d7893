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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.peers import PEERS, binary, free_port, running_peer

PEER = PEERS / "wes_service"
COPY_CWL = PEER / "copy.cwl"  # sleeps `sleep` seconds, then joins its inputs into one file
PREFIX = "/ga4gh/wes/v1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class WesService:
    base_url: str  # ends in /ga4gh/wes/v1
    directory: Path


def run_wes_service(directory: Path) -> Iterator[WesService]:
    """Start wes-server in `directory`, wait until it lists runs, stop it afterwards."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    log_path = directory / "wes-server.log"
    port = free_port()
    env = {**os.environ, "TMPDIR": str(directory / "tmp")}
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(binary("wes_service", "wes-server")),
        "--port", str(port),
        "--opt", f"runner={binary('sapporo', 'cwltool')}",
        "--opt", "extra=--no-container",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}{PREFIX}"
    with running_peer(
        "wes-server",
        command,
        cwd=directory,
        env=env,
        log_path=log_path,
        # Not /service-info: wes-service runs `cwltool --version` for each one.
        ready_url=f"{base_url}/runs",
        start_timeout=START_TIMEOUT,
        stop_timeout=STOP_TIMEOUT,
    ):
        yield WesService(base_url=base_url, directory=directory)
