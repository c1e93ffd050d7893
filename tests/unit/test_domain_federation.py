"""A federated job's status follows its children's: the rules as a table."""

from __future__ import annotations

import pytest

from imputehub.domain import federation
from imputehub.domain.federation import Child
from imputehub.domain.jobs import JobMode, JobStatus, Step

P, Q, R, X = JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING
C, F, K = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED


def kids(*states: tuple[JobStatus, float]) -> list[Child]:
    return [
        Child(id=f"c{i}", retry_of=None, status=status, progress=progress)
        for i, (status, progress) in enumerate(states)
    ]


@pytest.mark.parametrize(
    ("children", "parent", "status", "progress", "step"),
    [
        # all pending: pending, looking again
        (kids((P, 0), (P, 0)), P, P, 0.0, Step.FOLLOW),
        # all waiting at their services
        (kids((Q, 10), (P, 5)), P, Q, 7.5, Step.FOLLOW),
        # one running: running
        (kids((R, 50), (Q, 10)), Q, R, 30.0, Step.FOLLOW),
        # never backwards: running stays running while the others wait
        (kids((Q, 10), (Q, 10)), R, R, 10.0, Step.FOLLOW),
        # one ended, one waiting: running (some work is done)
        (kids((F, 40), (Q, 10)), P, R, 55.0, Step.FOLLOW),
        # cancel requested: cancelling until all have ended
        (kids((X, 40), (R, 60)), X, X, 50.0, Step.FOLLOW),
        # two completed: compare before completing
        (kids((C, 100), (C, 100), (F, 30)), R, R, 99.0, Step.COMPARE),
        # one completed: nothing to compare
        (kids((C, 100), (F, 30)), R, C, 100.0, None),
        # none completed, one failed: failed
        (kids((F, 30), (K, 10)), R, F, 100.0, None),
        # all cancelled: cancelled
        (kids((K, 10), (K, 0)), X, K, 100.0, None),
        # a cancel came too late: the children had completed; their results exist
        (kids((C, 100), (C, 100)), X, R, 99.0, Step.COMPARE),
    ],
)
def test_the_parent_follows_its_children(
    children: list[Child],
    parent: JobStatus,
    status: JobStatus,
    progress: float,
    step: Step | None,
) -> None:
    state = federation.state(children, parent_status=parent)
    assert (state.status, state.progress, state.step) == (status, progress, step)


def test_a_qc_only_job_is_not_compared() -> None:
    state = federation.state(
        kids((C, 100), (C, 100)), parent_status=JobStatus.RUNNING, mode=JobMode.QC_ONLY
    )
    assert (state.status, state.step) == (JobStatus.COMPLETED, None)


def test_a_retry_replaces_the_attempt_it_retried() -> None:
    children = [
        Child(id="a", retry_of=None, status=C, progress=100),
        Child(id="b", retry_of=None, status=F, progress=30),
        Child(id="b2", retry_of="b", status=R, progress=40),
    ]
    assert [c.id for c in federation.current(children)] == ["a", "b2"]
    state = federation.state(children, parent_status=JobStatus.FAILED)
    assert (state.status, state.progress) == (R, 70.0)
    assert state.summary == "1 of 2 completed, 1 still active"


@pytest.mark.parametrize(
    ("states", "summary"),
    [
        ([C, C, F], "2 of 3 completed, 1 failed"),
        ([C, K], "1 of 2 completed, 1 cancelled"),
        ([R, P, C], "1 of 3 completed, 2 still active"),
        ([F, F], "0 of 2 completed, 2 failed"),
    ],
)
def test_the_summary_counts_the_targets(states: list[JobStatus], summary: str) -> None:
    assert federation.summary(kids(*((s, 0.0) for s in states))) == summary


def test_shared_values_or_mixed() -> None:
    assert federation.common(["eagle", "eagle"], mixed="mixed") == "eagle"
    assert federation.common(["eagle", "beagle"], mixed="mixed") == "mixed"
    assert federation.common(["eur", None], mixed=None) is None
