"""The outbox: events written in the same transaction as the change they report.

Nothing is sent here. A change that commits has its event; one that rolls back has none.
The worker later fans each event out (`relay.py`) and delivers it (`delivery.py`); the live
streams read the same rows (`api/events.py`).

Ordering for the live streams: a client resumes with `Last-Event-ID`, i.e. "everything with
a larger id". On PostgreSQL ids come from a sequence at insert time but become visible at
commit, so a reader could see id 7 before id 6 commits and then skip 6 for ever. Every
transaction that writes an event therefore first takes one transaction-scoped advisory lock
(`_serialise_event_writers`): event writers commit one after the other, so ids become visible
in order. Those transactions are short (a status change), so the lock costs little. SQLite
has one writer at a time anyway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from imputehub.db.models import Event, Job
from imputehub.domain.jobs import JobStatus
from imputehub.domain.notifications import EventKind, job_event_kind

# Any fixed 64-bit number; names the one lock all event writers share.
EVENT_WRITERS_LOCK = 0x696D707574656876  # "imputehv"


def job_changed(
    session: AsyncSession, job: Job, status: JobStatus, *, now: datetime, message: str
) -> None:
    """Record that `job` entered `status` (if users hear of that status)."""
    kind = job_event_kind(status)
    if kind is None:
        return
    session.add(
        Event(
            user_id=job.user_id,
            job_id=job.id,
            kind=kind.value,
            payload=_job_payload(job, status, message),
            created_at=now,
        )
    )


def results_ready(session: AsyncSession, job: Job, *, now: datetime, files: int) -> None:
    """Record that a completed job's results are stored and ready to download."""
    payload = _job_payload(job, JobStatus.COMPLETED, "") | {"files": files}
    session.add(
        Event(
            user_id=job.user_id,
            job_id=job.id,
            kind=EventKind.RESULTS_READY.value,
            payload=payload,
            created_at=now,
        )
    )


def credential_expiring(
    session: AsyncSession,
    *,
    user_id: str,
    service_id: str,
    service_name: str,
    scope: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Record, once per credential and expiry date, that a credential expires soon."""
    session.add(
        Event(
            user_id=user_id,
            kind=EventKind.CREDENTIAL_EXPIRING.value,
            payload={
                "service_id": service_id,
                "service_name": service_name,
                "scope": scope,
                "expires_at": expires_at.isoformat(),
            },
            dedupe_key=credential_dedupe_key(scope, user_id, service_id, expires_at),
            created_at=now,
        )
    )


def credential_dedupe_key(scope: str, user_id: str, service_id: str, expires_at: datetime) -> str:
    """One expiring-credential event per credential, person and expiry date."""
    return f"credential-expiring:{scope}:{user_id}:{service_id}:{expires_at.date()}"


def _job_payload(job: Job, status: JobStatus, message: str) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "job_name": job.name,
        "status": status.value,
        "progress": job.progress,
        "service_id": job.service_id,
        "parent_id": job.parent_id,
        # False: a federated job's child whose owner hears of the parent only; the live
        # streams show its events, notifications do not (relay.py).
        "notify": job.notify,
        "message": message,
        "error_message": job.error_message if status is JobStatus.FAILED else None,
    }


@event.listens_for(Session, "before_flush")
def _serialise_event_writers(session: Session, context: UOWTransaction, instances: Any) -> None:
    """Take the event writers' lock before a new event gets its id (PostgreSQL only)."""
    if not any(isinstance(obj, Event) for obj in session.new):
        return
    if session.get_bind().dialect.name != "postgresql":
        return
    if session.info.get("event_lock_held"):
        return
    session.execute(select(func.pg_advisory_xact_lock(EVENT_WRITERS_LOCK)))
    session.info["event_lock_held"] = True


@event.listens_for(Session, "after_transaction_end")
def _lock_released(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction: the xact lock is gone
        session.info.pop("event_lock_held", None)
