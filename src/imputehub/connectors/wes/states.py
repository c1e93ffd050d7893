"""WES run states as the hub's ExternalState, and what a RunLog says about a run.

| WES state (who says it)                          | hub          |
|--------------------------------------------------|--------------|
| QUEUED, INITIALIZING, PAUSED (1.0/1.1)           | queued       |
| PREPROCESSING (DNAstack)                         | queued       |
| UNKNOWN (1.0/1.1)                                | queued       |
| RUNNING, CANCELING (1.0/1.1), DELETING (sapporo) | running      |
| COMPLETE (1.0/1.1)                               | completed    |
| EXECUTOR_ERROR, SYSTEM_ERROR, PREEMPTED (1.1)    | failed       |
| COMPLETE_WITH_ERRORS, PREPROCESSING_ERROR,       | failed       |
| NOT_PROCESSED (DNAstack)                         |              |
| CANCELED (1.0/1.1), DELETED (sapporo)            | cancelled    |

UNKNOWN stays "queued" so a server that has not decided yet is simply asked again; a
CANCELING run is still running until the server says CANCELED. A run that completed with
errors (DNAstack) has no trustworthy results, so it counts as failed.

`stdout`/`stderr` in a RunLog are text (sapporo) or URLs (the spec, toil); the connector
fetches the tail of a URL and puts its text in their place before `to_status` reads them,
so a URL left here is one that could not be fetched and is never read as log text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imputehub.connectors.base import ExternalState, ExternalStatus

STATES: dict[str, ExternalState] = {
    "UNKNOWN": ExternalState.QUEUED,
    "QUEUED": ExternalState.QUEUED,
    "INITIALIZING": ExternalState.QUEUED,
    "PAUSED": ExternalState.QUEUED,
    "PREPROCESSING": ExternalState.QUEUED,
    "RUNNING": ExternalState.RUNNING,
    "CANCELING": ExternalState.RUNNING,
    "DELETING": ExternalState.RUNNING,
    "COMPLETE": ExternalState.COMPLETED,
    "EXECUTOR_ERROR": ExternalState.FAILED,
    "SYSTEM_ERROR": ExternalState.FAILED,
    "PREEMPTED": ExternalState.FAILED,
    "COMPLETE_WITH_ERRORS": ExternalState.FAILED,
    "PREPROCESSING_ERROR": ExternalState.FAILED,
    "NOT_PROCESSED": ExternalState.FAILED,
    "CANCELED": ExternalState.CANCELLED,
    "CANCELLED": ExternalState.CANCELLED,  # a spelling some servers use
    "DELETED": ExternalState.CANCELLED,
}

# Our workflow (the engine) prints "<step>: <percent>%" lines as it goes.
_STEP = re.compile(r"^[A-Za-z][\w ]*: \d{1,3}%\s*$", re.MULTILINE)
# The engine's own failure line, e.g. "error: the input is not a VCF".
_ERROR = re.compile(r"^error: (.+)$", re.MULTILINE)
MAX_LOG_LINES = 50
MAX_MESSAGE = 1000
MAX_ERRORS = 5  # of a run's `errors`, the first this many


def state_of(value: object) -> ExternalState:
    """The hub's state for a WES state name; unknown names are waited on like UNKNOWN."""
    return STATES.get(str(value or "UNKNOWN").upper(), ExternalState.QUEUED)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def is_log_url(text: str) -> bool:
    """Whether a RunLog's stdout/stderr is a link to the log (absolute, or from the root)."""
    stripped = text.strip()
    return stripped.startswith(("http://", "https://", "/")) and "\n" not in stripped


def failure_message(run: Mapping[str, Any], state_name: str) -> str:
    """The run's own reason for failing, in as few words as the server gives.

    A run's `errors` (DNAstack's ExtendedRun) come first: they are the service's own words.
    """
    errors = run.get("errors")
    reasons = [str(e).strip() for e in errors or [] if isinstance(e, str) and e.strip()]
    if isinstance(errors, list) and reasons:
        return "; ".join(reasons[:MAX_ERRORS])[:MAX_MESSAGE]
    log = run.get("run_log") if isinstance(run.get("run_log"), Mapping) else {}
    assert isinstance(log, Mapping)
    stderr = _text(log.get("stderr"))
    stdout = _text(log.get("stdout"))
    for text in (stderr, stdout):
        if is_log_url(text):
            continue
        found = _ERROR.findall(text)
        if found:
            return str(found[-1]).strip()[:MAX_MESSAGE]
    if stderr and not is_log_url(stderr):
        tail = stderr.strip().splitlines()[-3:]
        return f"the workflow run ended in {state_name}: {' '.join(tail)}"[:MAX_MESSAGE]
    exit_code = log.get("exit_code")
    suffix = f" (exit code {exit_code})" if exit_code is not None else ""
    return f"the workflow run ended in {state_name}{suffix}"


def to_status(run: Mapping[str, Any], extra_logs: tuple[str, ...] = ()) -> ExternalStatus:
    """A RunLog as the hub's status; `extra_logs` are lines fetched from log URLs."""
    state_name = str(run.get("state") or "UNKNOWN").upper()
    state = state_of(state_name)
    log = run.get("run_log") if isinstance(run.get("run_log"), Mapping) else {}
    assert isinstance(log, Mapping)
    lines: list[str] = [f"WES state: {state_name}"]
    for key in ("stdout", "stderr"):
        text = _text(log.get(key))
        if is_log_url(text):
            continue  # not fetched: the connector notes why in `extra_logs`
        if found := _STEP.findall(text):
            # Only the latest step: its percent is the step's own, not the run's.
            lines.append(str(found[-1]).strip())
    lines.extend(extra_logs)
    return ExternalStatus(
        state=state,
        progress=100.0 if state is ExternalState.COMPLETED else None,
        message=failure_message(run, state_name) if state is ExternalState.FAILED else None,
        logs=tuple(lines[-MAX_LOG_LINES:]),
    )
