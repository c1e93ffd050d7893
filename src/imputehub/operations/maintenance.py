"""Maintenance mode and per-service pauses: jobs that wait in the hub, and letting them go.

A held job is one the worker would submit now, kept back: it stays queued in the hub with
its reason as its message and looks again every HOLD_RECHECK_SECONDS; ending maintenance or
resuming a service makes the held jobs due at once. Jobs already at a service carry on:
holding only ever stops new submissions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.db.models import Job, Service, User
from imputehub.domain.errors import HubInMaintenance
from imputehub.domain.jobs import TERMINAL, Step
from imputehub.monitoring import audit
from imputehub.operations import hub_settings
from imputehub.operations.hub_settings import HubSettings

HOLD_RECHECK_SECONDS = 60.0
_TERMINAL = tuple(status.value for status in TERMINAL)


def hold_reason(settings: HubSettings, service: Service) -> str | None:
    """Why a job for `service` is not submitted now; None when nothing holds it."""
    if settings.holds_jobs:
        detail = f": {settings.maintenance_message}" if settings.maintenance_message else ""
        return f"held in the hub during maintenance{detail}"
    if service.is_paused:
        return f"held in the hub: an admin paused {service.name}"
    return None


async def job_held(session: AsyncSession, job: Job) -> str | None:
    """Why the worker must not submit `job` now (read in its submit transaction); None: go."""
    service = await session.get(Service, job.service_id)
    assert service is not None  # a foreign key
    return hold_reason(await hub_settings.load(session), service)


def refuse_if_closed(settings: HubSettings) -> None:
    """New jobs during maintenance, when the admins chose to refuse them."""
    if settings.refuses_jobs:
        detail = f" ({settings.maintenance_message})" if settings.maintenance_message else ""
        raise HubInMaintenance(
            f"the hub is in maintenance and takes no new jobs{detail}; try again later"
        )


async def release_held(
    session: AsyncSession, *, now: datetime, service_id: str | None = None
) -> int:
    """Make every job that waits to be submitted due now (all, or one service's)."""
    conditions: list[Any] = [
        Job.status.not_in(_TERMINAL),
        Job.submit_started_at.is_(None),
        Job.next_step == Step.SUBMIT.value,
        Job.next_run_at > now,
    ]
    if service_id is not None:
        conditions.append(Job.service_id == service_id)
    result = await session.execute(
        update(Job)
        .where(*conditions)
        .values(next_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def change_settings(
    session: AsyncSession,
    admin: User,
    changes: dict[str, Any],
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> HubSettings:
    """An admin's change to the hub settings; held jobs go as soon as nothing holds them."""
    before, after = await hub_settings.change(session, admin, changes, origin=origin, now=now)
    if before.holds_jobs and not after.holds_jobs:
        await release_held(session, now=now)
    return after


async def set_paused(
    session: AsyncSession,
    admin: User,
    service: Service,
    paused: bool,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Service:
    require_admin(admin)
    if service.is_paused == paused:
        return service
    service.is_paused = paused
    service.updated_at = now
    if not paused:
        await release_held(session, now=now, service_id=service.id)
    await audit.record(
        session,
        action="service_paused" if paused else "service_resumed",
        actor=admin,
        now=now,
        target_type="service",
        target_id=service.id,
        origin=origin,
        details={"slug": service.slug},
    )
    return service
