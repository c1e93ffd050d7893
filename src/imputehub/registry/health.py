"""Service health checks: on demand, and periodically by workers through leases.

A check reads the service in one transaction, asks the connector OUTSIDE any transaction
(a slow service must not hold database locks), then records the result in a second one.
Workers claim due services with one UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED) statement, so concurrent workers never check the same service at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.connectors.base import Health, HealthStatus, ServiceInfo
from imputehub.db.models import Service, ServiceHealthCheck
from imputehub.domain.errors import ImputehubError, NotFound
from imputehub.registry import lookup
from imputehub.runtime import Runtime

log = logging.getLogger("imputehub.registry.health")

HISTORY_KEEP = 1000
MAX_MESSAGE_LENGTH = 1000


@dataclass(frozen=True, kw_only=True)
class HealthCheckResult:
    service_id: str
    checked_at: datetime
    status: str
    response_time_ms: float | None
    message: str | None
    queue_size: int | None = None


async def run_health_check(runtime: Runtime, service_id: str) -> HealthCheckResult:
    """Check one service now (by id or slug) and record the result."""
    return await _check(runtime, service_id, lease_owner=None)


async def run_due_health_checks(runtime: Runtime, *, worker_id: str) -> int:
    """Claim services whose health check is due, check them; return how many were checked."""
    claimed = await _claim_due(runtime, worker_id=worker_id)
    if not claimed:
        return 0
    # Concurrently: each check is bounded by the timeout, so the batch fits in its lease.
    outcomes = await asyncio.gather(
        *(_check(runtime, sid, lease_owner=worker_id) for sid in claimed),
        return_exceptions=True,
    )
    checked = 0
    for service_id, outcome in zip(claimed, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            # The lease expires and a later round tries again.
            log.error(
                "health check could not be recorded",
                extra={
                    "action": "service_health_check_failed",
                    "service_id": service_id,
                    "error": type(outcome).__name__,
                },
            )
        else:
            checked += 1
    return checked


async def _claim_due(runtime: Runtime, *, worker_id: str) -> list[str]:
    settings = runtime.settings
    now = runtime.clock.now()
    expires = now + timedelta(
        seconds=settings.health_check_timeout_seconds + settings.worker_lease_seconds
    )
    due = (
        select(Service.id)
        .where(
            Service.is_active.is_(True),
            or_(Service.health_next_run_at.is_(None), Service.health_next_run_at <= now),
            or_(
                Service.health_lease_owner.is_(None),
                Service.health_lease_expires_at.is_(None),
                Service.health_lease_expires_at <= now,
            ),
        )
        .order_by(Service.health_next_run_at.nulls_first(), Service.id)
        .limit(settings.worker_batch_size)
        # Renders FOR UPDATE SKIP LOCKED on PostgreSQL and nothing on SQLite, where the
        # single UPDATE statement below is atomic by itself.
        .with_for_update(skip_locked=True)
    )
    claim = (
        update(Service)
        .where(Service.id.in_(due.scalar_subquery()))
        .values(health_lease_owner=worker_id, health_lease_expires_at=expires)
        .returning(Service.id)
        .execution_options(synchronize_session=False)
    )
    async with runtime.db.session() as session:
        return list((await session.execute(claim)).scalars())


async def _check(runtime: Runtime, ref: str, *, lease_owner: str | None) -> HealthCheckResult:
    async with runtime.db.session() as session:
        service = await lookup.get_service(session, ref, include_inactive=True)
        info = lookup.service_info(service)
    health = await _ask_connector(runtime, info)
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        current = await session.get(Service, info.id)
        if current is None:
            raise NotFound(f"no service '{ref}'")
        _record(runtime, session, current, health, now=now, lease_owner=lease_owner)
        await session.flush()
        await _prune_history(session, current.id)
    log.info(
        "service health checked",
        extra={
            "action": "service_health_checked",
            "service_id": info.id,
            "status": health.status.value,
        },
    )
    return HealthCheckResult(
        service_id=info.id,
        checked_at=now,
        status=health.status.value,
        response_time_ms=health.response_time_ms,
        message=health.message,
        queue_size=health.queue_size,
    )


async def _ask_connector(runtime: Runtime, info: ServiceInfo) -> Health:
    """The connector's answer, or the reason there is none, as a Health value."""
    connector = runtime.connectors.get(info.api_type)
    if connector is None:
        return Health(
            status=HealthStatus.UNKNOWN,
            message=f"no connector for api_type '{info.api_type}' in this version of imputehub",
        )
    timeout = runtime.settings.health_check_timeout_seconds
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            health = await connector.check_health(info)
    except TimeoutError:
        return Health(
            status=HealthStatus.UNHEALTHY,
            message=f"the service did not answer within {timeout:g} seconds",
        )
    except ImputehubError as exc:
        # Connectors word their errors for people and keep secrets out of them.
        return Health(status=HealthStatus.UNHEALTHY, message=exc.message)
    except Exception as exc:
        # A foreign exception's text may carry anything (URLs, headers): keep only its kind.
        log.warning(
            "connector failed during a health check",
            extra={
                "action": "service_health_connector_error",
                "service_id": info.id,
                "error": type(exc).__name__,
            },
        )
        return Health(
            status=HealthStatus.UNHEALTHY,
            message=f"the health check failed unexpectedly ({type(exc).__name__})",
        )
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return Health(
        status=HealthStatus(health.status),
        response_time_ms=(
            health.response_time_ms if health.response_time_ms is not None else elapsed_ms
        ),
        message=health.message,
        queue_size=health.queue_size,
    )


def _record(
    runtime: Runtime,
    session: AsyncSession,
    service: Service,
    health: Health,
    *,
    now: datetime,
    lease_owner: str | None,
) -> None:
    message = health.message[:MAX_MESSAGE_LENGTH] if health.message else None
    session.add(
        ServiceHealthCheck(
            service_id=service.id,
            checked_at=now,
            status=health.status.value,
            response_time_ms=health.response_time_ms,
            message=message,
            queue_size=health.queue_size,
        )
    )
    service.health_status = health.status.value
    service.health_message = message
    service.response_time_ms = health.response_time_ms
    service.queue_size = health.queue_size
    service.last_checked_at = now
    service.health_next_run_at = now + timedelta(
        seconds=runtime.settings.health_check_interval_seconds
    )
    # An on-demand check leaves a worker's lease alone; the worker releases its own.
    if lease_owner is not None and service.health_lease_owner == lease_owner:
        service.health_lease_owner = None
        service.health_lease_expires_at = None


async def _prune_history(session: AsyncSession, service_id: str) -> None:
    """Keep the newest HISTORY_KEEP checks of the service."""
    newest = (
        select(ServiceHealthCheck.id)
        .where(ServiceHealthCheck.service_id == service_id)
        .order_by(ServiceHealthCheck.checked_at.desc(), ServiceHealthCheck.id.desc())
        .limit(HISTORY_KEEP)
    )
    await session.execute(
        delete(ServiceHealthCheck)
        .where(
            ServiceHealthCheck.service_id == service_id,
            ServiceHealthCheck.id.not_in(newest.scalar_subquery()),
        )
        .execution_options(synchronize_session=False)
    )
