"""Following one job until it ends: a line per change of its status, progress or step.

The job's live stream (`GET /jobs/{id}/events`) tells status and progress; the step the
service is at comes from the job's logs (the services' step messages are `<Step>: <text>`,
e.g. `Phasing and Imputation: 35%`), read when the job's state moves. A hub without live
streams is polled (`/progress` and `/logs`) instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import typer

from imputehub.cli import sse
from imputehub.cli.client import HubClient, HubError, HubUnreachable, segment
from imputehub.cli.output import warn

TERMINAL = frozenset({"completed", "failed", "cancelled"})
PROGRESS_EVENT = "job.progress"

# A step message starts with the step's name: a capital, then words (Michigan's step names,
# the local engine's, a WES workflow's `Step: 35%`). Lower-case labels are the runner's own
# notes (`started`, `failed: ...`), not steps.
_STEP_LABEL = re.compile(r"([A-Z][A-Za-z0-9 ()/+&-]{0,58}[A-Za-z0-9)]): ")
_NOT_STEPS = frozenset({"WES state"})


def current_step(logs: Sequence[str]) -> str | None:
    """The step the latest step message names; None when no message names one."""
    for entry in reversed(logs):
        name = _step_name(entry)
        if name is not None:
            return name
    return None


def step_names(logs: Sequence[str]) -> list[str]:
    """Every step the messages name, in the order they first appear."""
    names: list[str] = []
    for entry in logs:
        name = _step_name(entry)
        if name is not None and name not in names:
            names.append(name)
    return names


def _step_name(entry: str) -> str | None:
    found = _STEP_LABEL.match(entry)
    return found.group(1) if found and found.group(1) not in _NOT_STEPS else None


def line(status: str, progress: float, step: str | None, at: datetime) -> str:
    """`12:00:01  running     35.0 %  Phasing and Imputation`"""
    text = f"{at:%H:%M:%S}  {status:<10} {progress:5.1f} %"
    return f"{text}  {step}" if step else text


class Printer:
    """Prints a line per change of status, progress or step.

    Steps can pass between two looks at a job (a quick Input Validation): a line names
    every step entered since the line before, `Input Validation → Quality Control`.
    """

    def __init__(self, clock: Callable[[], datetime] = datetime.now) -> None:
        self.clock = clock
        self.step: str | None = None  # the step the job is at, as far as we know
        self._seen: set[str] = set()
        self._last: tuple[str, float, str | None] | None = None

    def show(self, status: str, progress: float, logs: Sequence[str] | None) -> None:
        """`logs`: the job's step messages now; None when not known anew (the step stays)."""
        new: list[str] = []
        if logs is not None:
            new = [name for name in step_names(logs) if name not in self._seen]
            self._seen.update(new)
            self.step = current_step(logs) or self.step
        state = (status, progress, self.step)
        if new or state != self._last:
            label = " → ".join(new) if new else self.step
            typer.echo(line(status, progress, label, self.clock()))
            self._last = state


def follow(client: HubClient, job_id: str, interval: float) -> str:
    """Follow the job's event stream, reconnecting where it broke; the terminal status."""
    printer = Printer()
    last_id: str | None = None
    status: str | None = None
    while True:
        path = f"api/v1/jobs/{segment(job_id)}/events"
        if last_id is not None:
            # A resume point in the query: the client's stream() sends no extra headers.
            path += f"?last_event_id={quote(last_id)}"
        try:
            with client.stream(path) as response:
                # A stream replays the events missed first; once its first progress message
                # came, what follows is live.
                live = False
                for message in sse.parse(response.iter_lines()):
                    last_id = message.id if message.id is not None else last_id
                    status = _show(client, job_id, printer, message, live=live) or status
                    live = live or message.event == PROGRESS_EVENT
        except HubUnreachable as exc:
            # A hub restart or a dropped connection must not end a watch of a long job.
            warn(f"{exc.message}; trying again")
            time.sleep(min(max(interval, 1.0), 5.0))
            continue
        except HubError as exc:
            if exc.status != 404 or status is not None:
                raise
            # A hub without live streams (older), or no such job: /progress tells which.
            return _poll(client, job_id, interval, printer)
        if status in TERMINAL:
            return status
        # The stream ended before the job did (the hub stopped): pick up where it broke.
        time.sleep(min(interval, 1.0))


def _show(
    client: HubClient, job_id: str, printer: Printer, message: sse.ServerEvent, *, live: bool
) -> str | None:
    """Print what a stream message says of the job; its status, if it tells one."""
    try:
        data = json.loads(message.data)
    except ValueError:
        return None
    payload = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
        return None
    status = str(payload["status"])
    # A progress message, or a live event, is the job as it is now: its logs tell its step.
    # A replayed event is the job's past: the step shown stays as it was.
    now = live or message.event == PROGRESS_EVENT
    printer.show(status, _number(payload.get("progress")), _logs(client, job_id) if now else None)
    return status


def _poll(client: HubClient, job_id: str, interval: float, printer: Printer) -> str:
    """Poll the job's progress and logs, printing each change; the terminal status."""
    while True:
        try:
            progress = client.get(f"/jobs/{segment(job_id)}/progress")
            logs = _logs(client, job_id)
        except HubUnreachable as exc:
            # A hub restart must not end a watch of a job that runs for hours.
            warn(f"{exc.message}; trying again")
            time.sleep(max(interval, 5.0))
            continue
        status = str(progress["status"])
        printer.show(status, _number(progress.get("progress_percentage")), logs)
        if status in TERMINAL:
            return status
        time.sleep(interval)


def _logs(client: HubClient, job_id: str) -> list[str] | None:
    """The job's step messages now; None when the hub offers none (no logs route)."""
    try:
        answer = client.get(f"/jobs/{segment(job_id)}/logs")
    except HubError:
        return None
    logs = answer.get("logs") if isinstance(answer, dict) else None
    return [str(entry) for entry in logs] if isinstance(logs, list) else None


def _number(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
