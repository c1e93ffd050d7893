"""One step timeline for every kind of service: Input Validation, Quality Control, Phasing
and Imputation, Summary (the steps of Michigan's imputationserver2, which the local engine
follows too).

The hub's own status updates and the service's step messages (`job.service_logs`, lines
such as "Quality Control: 812 allele switches") are sorted onto those steps; a service that
names no steps (a WES run) gets its messages under the step the job has reached. Pure: the
job page hands in plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from imputehub.domain.jobs import FETCH_BAND, JobMode, JobStatus

STEP_NAMES = ("Input Validation", "Quality Control", "Phasing and Imputation", "Summary")
VALIDATION, QUALITY_CONTROL, IMPUTATION, SUMMARY = range(4)
# Bounds on what the page shows: a service's log can be long.
MAX_MESSAGES_PER_STEP = 60
MAX_MESSAGE_CHARS = 2000
SERVICE_BAND = (10.0, FETCH_BAND[0])  # the service's own progress, as the hub counts it


class StepState(StrEnum):
    DONE = "done"
    ACTIVE = "active"
    FAILED = "failed"
    STOPPED = "stopped"  # cancelled while in this step
    WAITING = "waiting"
    SKIPPED = "skipped"  # not part of this job (imputation in a QC-only job), or never reached


@dataclass(frozen=True, kw_only=True)
class Update:
    """One of the hub's status updates (a status-update row)."""

    status: JobStatus
    progress: float
    message: str
    at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class StepMessage:
    text: str
    source: str  # "hub" or "service"
    at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    state: StepState
    messages: tuple[StepMessage, ...] = field(default_factory=tuple)


def _service_step(line: str) -> tuple[int | None, str]:
    """'Quality Control: text' -> (QUALITY_CONTROL, 'text'); other lines -> (None, line)."""
    name, sep, rest = line.partition(":")
    if sep and name.strip() in STEP_NAMES:
        return STEP_NAMES.index(name.strip()), rest.strip()
    return None, line.strip()


def _step_of_update(update: Update, mode: JobMode) -> int | None:
    """Where a hub update belongs; None: at the step reached when the job ended."""
    if update.status in (JobStatus.PENDING, JobStatus.QUEUED):
        return VALIDATION
    if update.status == JobStatus.COMPLETED:
        return SUMMARY
    if update.status == JobStatus.RUNNING:
        if update.progress >= FETCH_BAND[0]:
            return SUMMARY
        # "Running at the service": its work, as far as the hub can tell.
        return QUALITY_CONTROL if mode == JobMode.QC_ONLY else IMPUTATION
    return None


def _add(bucket: list[StepMessage], message: StepMessage) -> None:
    """Repeats of the message just before it (a poll that saw nothing new) add nothing."""
    if bucket and (bucket[-1].source, bucket[-1].text) == (message.source, message.text):
        return
    bucket.append(message)


def reached_step(
    status: JobStatus, progress: float, service_steps: Sequence[int], mode: JobMode
) -> int:
    """The step the job is in (or ended in)."""
    if status == JobStatus.COMPLETED:
        return SUMMARY
    reached = max(service_steps, default=VALIDATION)
    if status in (JobStatus.PENDING, JobStatus.QUEUED):
        return reached
    if progress >= FETCH_BAND[0]:
        return SUMMARY
    if status == JobStatus.RUNNING and not service_steps and progress > SERVICE_BAND[0]:
        # A service that names no steps: "the service is working" is imputation to the user.
        return QUALITY_CONTROL if mode == JobMode.QC_ONLY else IMPUTATION
    return reached


def _state(index: int, reached: int, status: JobStatus, mode: JobMode) -> StepState:
    if mode == JobMode.QC_ONLY and index == IMPUTATION:
        return StepState.SKIPPED
    if status == JobStatus.COMPLETED or index < reached:
        return StepState.DONE
    if index > reached:
        ended = status in (JobStatus.FAILED, JobStatus.CANCELLED)
        return StepState.SKIPPED if ended else StepState.WAITING
    if status == JobStatus.FAILED:
        return StepState.FAILED
    if status in (JobStatus.CANCELLED, JobStatus.CANCELLING):
        return StepState.STOPPED
    return StepState.ACTIVE


def timeline(
    *,
    status: JobStatus,
    mode: JobMode,
    progress: float,
    updates: Sequence[Update],
    service_logs: Sequence[str],
) -> list[Step]:
    """The four steps with their state and messages (hub updates first, then the service's)."""
    parsed = [_service_step(str(line)[:MAX_MESSAGE_CHARS]) for line in service_logs]
    named = [index for index, _ in parsed if index is not None]
    reached = reached_step(status, progress, named, mode)
    buckets: list[list[StepMessage]] = [[] for _ in STEP_NAMES]
    for update in updates:
        index = _step_of_update(update, mode)
        target = reached if index is None else min(index, reached)
        if update.message:
            text = update.message[:MAX_MESSAGE_CHARS]
            _add(buckets[target], StepMessage(text=text, source="hub", at=update.at))
    current = VALIDATION
    for index, text in parsed:
        current = current if index is None else index
        if text:
            _add(buckets[current], StepMessage(text=text, source="service"))
    return [
        Step(
            name=name,
            state=_state(index, reached, status, mode),
            messages=tuple(buckets[index][-MAX_MESSAGES_PER_STEP:]),
        )
        for index, name in enumerate(STEP_NAMES)
    ]
