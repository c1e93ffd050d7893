"""Running the real `imputehub` command in subprocesses, the way an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

# Generous: these bound how long a broken start or stop takes to fail, on a loaded 2-core
# machine running the suite in parallel; a healthy hub answers in a second or two.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


def hub_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a hub process: ours, minus every IMPUTEHUB_* setting we did not set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
    env.update(
        IMPUTEHUB_DATABASE_URL=database_url,
        IMPUTEHUB_CLIENT_CONFIG_DIR=str(home / "client-config"),
        IMPUTEHUB_WORKER_POLL_INTERVAL="0.1",
        IMPUTEHUB_HEALTH_CHECK_TIMEOUT_SECONDS="2",
        IMPUTEHUB_ACCESS_TOKEN_TTL_SECONDS="600",
    )
    env.update(extra)
    return env


def local_engine_env(
    home: Path, database_url: str, admin_password: str, **extra: str
) -> dict[str, str]:
    """A first `serve` that runs real local-engine jobs quickly and lightly: data under
    home/data, a known admin password, the engine looked at often, one Beagle thread."""
    return hub_env(
        home,
        database_url,
        IMPUTEHUB_DATA_DIR=str(home / "data"),
        IMPUTEHUB_ADMIN_PASSWORD=admin_password,
        IMPUTEHUB_ENGINE_POLL_INTERVAL_SECONDS="0.5",
        IMPUTEHUB_ENGINE_HEAP_MB="1024",
        IMPUTEHUB_ENGINE_THREADS="1",
        **extra,
    )


def cli(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m imputehub ARGS`, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "imputehub", *args],
        env=env,
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Cli:
    """The command line of one user on one machine (environment and working dir)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run a command that must succeed; its stdout."""
        done = cli(*args, env=self.env, cwd=self.cwd, stdin=stdin)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command whatever its outcome (e.g. one that waits for a job)."""
        return cli(*args, env=self.env, cwd=self.cwd, timeout=timeout)

    def fails(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command that must exit with status 1, without a traceback."""
        done = cli(*args, env=self.env, cwd=self.cwd, stdin=stdin)
        assert done.returncode == 1, f"{args}: {done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done


class HubProcess:
    """A long-running `imputehub serve|api|worker`, its output captured in files."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path, name: str) -> None:
        self.args = args
        self.env = env
        self.cwd = cwd
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[Any]] = []

    def __enter__(self) -> HubProcess:
        out = self.stdout_path.open("wb")
        err = self.stderr_path.open("wb")
        self._files = [out, err]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imputehub", *self.args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def wait_until_healthy(self, base_url: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Poll /api/v1/health until it answers; fail early if the process died."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"hub exited with {self.process.returncode} before it answered\n"
                    + self.describe()
                )
            try:
                response = httpx.get(f"{base_url}/api/v1/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            body: dict[str, Any] = response.json()
            return body
        raise AssertionError(f"hub did not answer within {timeout} s\n" + self.describe())

    def wait_for_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT) -> int | None:
        """Ask the process to stop; kill it if it does not. Its exit status."""
        if self.process is None:
            return None
        try:
            if self.process.poll() is None:
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            return self.process.returncode
        finally:
            for handle in self._files:
                handle.close()
            self._files = []
