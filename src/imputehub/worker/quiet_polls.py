"""Whether a poll's answer changes anything about its job.

Most polls of a running job hear what the last one heard: same state, progress, queue
position and logs. Such a quiet poll only moves the job's next poll on and gives its lease
back, which the worker's write batch does for many jobs in one statement (write_batch.py);
a poll that changes anything writes its outcome in a transaction of its own, with its
status row and event, as before.

The test here mirrors what steps._apply_status would write, field by field: when it says
quiet, that function would have written nothing but `next_run_at` and the lease release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imputehub.connectors.base import ExternalState, ExternalStatus
from imputehub.domain import jobs as rules
from imputehub.domain.jobs import JobStatus


@dataclass(frozen=True, kw_only=True)
class JobView:
    """What a poll's outcome could change on the job, as read before the service was asked."""

    status: JobStatus
    progress: float
    attempts: int
    logs: Sequence[Any]
    queue_position: int | None
    deletes_results_at: datetime | None
    last_message: str | None  # of the job's newest status update


def running_message(service_name: str) -> str:
    return f"running at {service_name}"


def queued_message(service_name: str, position: int | None) -> str:
    where = f" (position {position} in the queue)" if position is not None else ""
    return f"queued at {service_name}{where}"


def is_quiet(view: JobView, status: ExternalStatus, service_name: str) -> bool:
    """True when recording `status` would change nothing but the job's next poll time."""
    if view.attempts != 0 or list(view.logs) != list(status.logs):
        return False
    queued = status.state == ExternalState.QUEUED
    if view.queue_position != (status.queue_position if queued else None):
        return False
    deletes_at = status.results_deleted_at
    if deletes_at is not None and deletes_at != view.deletes_results_at:
        return False
    if status.state == ExternalState.RUNNING:
        progress = max(view.progress, rules.service_progress(status.progress or 0.0))
        return (
            view.status == JobStatus.RUNNING
            and rules.progress_for(JobStatus.RUNNING, progress) == view.progress
            and view.last_message == running_message(service_name)
        )
    if queued:
        if view.status not in (JobStatus.PENDING, JobStatus.QUEUED):
            return True  # a running job the service shows queued again: nothing is noted
        return (
            view.status == JobStatus.QUEUED
            and rules.progress_for(JobStatus.QUEUED, view.progress) == view.progress
            and view.last_message == queued_message(service_name, status.queue_position)
        )
    return False  # failed, cancelled or completed: always a change
