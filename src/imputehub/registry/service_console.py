"""What the admin console's service pages need beyond registry/services.py: register, edit
and deactivate with the same audit entries the REST routes write, every service (inactive
ones too) with the hub's load and slots on it, and the health chart's geometry.

The REST routes (api/services.py) and the console's pages both call register, edit and
deactivate, so both doors leave one trail.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.accounts.vault import Vault
from imputehub.connectors.base import HealthStatus
from imputehub.db.models import Job, Service, ServiceHealthCheck, User
from imputehub.domain.jobs import ACTIVE
from imputehub.domain.slots import slot_limit
from imputehub.jobs import slots
from imputehub.monitoring import audit
from imputehub.registry import services


async def _audit(
    session: AsyncSession,
    actor: User,
    action: str,
    service: Service,
    fields: Collection[str],
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> None:
    await audit.record_change(
        session,
        action=action,
        actor=actor,
        target_type="service",
        target_id=service.id,
        slug=service.slug,
        fields=fields,
        origin=origin,
        now=now,
    )


async def register(
    session: AsyncSession,
    vault: Vault,
    admin: User,
    data: services.ServiceInput,
    *,
    fields: Collection[str],
    origin: audit.Origin | None,
    now: datetime,
) -> Service:
    """Register a service and audit it as POST /services does (`fields`: those given)."""
    service = await services.create_service(session, vault, admin, data, now=now)
    await _audit(session, admin, "service_created", service, fields, origin=origin, now=now)
    return service


async def edit(
    session: AsyncSession,
    vault: Vault,
    admin: User,
    ref: str,
    changes: Mapping[str, Any],
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Service:
    """Change the fields in `changes` and audit it as PATCH /services/{ref} does."""
    service = await services.update_service(session, vault, admin, ref, changes, now=now)
    await _audit(session, admin, "service_updated", service, set(changes), origin=origin, now=now)
    return service


async def deactivate(
    session: AsyncSession, admin: User, ref: str, *, origin: audit.Origin | None, now: datetime
) -> Service:
    """Deactivate and audit it as DELETE /services/{ref} does (the target is `ref`)."""
    service = await services.deactivate_service(session, admin, ref, now=now)
    await audit.record(
        session,
        action="service_deactivated",
        actor=admin,
        now=now,
        target_type="service",
        target_id=ref,
        origin=origin,
    )
    return service


@dataclass(frozen=True, kw_only=True)
class ServiceRow:
    """A service with the hub's load on it, for the admins' list."""

    service: Service
    active_jobs: int  # the hub's jobs for it that have not ended, everyone's
    slots_in_use: int  # jobs submitted with the platform credential holding a slot
    slot_limit: int | None  # jobs one account may run there at once; None: no limit known

    @property
    def credential_set(self) -> bool:
        return self.service.credential_encrypted is not None


async def service_rows(session: AsyncSession, admin: User) -> list[ServiceRow]:
    """Every service, active first, with its load (admins)."""
    require_admin(admin)
    found = list(
        await session.scalars(
            select(Service).order_by(Service.is_active.desc(), Service.name, Service.slug)
        )
    )
    active = await session.execute(
        select(Job.service_id, func.count())
        .where(Job.status.in_([s.value for s in ACTIVE]))
        .group_by(Job.service_id)
    )
    active_counts = {service_id: int(count) for service_id, count in active}
    holding_counts = await slots.platform_slots_in_use(session)
    return [
        ServiceRow(
            service=s,
            active_jobs=active_counts.get(s.id, 0),
            slots_in_use=holding_counts.get(s.id, 0),
            slot_limit=slot_limit(s.api_type, s.api_config or {}),
        )
        for s in found
    ]


async def service_row(session: AsyncSession, admin: User, ref: str) -> ServiceRow:
    """One service (by id or slug, inactive too) with its load."""
    service = await services.get_service(session, admin, ref)
    for row in await service_rows(session, admin):
        if row.service.id == service.id:
            return row
    raise AssertionError("the service was just read")  # pragma: no cover


# --- the health chart -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ChartPoint:
    x: float
    y: float
    failed: bool  # any status but healthy
    check: ServiceHealthCheck


@dataclass(frozen=True, kw_only=True)
class HealthChart:
    """Response time over the checks, oldest on the left; failed checks marked."""

    width: int
    height: int
    top: float  # the response time at the chart's top edge, ms
    points: tuple[ChartPoint, ...]
    line: str  # the polyline through the answered checks ("x,y x,y ...")
    failed: int

    @property
    def baseline(self) -> float:
        return self.height - CHART_PAD


CHART_WIDTH = 600
CHART_HEIGHT = 160
CHART_PAD = 12


def _nice_top(largest: float) -> float:
    """A round figure at or above `largest` for the chart's top (1, 2 or 5 times a power of 10)."""
    if largest <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= largest:
        step *= 10
    while step > largest:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= largest:
            return step * factor
    return step * 10  # pragma: no cover


def health_chart(
    checks: Sequence[ServiceHealthCheck],
    *,
    width: int = CHART_WIDTH,
    height: int = CHART_HEIGHT,
) -> HealthChart:
    """The chart of `checks` (given newest first, as health_history returns them)."""
    ordered = list(reversed(checks))
    times = [c.response_time_ms for c in ordered if c.response_time_ms is not None]
    top = _nice_top(max(times, default=0.0))
    inner_w = width - 2 * CHART_PAD
    inner_h = height - 2 * CHART_PAD
    step = inner_w / (len(ordered) - 1) if len(ordered) > 1 else 0.0
    points = []
    for index, check in enumerate(ordered):
        x = CHART_PAD + index * step if len(ordered) > 1 else width / 2
        ms = check.response_time_ms
        # A check without a time (no answer) sits on the baseline.
        y = height - CHART_PAD - (inner_h * min(ms, top) / top if ms is not None else 0.0)
        failed = check.status != HealthStatus.HEALTHY.value
        points.append(ChartPoint(x=round(x, 1), y=round(y, 1), failed=failed, check=check))
    line = " ".join(f"{p.x},{p.y}" for p in points if p.check.response_time_ms is not None)
    return HealthChart(
        width=width,
        height=height,
        top=top,
        points=tuple(points),
        line=line,
        failed=sum(1 for p in points if p.failed),
    )
