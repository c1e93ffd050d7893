"""What users hear about, on which channels by default, and in what words (pure rules).

Event kinds: a job reaching queued, running, completed, failed or cancelled; its results
being ready (the completed job's results are stored); a service credential about to expire.
Channels: in-app notifications, e-mail, the user's webhooks.

Defaults (a user's preferences override them per kind and channel): in-app and webhooks hear
of everything; e-mail only of what needs the user — failures, cancellations, results ready
and expiring credentials — not of every queued or running job (a busy user would get four
mails per job; turn them on in the preferences to have them).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from imputehub.domain.jobs import JobStatus


class EventKind(enum.StrEnum):
    JOB_QUEUED = "job.queued"
    JOB_RUNNING = "job.running"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    RESULTS_READY = "job.results_ready"
    CREDENTIAL_EXPIRING = "credential.expiring"


class Channel(enum.StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


_JOB_KINDS = {
    JobStatus.QUEUED: EventKind.JOB_QUEUED,
    JobStatus.RUNNING: EventKind.JOB_RUNNING,
    JobStatus.COMPLETED: EventKind.JOB_COMPLETED,
    JobStatus.FAILED: EventKind.JOB_FAILED,
    JobStatus.CANCELLED: EventKind.JOB_CANCELLED,
}

_EMAIL_BY_DEFAULT = frozenset(
    {
        EventKind.JOB_FAILED,
        EventKind.JOB_CANCELLED,
        EventKind.RESULTS_READY,
        EventKind.CREDENTIAL_EXPIRING,
    }
)


def job_event_kind(status: JobStatus) -> EventKind | None:
    """The event a job entering `status` makes; None for the hub's own in-between states."""
    return _JOB_KINDS.get(status)


def default_enabled(kind: EventKind, channel: Channel) -> bool:
    if channel is Channel.EMAIL:
        return kind in _EMAIL_BY_DEFAULT
    return True


def preferences(overrides: Mapping[tuple[str, str], bool]) -> dict[tuple[EventKind, Channel], bool]:
    """Every (kind, channel) with the user's choice where there is one, else the default."""
    return {
        (kind, channel): overrides.get((kind.value, channel.value), default_enabled(kind, channel))
        for kind in EventKind
        for channel in Channel
    }


def describe(kind: EventKind, payload: Mapping[str, Any]) -> tuple[str, str]:
    """A notification's title and body, from the event's payload."""
    name = str(payload.get("job_name") or payload.get("job_id") or "")
    message = str(payload.get("message") or "").strip()
    if kind is EventKind.CREDENTIAL_EXPIRING:
        service = str(payload.get("service_name") or payload.get("service_id") or "a service")
        day = str(payload.get("expires_at") or "")[:10]  # an ISO time: its date says enough
        return (
            f"Your credential for {service} expires {f'on {day}' if day else 'soon'}",
            "Renew it at the service and store the new one in the hub, or jobs sent with it "
            "will fail.",
        )
    if kind is EventKind.RESULTS_READY:
        count = payload.get("files")
        files = f"{count} result file{'' if count == 1 else 's'}" if count is not None else ""
        body = f"{files} ready to download." if files else "The results are ready to download."
        return f"Results of job '{name}' are ready", body
    titles = {
        EventKind.JOB_QUEUED: f"Job '{name}' is queued",
        EventKind.JOB_RUNNING: f"Job '{name}' is running",
        EventKind.JOB_COMPLETED: f"Job '{name}' completed",
        EventKind.JOB_FAILED: f"Job '{name}' failed",
        EventKind.JOB_CANCELLED: f"Job '{name}' was cancelled",
    }
    return titles[kind], message
