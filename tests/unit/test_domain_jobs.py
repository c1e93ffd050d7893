"""The job state machine, progress bands and retry timing, as tables."""

from __future__ import annotations

import itertools

import pytest

from imputehub.domain import jobs
from imputehub.domain.errors import InvalidTransition
from imputehub.domain.jobs import JobStatus as S

LEGAL = {
    (S.PENDING, S.QUEUED),
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.CANCELLING),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.COMPLETED),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELLING),
    (S.QUEUED, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLING),
    (S.RUNNING, S.CANCELLED),
    (S.CANCELLING, S.CANCELLED),
    (S.CANCELLING, S.FAILED),
}
STAY = {(s, s) for s in S if s not in jobs.TERMINAL}
ALL_PAIRS = list(itertools.product(S, S))


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL | STAY))
def test_legal_transitions_return_the_target(current: S, target: S) -> None:
    assert jobs.transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"), [p for p in ALL_PAIRS if p not in LEGAL and p not in STAY]
)
def test_illegal_transitions_raise_with_a_plain_message(current: S, target: S) -> None:
    with pytest.raises(InvalidTransition) as info:
        jobs.transition(current, target)
    assert info.value.message == f"a job that is {current} cannot become {target}"
    assert info.value.code == "invalid_transition"


@pytest.mark.parametrize("status", sorted(jobs.TERMINAL))
def test_terminal_states_have_no_way_out(status: S) -> None:
    assert jobs.allowed_transitions(status) == frozenset()
    assert jobs.is_terminal(status)
    assert jobs.step_for(status) is None


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (S.PENDING, jobs.Step.SUBMIT),
        (S.QUEUED, jobs.Step.POLL),
        (S.RUNNING, jobs.Step.POLL),
        (S.CANCELLING, jobs.Step.CANCEL),
    ],
)
def test_each_active_state_has_a_next_step(status: S, step: jobs.Step) -> None:
    assert jobs.step_for(status) is step
    assert status in jobs.ACTIVE


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (jobs.submit_progress, 0.0, 0.0),
        (jobs.submit_progress, 0.5, 5.0),
        (jobs.submit_progress, 1.0, 10.0),
        (jobs.submit_progress, 7.0, 10.0),
        (jobs.service_progress, 0.0, 10.0),
        (jobs.service_progress, 50.0, 50.0),
        (jobs.service_progress, 100.0, 90.0),
        (jobs.service_progress, 250.0, 90.0),
        (jobs.service_progress, -3.0, 10.0),
        (jobs.fetch_progress, 0.0, 90.0),
        (jobs.fetch_progress, 1.0, 99.0),
    ],
)
def test_progress_bands(fn: object, value: float, expected: float) -> None:
    assert callable(fn)
    assert fn(value) == expected


@pytest.mark.parametrize("status", [s for s in S if s != S.COMPLETED])
def test_progress_never_reaches_100_before_completed(status: S) -> None:
    assert jobs.progress_for(status, 100.0) == 99.0
    assert jobs.progress_for(status, -5.0) == 0.0


def test_completed_is_always_100() -> None:
    assert jobs.progress_for(S.COMPLETED, 12.0) == 100.0


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.0, 5.0),
        (1, 1.0, 10.0),
        (2, 0.0, 10.0),
        (3, 1.0, 40.0),
        (10, 0.0, 50.0),  # capped at 100, half of it fixed
        (10, 1.0, 100.0),
        (0, 0.5, 7.5),
    ],
)
def test_retry_delay_grows_exponentially_with_jitter_and_a_cap(
    attempt: int, rand: float, expected: float
) -> None:
    assert jobs.retry_delay(attempt, base=10, cap=100, rand=lambda: rand) == expected
