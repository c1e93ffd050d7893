"""Which stages a user hears of on which channel by default, and the words they read."""

from __future__ import annotations

import pytest

from imputehub.domain.jobs import JobStatus
from imputehub.domain.notifications import (
    Channel,
    EventKind,
    describe,
    job_event_kind,
    preferences,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (JobStatus.PENDING, None),
        (JobStatus.QUEUED, EventKind.JOB_QUEUED),
        (JobStatus.RUNNING, EventKind.JOB_RUNNING),
        (JobStatus.CANCELLING, None),
        (JobStatus.COMPLETED, EventKind.JOB_COMPLETED),
        (JobStatus.FAILED, EventKind.JOB_FAILED),
        (JobStatus.CANCELLED, EventKind.JOB_CANCELLED),
    ],
)
def test_every_status_users_hear_of_has_its_event(status: JobStatus, kind: EventKind) -> None:
    assert job_event_kind(status) == kind


def test_by_default_e_mail_carries_only_what_needs_the_user() -> None:
    chosen = preferences({})

    mailed = {kind for kind in EventKind if chosen[(kind, Channel.EMAIL)]}
    assert mailed == {
        EventKind.JOB_FAILED,
        EventKind.JOB_CANCELLED,
        EventKind.RESULTS_READY,
        EventKind.CREDENTIAL_EXPIRING,
    }
    assert all(chosen[(kind, Channel.IN_APP)] for kind in EventKind)
    assert all(chosen[(kind, Channel.WEBHOOK)] for kind in EventKind)


def test_a_user_s_choice_overrides_the_default() -> None:
    chosen = preferences({("job.running", "email"): True, ("job.failed", "in_app"): False})

    assert chosen[(EventKind.JOB_RUNNING, Channel.EMAIL)] is True
    assert chosen[(EventKind.JOB_FAILED, Channel.IN_APP)] is False
    assert chosen[(EventKind.JOB_FAILED, Channel.EMAIL)] is True


def test_notifications_name_the_job_and_say_what_happened() -> None:
    failed = describe(EventKind.JOB_FAILED, {"job_name": "chr20 study", "message": "bad VCF"})
    ready = describe(EventKind.RESULTS_READY, {"job_name": "chr20 study", "files": 7})
    one = describe(EventKind.RESULTS_READY, {"job_name": "x", "files": 1})
    expiring = describe(
        EventKind.CREDENTIAL_EXPIRING,
        {"service_name": "TOPMed", "expires_at": "2026-12-01T00:00:00+00:00"},
    )

    assert failed == ("Job 'chr20 study' failed", "bad VCF")
    assert ready == ("Results of job 'chr20 study' are ready", "7 result files ready to download.")
    assert one[1] == "1 result file ready to download."
    assert expiring[0] == "Your credential for TOPMed expires on 2026-12-01"
