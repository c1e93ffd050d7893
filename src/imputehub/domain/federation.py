"""Federated jobs: what a parent's status is, given its children's. No I/O.

A federated job is one upload sent to several services and panels. The parent runs nowhere
itself; each child is an ordinary job at one service. The parent's status follows the
children that count: its "current" children, i.e. each target's latest attempt (a child
that was retried is replaced by its retry).

- While any current child is active, the parent is active: `pending` while all are
  pending, `running` once any has got further (a parent never goes back, so `queued` only
  while every active child is queued and none has ended), `cancelling` after a cancel
  of the parent until every child has ended.
- When all have ended: `completed` if at least one completed (the summary says how many),
  else `cancelled` if all were cancelled, else `failed`. A cancelled parent whose children
  had all completed before the cancel reached them is still `completed`: its results exist.
- Two or more completed children (imputation mode) are compared and merged before the
  parent completes: it stays `running` at 99 % with the `compare` step due.
- Progress is the mean of the current children's progress (an ended child that did not
  complete counts as done: 100), so it reaches 100 only when the parent completes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from imputehub.domain.jobs import ACTIVE, JobMode, JobStatus, Step

MIN_TARGETS = 2
COMPARE_PROGRESS = 99.0

# A parent only moves forward through these while its children are active.
_ORDER = {JobStatus.PENDING: 0, JobStatus.QUEUED: 1, JobStatus.RUNNING: 2}


@dataclass(frozen=True, kw_only=True)
class Child:
    """What the parent needs to know of one child."""

    id: str
    retry_of: str | None
    status: JobStatus
    progress: float


@dataclass(frozen=True, kw_only=True)
class ParentState:
    status: JobStatus
    progress: float
    step: Step | None  # the worker's next step for the parent
    summary: str


def current(children: Sequence[Child]) -> list[Child]:
    """Each target's latest attempt: children that no other child retried, in order."""
    retried = {child.retry_of for child in children if child.retry_of}
    return [child for child in children if child.id not in retried]


def summary(children: Sequence[Child]) -> str:
    """'2 of 3 completed, 1 failed' (current children only)."""
    counts = Counter(child.status for child in current(children))
    total = sum(counts.values())
    parts = [f"{counts[JobStatus.COMPLETED]} of {total} completed"]
    for status in (JobStatus.FAILED, JobStatus.CANCELLED):
        if counts[status]:
            parts.append(f"{counts[status]} {status.value}")
    active = sum(counts[status] for status in ACTIVE)
    if active:
        parts.append(f"{active} still active")
    return ", ".join(parts)


def state(
    children: Sequence[Child],
    *,
    parent_status: JobStatus,
    mode: JobMode = JobMode.IMPUTATION,
) -> ParentState:
    """The parent's status, progress and next step, from its children's."""
    live = current(children)
    if not live:
        raise ValueError("a federated job has at least one child")
    text = summary(children)
    active = [child for child in live if child.status in ACTIVE]
    progress = round(
        sum(child.progress if child.status in ACTIVE else 100.0 for child in live) / len(live), 1
    )
    if active:
        if parent_status == JobStatus.CANCELLING:
            status = JobStatus.CANCELLING
        elif all(child.status == JobStatus.PENDING for child in live):
            status = JobStatus.PENDING
        elif len(active) == len(live) and all(
            child.status in (JobStatus.PENDING, JobStatus.QUEUED) for child in live
        ):
            status = JobStatus.QUEUED
        else:
            status = JobStatus.RUNNING
        if parent_status in _ORDER and _ORDER.get(status, 3) < _ORDER[parent_status]:
            status = parent_status  # never backwards (queued after running)
        return ParentState(
            status=status, progress=min(progress, COMPARE_PROGRESS), step=Step.FOLLOW, summary=text
        )
    completed = [child for child in live if child.status == JobStatus.COMPLETED]
    if completed:
        if len(completed) >= MIN_TARGETS and mode == JobMode.IMPUTATION:
            return ParentState(
                status=JobStatus.RUNNING,
                progress=COMPARE_PROGRESS,
                step=Step.COMPARE,
                summary=f"{text}; comparing and merging the results",
            )
        return ParentState(status=JobStatus.COMPLETED, progress=100.0, step=None, summary=text)
    if all(child.status == JobStatus.CANCELLED for child in live):
        return ParentState(status=JobStatus.CANCELLED, progress=progress, step=None, summary=text)
    return ParentState(status=JobStatus.FAILED, progress=progress, step=None, summary=text)


def common(values: Sequence[str | None], *, mixed: str | None) -> str | None:
    """One value the children share (their phasing, their population), else `mixed`."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else mixed
