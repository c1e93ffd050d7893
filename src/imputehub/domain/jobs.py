"""Job rules: states, legal transitions, progress bands and retry timing. No I/O."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

from imputehub.domain.errors import InvalidTransition


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobMode(enum.StrEnum):
    IMPUTATION = "imputation"
    QC_ONLY = "qc_only"


class Phasing(enum.StrEnum):
    EAGLE = "eagle"
    BEAGLE = "beagle"
    SHAPEIT = "shapeit"
    NO_PHASING = "no_phasing"


class Build(enum.StrEnum):
    HG19 = "hg19"
    HG38 = "hg38"


class Step(enum.StrEnum):
    """The next short, idempotent piece of work the worker performs for a job."""

    SUBMIT = "submit"
    POLL = "poll"
    FETCH = "fetch"
    CANCEL = "cancel"
    # A federated job's parent: follow its children, then compare and merge their results.
    FOLLOW = "follow"
    COMPARE = "compare"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset(set(JobStatus) - TERMINAL)

_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.CANCELLING,
        }
    ),
    JobStatus.QUEUED: frozenset(
        {
            JobStatus.RUNNING,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLING,
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLING, JobStatus.CANCELLED}
    ),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def allowed_transitions(current: JobStatus) -> frozenset[JobStatus]:
    return _TRANSITIONS[current]


def transition(current: JobStatus, target: JobStatus) -> JobStatus:
    """Return `target` if a job in `current` may move there, else raise InvalidTransition.

    Staying in the same active state is allowed (a poll that reports no change).
    """
    if target == current and current not in TERMINAL:
        return target
    if target not in _TRANSITIONS[current]:
        raise InvalidTransition(
            f"a job that is {current.value} cannot become {target.value}",
            current=current.value,
            target=target.value,
        )
    return target


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL


# Progress bands: 0-10 validating and submitting, 10-90 the service's own progress,
# 90-100 fetching and checking results. 100 only when completed.
SUBMIT_BAND = (0.0, 10.0)
SERVICE_BAND = (10.0, 90.0)
FETCH_BAND = (90.0, 99.0)


def _in_band(band: tuple[float, float], fraction: float) -> float:
    low, high = band
    fraction = min(max(fraction, 0.0), 1.0)
    return round(low + (high - low) * fraction, 1)


def submit_progress(fraction: float) -> float:
    return _in_band(SUBMIT_BAND, fraction)


def service_progress(percent: float) -> float:
    """Map a service's own 0-100 progress into the job's 10-90 band."""
    return _in_band(SERVICE_BAND, percent / 100.0)


def fetch_progress(fraction: float) -> float:
    return _in_band(FETCH_BAND, fraction)


def progress_for(status: JobStatus, proposed: float) -> float:
    """The progress a job in `status` shows: 100 only when completed, never above 99 before."""
    if status == JobStatus.COMPLETED:
        return 100.0
    return min(max(proposed, 0.0), FETCH_BAND[1])


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, never above cap.

    `attempt` counts from 1 (the first retry waits about `base`).
    """
    exponential = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return exponential / 2 + rand() * exponential / 2


def step_for(status: JobStatus) -> Step | None:
    """The first step a job needs when it enters `status` (None when terminal)."""
    if status == JobStatus.PENDING:
        return Step.SUBMIT
    if status in (JobStatus.QUEUED, JobStatus.RUNNING):
        return Step.POLL
    if status == JobStatus.CANCELLING:
        return Step.CANCEL
    return None
