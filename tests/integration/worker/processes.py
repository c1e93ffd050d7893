"""Real worker processes (`python -m tests.support.run_worker`) for crash and scale tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from imputehub.config import Settings
from tests.support.run_worker import LABEL_ENV, STATE_ENV

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class WorkerProcess:
    label: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as an operator stops a worker; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker {self.label} ignored SIGTERM:\n{self.output()}") from None


def start_worker(
    settings: Settings, state: Path, label: str, logs: Path, **overrides: object
) -> WorkerProcess:
    assert settings.secret_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
    values: dict[str, object] = {
        "database_url": settings.resolved_database_url,
        "data_dir": settings.data_dir,
        "secret_key": settings.secret_key.get_secret_value(),
        "worker_poll_interval": 0.05,
        "worker_lease_seconds": 2,
        "poll_interval_seconds": 0.05,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "log_level": "INFO",
        **overrides,
    }
    env.update({f"IMPUTEHUB_{k.upper()}": str(v) for k, v in values.items()})
    env[STATE_ENV] = str(state)
    env[LABEL_ENV] = label
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{label}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.run_worker"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(label=label, proc=proc, log=log)


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    workers: list[WorkerProcess],
    what: str,
    within: float = 30.0,
) -> None:
    """Poll `condition`; fail (with the workers' logs) on timeout or if a worker died."""
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        dead = [w for w in workers if w.proc.poll() is not None]
        if dead or asyncio.get_running_loop().time() > deadline:
            logs = "\n".join(f"--- {w.label}\n{w.output()}" for w in workers)
            reason = f"worker {dead[0].label} exited" if dead else "timed out"
            raise AssertionError(f"{reason} waiting for {what}\n{logs}")
        await asyncio.sleep(0.05)
