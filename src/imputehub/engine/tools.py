"""The command-line tools the local engine runs: finding them, and running Beagle.

Beagle 5.4 (a Java jar), bcftools, tabix and bgzip all come from Debian packages; a missing
one makes the engine unhealthy with a message that names what to install. Beagle runs in a
process group of its own, so a cancel (or a Beagle hung after an exception) kills it whole.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imputehub.domain.errors import ImputehubError, PermanentServiceError

DEFAULT_BEAGLE_JAR = Path("/usr/share/beagle/beagle.jar")

# Beagle 5.4's defaults (window=40 cM, overlap=2 cM; 1 cM = 1 Mb without a map) and the
# iteration lines it prints per window (burn-in + phasing), for estimating progress.
_WINDOW_MB = 40.0
_OVERLAP_MB = 2.0
_STEPS_PER_WINDOW = 16
_WINDOW_LINE = re.compile(r"^Window (\d+) \[")
_MAX_ERROR_LINES = 40


# Which Debian package provides each tool (the beagle package also brings a Java runtime).
_PACKAGES = {
    "java": "default-jre-headless",
    "beagle.jar": "beagle",
    "bcftools": "bcftools",
    "tabix": "tabix",
    "bgzip": "tabix",
}


@dataclass(frozen=True, kw_only=True)
class Tools:
    """Absolute paths of the programs the pipeline runs."""

    java: str
    beagle_jar: Path
    bcftools: str
    tabix: str
    bgzip: str


@dataclass(frozen=True, kw_only=True)
class ToolCheck:
    """The outcome of `check_tools`: `tools` is set exactly when everything was found."""

    healthy: bool
    message: str
    missing: tuple[str, ...]
    tools: Tools | None


def _which(name: str) -> str | None:
    return shutil.which(name)


def check_tools(
    *,
    beagle_jar: Path | str = DEFAULT_BEAGLE_JAR,
    java: str = "java",
    bcftools: str = "bcftools",
    tabix: str = "tabix",
    bgzip: str = "bgzip",
) -> ToolCheck:
    """Find every tool; names may be bare (looked up on PATH) or absolute paths."""
    found: dict[str, str | None] = {
        "java": _which(java),
        "bcftools": _which(bcftools),
        "tabix": _which(tabix),
        "bgzip": _which(bgzip),
    }
    jar = Path(beagle_jar)
    found["beagle.jar"] = str(jar) if jar.is_file() else None
    missing = tuple(name for name, path in found.items() if path is None)
    if missing:
        packages = sorted({_PACKAGES[name] for name in missing})
        where = f" (looked for the Beagle jar at {jar})" if "beagle.jar" in missing else ""
        message = (
            f"the local imputation engine is missing {', '.join(missing)}{where}; "
            f"install the Debian packages: apt-get install {' '.join(packages)}"
        )
        return ToolCheck(healthy=False, message=message, missing=missing, tools=None)
    tools = Tools(
        java=str(found["java"]),
        beagle_jar=jar,
        bcftools=str(found["bcftools"]),
        tabix=str(found["tabix"]),
        bgzip=str(found["bgzip"]),
    )
    return ToolCheck(healthy=True, message="all tools found", missing=(), tools=tools)


class CancelSignal(Protocol):
    """A threading.Event or multiprocessing.Event."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class PipelineError(PermanentServiceError):
    """The pipeline could not run this job; the message says why in plain words."""

    code = "pipeline_failed"


class PipelineCancelled(ImputehubError):
    """The run was stopped on request; its partial outputs are gone."""

    code = "cancelled"


def beagle_windows(span_bp: int) -> int:
    """How many windows Beagle will use for a chromosome spanning `span_bp` (estimate)."""
    span_mb = span_bp / 1_000_000
    return max(1, math.ceil((span_mb - _OVERLAP_MB) / (_WINDOW_MB - _OVERLAP_MB)))


class BeagleProgress:
    """Turns Beagle's log lines into a fraction 0..1 of one run."""

    def __init__(self, windows: int) -> None:
        self.windows = max(1, windows)
        self._window = 0
        self._steps = 0

    def feed(self, line: str) -> float | None:
        """The new fraction if `line` moved it, else None."""
        match = _WINDOW_LINE.match(line)
        if match:
            self._window = int(match.group(1))
            self.windows = max(self.windows, self._window)
            self._steps = 0
        elif "iteration" in line or line.startswith("Imputation time"):
            self._steps = min(self._steps + 1, _STEPS_PER_WINDOW - 1)
        else:
            return None
        done = max(0, self._window - 1) + self._steps / _STEPS_PER_WINDOW
        return min(done / self.windows, 0.99)


def run_beagle(
    args: list[str],
    *,
    cwd: Path,
    chrom: str,
    on_line: Callable[[str], None],
    cancel: CancelSignal | None = None,
    kill_grace: float = 5.0,
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Run Beagle in its own process group, feeding `on_line` each line of its log.

    Raises PipelineCancelled once `cancel` is set (the group is killed first) and
    PipelineError with a plain message when Beagle fails.
    """

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    if cancelled():
        raise PipelineCancelled("the run was cancelled")
    errors: list[str] = []
    failed = threading.Event()  # Beagle can hang after an exception: kill it then
    with subprocess.Popen(  # noqa: S603
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,  # its own process group, killed as a whole
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr = proc.stderr
        if on_start is not None:
            on_start(proc.pid)  # its process group id too (a session of its own)

        def read_errors() -> None:
            for line in stderr:
                if len(errors) < _MAX_ERROR_LINES:
                    errors.append(line.rstrip())
                if "Exception" in line or line.startswith("ERROR"):
                    failed.set()

        def watch() -> None:
            while proc.poll() is None:
                if cancelled() or failed.is_set():
                    kill_group(proc, kill_grace)
                    return
                failed.wait(0.05)

        helpers = [threading.Thread(target=read_errors), threading.Thread(target=watch)]
        for helper in helpers:
            helper.start()
        try:
            for line in proc.stdout:
                on_line(line)
        finally:
            # Whatever stopped the reading (cancel, error, a failing callback): no orphan.
            if proc.poll() is None:
                kill_group(proc, kill_grace)
            for helper in helpers:
                helper.join()
    if cancelled():
        raise PipelineCancelled("the run was cancelled")
    if failed.is_set() or proc.returncode != 0:
        raise PipelineError(beagle_message(chrom, errors, proc.returncode))


def kill_group(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM to the whole group, SIGKILL if it has not gone after the grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait()


def beagle_message(chrom: str, errors: list[str], code: int | None) -> str:
    text = " ".join(errors)
    if "no reference markers" in text or "No VCF records found" in text:
        return (
            f"Beagle found no reference markers for chromosome '{chrom}': the chromosome names "
            "of the input and the panel differ (e.g. 'chr20' and '20') or the positions do not "
            "overlap the panel"
        )
    if "OutOfMemoryError" in text:
        return "Beagle ran out of memory; raise the engine's Java heap size"
    detail = next((line for line in errors if line.strip()), f"exit code {code}")
    return f"Beagle failed on chromosome '{chrom}': {detail}"
