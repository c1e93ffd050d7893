"""One local run's directory: what it was asked to do, how far it got, who runs it.

    <engine_dir>/runs/<job_id>/
        spec.json     the job: inputs, panel, mode, heap, threads, tools (written at submit)
        inputs/<n>/<name>.vcf.gz   the staged input files
        state.json    state, step, progress, step messages, heartbeat, runner pid/host
        cancel        present once a cancel was asked for (the runner watches for it)
        lock          the runner holds an exclusive flock on it while it runs
        runner.log    the runner's own stdout/stderr (for operators)
        work/results  the pipeline's outputs, fetched into the hub's storage when done

Every JSON file is replaced atomically (write, then rename), so a reader never sees half a
file. A run directory appears under its final name only once staging finished.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

FINAL_STATES = ("completed", "failed", "cancelled")
MAX_LOG_LINES = 200


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    inputs: tuple[str, ...]  # paths relative to the run directory
    panel_vcf: str
    panel_name: str
    chrom_style: str  # "chr" | "plain"
    mode: str  # imputation | qc_only
    heap_mb: int
    threads: int
    java: str
    beagle_jar: str
    r2_filter: float | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return json.dumps(data, indent=2)

    def panel_file(self, run_dir: Path) -> Path:
        """The panel to impute from, whatever directory the runner was started in.

        Earlier versions could record the panel relative to the hub's start directory
        (`var/engine/panels/<id>/panel.vcf.gz`); such a run, staged and then adopted after
        an upgrade, finds its panel in the engine directory it lives in
        (`<engine_dir>/runs/<job>` → `<engine_dir>/panels/<id>/panel.vcf.gz`).
        """
        path = Path(self.panel_vcf)
        if path.is_absolute():
            return path
        if len(path.parts) >= 3 and path.parts[-3] == "panels":
            return run_dir.parent.parent.joinpath(*path.parts[-3:])
        return run_dir.parent.parent / path

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["inputs"] = tuple(data["inputs"])
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class RunState:
    state: str = "queued"  # queued | running | completed | failed | cancelled
    step: str = ""
    progress: float = 0.0  # 0-100 over the whole run
    message: str | None = None  # why it failed
    logs: tuple[str, ...] = ()
    heartbeat_at: float = 0.0  # time.time() of the runner's last sign of life
    restarts: int = 0
    host: str = ""
    pid: int | None = None
    pid_started: str | None = None  # /proc start time, so a reused pid is not mistaken
    beagle_pgid: int | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def log(self, line: str) -> RunState:
        return replace(self, logs=(*self.logs, line)[-MAX_LOG_LINES:])

    def to_json(self) -> str:
        data = asdict(self)
        data["logs"] = list(self.logs)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunState:
        data: dict[str, Any] = json.loads(text)
        data["logs"] = tuple(data.get("logs") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.json"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def cancel_file(self) -> Path:
        return self.path / "cancel"

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    @property
    def log_file(self) -> Path:
        return self.path / "runner.log"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def results(self) -> Path:
        return self.work / "results"

    def exists(self) -> bool:
        return self.spec_file.is_file()

    def spec(self) -> RunSpec:
        return RunSpec.from_json(self.spec_file.read_text(encoding="utf-8"))

    def state(self) -> RunState:
        try:
            return RunState.from_json(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return RunState()

    def write_state(self, state: RunState) -> None:
        write_atomic(self.state_file, state.to_json())

    def cancel_requested(self) -> bool:
        return self.cancel_file.exists()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def hostname() -> str:
    return socket.gethostname()


def process_started(pid: int) -> str | None:
    """The start time of process `pid` (Linux /proc), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses).
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped: gone for our purposes
        return None
    return fields[19]


def runner_alive(state: RunState) -> bool | None:
    """Whether the run's process lives: None when it runs on another machine."""
    if state.pid is None:
        return False
    if state.host != hostname():
        return None
    started = process_started(state.pid)
    return started is not None and started == state.pid_started
