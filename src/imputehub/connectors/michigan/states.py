"""Michigan (Cloudgene 3) job states and step messages, read into the hub's terms.

| state | Cloudgene meaning                        | hub                                          |
|-------|------------------------------------------|----------------------------------------------|
| 1     | waiting                                  | queued (position = `positionInQueue` + 1)    |
| 2     | running                                  | running                                      |
| 3     | exporting                                | running                                      |
| 4     | success                                  | completed                                    |
| 5     | failed                                   | failed, with the service's error messages    |
| 6     | canceled                                 | cancelled                                    |
| 7     | retired (results deleted)                | failed: "the service deleted the results"    |
| 8     | success, retire notice sent              | completed                                    |
| 9     | failed or canceled, retire notice sent   | failed, with the service's error messages    |
| 10    | deleted                                  | failed: "the service deleted the job"        |
| -1    | dead (the server lost the running job)   | failed: "the job died at the service"        |
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from imputehub.connectors.base import ExternalState, ExternalStatus

RETIRED_MESSAGE = "the service deleted the results"
STEP_NAMES = ("Input Validation", "Quality Control", "Phasing and Imputation", "Summary")
MESSAGE_ERROR = 1
RETIRED = 7

_STATES = {
    1: ExternalState.QUEUED,
    2: ExternalState.RUNNING,
    3: ExternalState.RUNNING,
    4: ExternalState.COMPLETED,
    5: ExternalState.FAILED,
    6: ExternalState.CANCELLED,
    7: ExternalState.FAILED,
    8: ExternalState.COMPLETED,
    9: ExternalState.FAILED,
    10: ExternalState.FAILED,
    -1: ExternalState.FAILED,
}
_FIXED_MESSAGES = {
    7: RETIRED_MESSAGE,
    10: "the service deleted the job",
    -1: "the job died at the service",
}
# Service text is untrusted: every pattern here runs in linear time (no two unbounded
# repeats that can take the same characters), tags are removed by scanning, not by a
# `<[^>]*>` regex (quadratic over a run of `<` without `>`), and a message is cut first.
_BREAK = re.compile(r"<\s*(?:br|/p|/div|/li|/tr|/h\d)\s*(?:/\s*)?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]+")
MAX_MESSAGE_CHARS = 20_000


def html_to_text(markup: str) -> str:
    """Step messages are HTML fragments; the hub shows plain text (at most
    MAX_MESSAGE_CHARS of each, the rest marked cut)."""
    cut = len(markup) > MAX_MESSAGE_CHARS
    text = _strip_tags(_BREAK.sub("\n", markup[:MAX_MESSAGE_CHARS]))
    lines = (_SPACES.sub(" ", line).strip() for line in html.unescape(text).splitlines())
    plain = "\n".join(line for line in lines if line)
    return f"{plain} […]" if cut else plain


def _strip_tags(markup: str) -> str:
    """Drop each `<…>`, as the regex `<[^>]*>` would, in one pass."""
    kept: list[str] = []
    at = 0
    while (start := markup.find("<", at)) >= 0:
        end = markup.find(">", start + 1)
        if end < 0:  # no tag closes after this point: the rest is text
            break
        kept.append(markup[at:start])
        at = end + 1
    kept.append(markup[at:])
    return "".join(kept)


def to_status(response: Mapping[str, Any]) -> ExternalStatus:
    """An ExternalStatus from a JobResponse; unknown states count as still running."""
    state = _as_int(response.get("state"), default=2)
    steps = response.get("steps") or []
    logs = tuple(_logs(steps))
    external = _STATES.get(state, ExternalState.RUNNING)
    message: str | None = None
    if external is ExternalState.FAILED:
        message = _FIXED_MESSAGES.get(state) or _errors(steps) or "the job failed at the service"
    position: int | None = None
    if external is ExternalState.QUEUED:
        raw = _as_int(response.get("positionInQueue"), default=-1)
        position = raw + 1 if raw >= 0 else None
    return ExternalStatus(
        state=external,
        progress=_progress(state, steps),
        message=message,
        queue_position=position,
        logs=logs,
        results_deleted_at=deleted_on(response),
    )


def deleted_on(response: Mapping[str, Any]) -> datetime | None:
    """When the server deletes the job's results: `deletedOn` (epoch ms), set when the retire
    notice goes out (0 until then)."""
    millis = _as_int(response.get("deletedOn"), default=0)
    if millis <= 0:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def is_retired(response: Mapping[str, Any]) -> bool:
    return _as_int(response.get("state"), default=0) == RETIRED


def _as_int(value: object, *, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _messages(steps: Sequence[Any]) -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []
    for step in steps:
        if not isinstance(step, Mapping):
            continue
        for entry in step.get("logMessages") or []:
            if isinstance(entry, Mapping):
                text = html_to_text(str(entry.get("message") or ""))
                kind = _as_int(entry.get("type"), default=0)
                if text:
                    found.append((str(step.get("name") or "step"), kind, text))
    return found


def _logs(steps: Sequence[Any]) -> list[str]:
    return [f"{name}: {text}" for name, _, text in _messages(steps)]


def _errors(steps: Sequence[Any]) -> str | None:
    errors = [text for _, kind, text in _messages(steps) if kind == MESSAGE_ERROR]
    return "\n".join(errors) if errors else None


def _progress(state: int, steps: Sequence[Any]) -> float | None:
    """A rough 0-100 from how far through the app's four steps the job got."""
    if state in (4, 8):
        return 100.0
    if state == 1:
        return 0.0
    if state not in (2, 3):
        return None
    names = [str(s.get("name")) for s in steps if isinstance(s, Mapping)]
    reached = max((STEP_NAMES.index(n) + 1 for n in names if n in STEP_NAMES), default=0)
    return round(min(95.0, 100.0 * max(reached - 0.5, 0.0) / len(STEP_NAMES)), 1)
