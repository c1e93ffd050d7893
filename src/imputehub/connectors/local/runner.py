"""The process that runs one local job: `python -m imputehub.connectors.local.runner RUN_DIR`.

It outlives the worker step that started it (a pipeline runs for minutes to hours, a step
for seconds): it detaches (`launch.py`, or `--detach`: fork, the parent returns at once;
its exit is how the worker learns at once that the run ended, `watch.py`), holds an
exclusive lock on the run directory so that two runners never share one, and is the only
writer of `state.json` while it lives — step, progress, step messages and a heartbeat every
few seconds. The worker's poll reads that file; a heartbeat gone stale means the runner died
(machine reboot, OOM killer) and the poll restarts the run from its staged inputs.

Cancel: SIGTERM, or the `cancel` file (which also works from another machine sharing the
engine directory); the pipeline then kills Beagle's process group and removes its partial
outputs before the runner records `cancelled`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from imputehub.connectors.local.runs import RunDir, RunSpec, hostname, process_started
from imputehub.engine.pipeline import (
    IMPUTATION,
    QUALITY_CONTROL,
    SUMMARY,
    VALIDATION,
    ChromStyle,
    Mode,
    run_pipeline,
)
from imputehub.engine.tools import PipelineCancelled, PipelineError, check_tools

HEARTBEAT_SECONDS = 2.0

# Each step's share of the run's 0-100 progress (Beagle dominates the time).
BANDS: dict[str, dict[str, tuple[float, float]]] = {
    "imputation": {
        VALIDATION: (0.0, 5.0),
        QUALITY_CONTROL: (5.0, 15.0),
        IMPUTATION: (15.0, 95.0),
        SUMMARY: (95.0, 100.0),
    },
    "qc_only": {VALIDATION: (0.0, 40.0), QUALITY_CONTROL: (40.0, 100.0)},
}

log = logging.getLogger("imputehub.engine.runner")


class Runner:
    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.spec = run.spec()
        self.cancel = threading.Event()
        self.done = threading.Event()
        self._lock = threading.Lock()
        previous = run.state()
        self.state = replace(
            previous,
            state="running",
            step="",
            progress=0.0,
            message=None,
            heartbeat_at=time.time(),
            host=hostname(),
            pid=os.getpid(),
            pid_started=process_started(os.getpid()),
            beagle_pgid=None,
        )
        self._step = ""

    def update(self, **changes: Any) -> None:
        with self._lock:
            self.state = replace(self.state, heartbeat_at=time.time(), **changes)
            self.run.write_state(self.state)

    def note(self, line: str, **changes: Any) -> None:
        with self._lock:
            self.state = replace(self.state.log(line), heartbeat_at=time.time(), **changes)
            self.run.write_state(self.state)

    def heartbeat(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            if self.run.cancel_requested():
                self.cancel.set()
            self.update()

    def on_progress(self, step: str, percent: float) -> None:
        low, high = BANDS[self.spec.mode].get(step, (0.0, 100.0))
        overall = low + (high - low) * max(0.0, min(percent, 100.0)) / 100.0
        progress = max(self.state.progress, overall)
        if step != self._step:
            self._step = step
            self.note(f"{step}: started", step=step, progress=progress)
        else:
            self.update(progress=progress)
        if step == QUALITY_CONTROL and percent >= 100.0:
            self._log_qc_summary()

    def _log_qc_summary(self) -> None:
        """The QC report's figures, in the job's log as Michigan's servers show them."""
        report = self.run.results / "qc_report.txt"
        try:
            with open(report, encoding="utf-8") as handle:
                for number, line in enumerate(handle):
                    if number >= 60:
                        break
                    if line.startswith("  "):
                        self.note(f"{QUALITY_CONTROL}: {line.strip()}")
        except OSError:
            pass

    def on_beagle_start(self, pgid: int) -> None:
        self.update(beagle_pgid=pgid)

    def execute(self) -> None:
        restarts = self.state.restarts
        self.note("restarted: the earlier run's process was lost" if restarts else "started")
        if self.run.cancel_requested():
            self.cancel.set()
        beat = threading.Thread(target=self.heartbeat, daemon=True)
        beat.start()
        try:
            self._pipeline(self.spec)
        except PipelineCancelled:
            self.note("cancelled; partial outputs removed", state="cancelled", beagle_pgid=None)
        except PipelineError as exc:
            self.note(f"failed: {exc.message}", state="failed", message=exc.message)
        except Exception as exc:
            traceback.print_exc()
            message = f"internal error in the local engine ({type(exc).__name__}: {exc})"
            self.note(f"failed: {message}", state="failed", message=message)
        else:
            count = sum(1 for path in self.run.results.rglob("*") if path.is_file())
            self.note(
                f"{SUMMARY}: {count} result files written",
                state="completed",
                progress=100.0,
                beagle_pgid=None,
            )
        finally:
            self.done.set()
            beat.join()

    def _pipeline(self, spec: RunSpec) -> None:
        check = check_tools(beagle_jar=spec.beagle_jar, java=spec.java)
        if check.tools is None:
            raise PipelineError(check.message)
        run_pipeline(
            [self.run.path / name for name in spec.inputs],
            spec.panel_file(self.run.path),
            self.run.work,
            mode=cast(Mode, spec.mode),
            heap_mb=spec.heap_mb,
            threads=spec.threads,
            on_progress=self.on_progress,
            panel_chrom_style=cast(ChromStyle, spec.chrom_style),
            panel_name=spec.panel_name,
            tools=check.tools,
            cancel_event=self.cancel,
            on_beagle_start=self.on_beagle_start,
            r2_filter=spec.r2_filter,
        )


def main(argv: list[str]) -> int:
    detach = "--detach" in argv
    args = [arg for arg in argv if arg != "--detach"]
    if len(args) != 1:
        print("usage: python -m imputehub.connectors.local.runner [--detach] RUN_DIR")
        return 2
    run = RunDir(Path(args[0]))
    if detach and os.fork() > 0:
        # The parent returns at once; the child, reparented to init, runs the job.
        os._exit(0)
    with open(run.lock_file, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another runner holds this run; leaving it alone", file=sys.stderr)
            return 0
        if run.state().final:
            return 0
        runner = Runner(run)
        signal.signal(signal.SIGTERM, lambda signum, frame: runner.cancel.set())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the hub
        runner.execute()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
