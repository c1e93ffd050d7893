"""Which poll answers change nothing about a job (worker/quiet_polls.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from imputehub.connectors.base import ExternalState, ExternalStatus
from imputehub.domain import jobs as rules
from imputehub.domain.jobs import JobStatus
from imputehub.worker.quiet_polls import JobView, is_quiet, queued_message, running_message

SERVICE = "Michigan"
RUNNING = JobView(
    status=JobStatus.RUNNING,
    progress=rules.service_progress(50.0),
    attempts=0,
    logs=["QC: passed"],
    queue_position=None,
    deletes_results_at=None,
    last_message=running_message(SERVICE),
)
HEARD = ExternalStatus(state=ExternalState.RUNNING, progress=50.0, logs=("QC: passed",))


def test_the_same_answer_again_is_quiet() -> None:
    assert is_quiet(RUNNING, HEARD, SERVICE)


def test_less_progress_than_shown_is_quiet_since_progress_never_goes_back() -> None:
    assert is_quiet(RUNNING, replace(HEARD, progress=20.0), SERVICE)


@pytest.mark.parametrize(
    ("view", "heard"),
    [
        (RUNNING, replace(HEARD, progress=75.0)),
        (RUNNING, replace(HEARD, logs=("QC: passed", "Imputation: chr20"))),
        (RUNNING, replace(HEARD, results_deleted_at=datetime(2030, 1, 1, tzinfo=UTC))),
        (RUNNING, replace(HEARD, state=ExternalState.COMPLETED, progress=100.0)),
        (RUNNING, replace(HEARD, state=ExternalState.FAILED, message="no SNPs")),
        (RUNNING, replace(HEARD, state=ExternalState.CANCELLED)),
        # After a retry the owner read "waiting to retry": the next good poll says so again.
        (replace(RUNNING, attempts=2), HEARD),
        (replace(RUNNING, last_message="waiting to retry after a temporary problem: x"), HEARD),
        (replace(RUNNING, status=JobStatus.QUEUED), HEARD),
    ],
    ids=[
        "progress",
        "logs",
        "deletion date",
        "completed",
        "failed",
        "cancelled",
        "after failed attempts",
        "other last message",
        "was queued",
    ],
)
def test_an_answer_that_changes_what_the_owner_sees_is_not_quiet(
    view: JobView, heard: ExternalStatus
) -> None:
    assert not is_quiet(view, heard, SERVICE)


def test_a_queue_position_is_quiet_only_while_it_stays() -> None:
    view = replace(
        RUNNING,
        status=JobStatus.QUEUED,
        progress=rules.progress_for(JobStatus.QUEUED, 10.0),
        queue_position=3,
        last_message=queued_message(SERVICE, 3),
    )
    heard = ExternalStatus(state=ExternalState.QUEUED, queue_position=3, logs=("QC: passed",))

    assert is_quiet(view, heard, SERVICE)
    assert not is_quiet(view, replace(heard, queue_position=2), SERVICE)
