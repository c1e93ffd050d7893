"""Job statistics from per-status counts."""

from __future__ import annotations

from imputehub.domain.jobs import JobStatus
from imputehub.jobs.stats import summarise


def test_no_jobs() -> None:
    stats = summarise({}, None)
    assert stats.total == 0
    assert stats.active == 0
    assert stats.success_rate is None
    assert stats.mean_execution_time_seconds is None
    assert stats.by_status == {status.value: 0 for status in JobStatus}


def test_counts_rates_and_means() -> None:
    stats = summarise(
        {
            "pending": 1,
            "queued": 2,
            "running": 3,
            "cancelling": 1,
            "completed": 6,
            "failed": 2,
            "cancelled": 5,
        },
        123.45678,
    )
    assert stats.total == 20
    assert stats.active == 7
    assert (stats.completed, stats.failed, stats.cancelled) == (6, 2, 5)
    assert stats.success_rate == 0.75  # cancelled jobs are neither success nor failure
    assert stats.mean_execution_time_seconds == 123.457


def test_only_cancelled_jobs_have_no_success_rate() -> None:
    assert summarise({"cancelled": 3}, None).success_rate is None
    assert summarise({"failed": 3}, None).success_rate == 0.0
