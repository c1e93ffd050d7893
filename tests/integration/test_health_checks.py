"""Health checks against a fake connector: results, history, leases and racing workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.base import Health, HealthStatus, PanelInfo, ServiceInfo
from imputehub.db.models import Service, ServiceHealthCheck
from imputehub.domain.errors import NotFound, TransientServiceError
from imputehub.registry.health import (
    HISTORY_KEEP,
    run_due_health_checks,
    run_health_check,
)
from imputehub.runtime import Runtime, build_runtime
from tests.support.factories import make_service

HANG = "hang"


class FakeConnector:
    """Answers health checks as told, per service slug, and counts every call."""

    def __init__(self) -> None:
        self.answers: dict[str, Health | BaseException | str] = {}
        self.default: Health | BaseException | str = Health(
            status=HealthStatus.HEALTHY, response_time_ms=12.5
        )
        self.calls: list[str] = []

    async def check_health(self, service: ServiceInfo) -> Health:
        self.calls.append(service.slug)
        answer = self.answers.get(service.slug, self.default)
        # Yield so that concurrent callers really interleave.
        await asyncio.sleep(0)
        if answer == HANG:
            await asyncio.Event().wait()
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, Health)
        return answer

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        return []


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "health_check_timeout_seconds": 0.05,
            "health_check_interval_seconds": 300.0,
            "worker_batch_size": 4,
        }
    )


@pytest.fixture
def fake(runtime: Runtime) -> FakeConnector:
    connector = FakeConnector()
    runtime.connectors = {"michigan": connector}
    return connector


async def stored(runtime: Runtime, service_id: str) -> Service:
    async with runtime.db.session() as session:
        service = await session.get(Service, service_id)
        assert service is not None
        return service


async def history(runtime: Runtime, service_id: str) -> list[ServiceHealthCheck]:
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(ServiceHealthCheck)
            .where(ServiceHealthCheck.service_id == service_id)
            .order_by(ServiceHealthCheck.id)
        )
        return list(rows)


async def test_healthy_answer_is_recorded_and_next_check_scheduled(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    service = await make_service(runtime, health_status="unknown", health_next_run_at=clock.now())
    result = await run_health_check(runtime, service.id)

    assert result.status == "healthy"
    assert result.response_time_ms == 12.5
    assert result.checked_at == clock.now()
    saved = await stored(runtime, service.id)
    assert saved.health_status == "healthy"
    assert saved.response_time_ms == 12.5
    assert saved.last_checked_at == clock.now()
    assert saved.health_next_run_at == clock.now() + timedelta(seconds=300)
    [row] = await history(runtime, service.id)
    assert (row.status, row.response_time_ms, row.checked_at) == ("healthy", 12.5, clock.now())


async def test_check_by_slug_and_unknown_service(runtime: Runtime, fake: FakeConnector) -> None:
    service = await make_service(runtime, slug="by-slug")
    assert (await run_health_check(runtime, "by-slug")).service_id == service.id
    with pytest.raises(NotFound):
        await run_health_check(runtime, "no-such-service")


async def test_response_time_is_measured_when_the_connector_gives_none(
    runtime: Runtime, fake: FakeConnector
) -> None:
    service = await make_service(runtime)
    fake.default = Health(status=HealthStatus.HEALTHY)
    result = await run_health_check(runtime, service.id)
    assert result.response_time_ms is not None
    assert result.response_time_ms >= 0


async def test_maintenance_is_recorded_as_such(runtime: Runtime, fake: FakeConnector) -> None:
    service = await make_service(runtime)
    fake.default = Health(status=HealthStatus.MAINTENANCE, message="down for upgrade until 5pm")
    await run_health_check(runtime, service.id)
    saved = await stored(runtime, service.id)
    assert (saved.health_status, saved.health_message) == (
        "maintenance",
        "down for upgrade until 5pm",
    )


async def test_connector_error_records_unhealthy_with_its_message(
    runtime: Runtime, fake: FakeConnector
) -> None:
    service = await make_service(runtime)
    fake.default = TransientServiceError("the service answered 503 Service Unavailable")
    result = await run_health_check(runtime, service.id)
    assert result.status == "unhealthy"
    assert result.message == "the service answered 503 Service Unavailable"
    assert result.response_time_ms is None
    saved = await stored(runtime, service.id)
    assert saved.health_status == "unhealthy"
    assert saved.health_message == "the service answered 503 Service Unavailable"


async def test_foreign_exception_text_never_reaches_the_record(
    runtime: Runtime, fake: FakeConnector
) -> None:
    service = await make_service(runtime)
    fake.default = RuntimeError("GET https://x/?token=hunter2 failed")
    result = await run_health_check(runtime, service.id)
    assert result.status == "unhealthy"
    assert result.message == "the health check failed unexpectedly (RuntimeError)"
    [row] = await history(runtime, service.id)
    assert "hunter2" not in (row.message or "")


async def test_timeout_records_unhealthy(runtime: Runtime, fake: FakeConnector) -> None:
    service = await make_service(runtime)
    fake.default = HANG
    result = await run_health_check(runtime, service.id)
    assert result.status == "unhealthy"
    assert result.message == "the service did not answer within 0.05 seconds"
    assert (await stored(runtime, service.id)).health_status == "unhealthy"


async def test_no_connector_records_unknown(runtime: Runtime, fake: FakeConnector) -> None:
    service = await make_service(runtime, api_type="dnastack", health_status="healthy")
    result = await run_health_check(runtime, service.id)
    assert result.status == "unknown"
    assert result.message == "no connector for api_type 'dnastack' in this version of imputehub"
    assert fake.calls == []
    assert (await stored(runtime, service.id)).health_status == "unknown"


async def test_history_keeps_only_the_newest_rows(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    service = await make_service(runtime)
    other = await make_service(runtime)
    start = clock.now() - timedelta(days=10)
    async with runtime.db.session() as session:
        session.add_all(
            ServiceHealthCheck(
                service_id=sid,
                checked_at=start + timedelta(minutes=i),
                status="healthy",
                message=f"old {i}",
            )
            for sid in (service.id, other.id)
            for i in range(HISTORY_KEEP + 4)
        )
    await run_health_check(runtime, service.id)

    rows = await history(runtime, service.id)
    assert len(rows) == HISTORY_KEEP
    messages = {row.message for row in rows}
    # The five oldest went; the newest old one and the fresh check stayed.
    assert not messages & {f"old {i}" for i in range(5)}
    assert f"old {HISTORY_KEEP + 3}" in messages
    assert rows[-1].checked_at == clock.now()
    # Another service's history is not touched.
    assert len(await history(runtime, other.id)) == HISTORY_KEEP + 4


async def test_due_checks_cover_active_due_services_only(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    now = clock.now()
    await make_service(runtime, slug="due-now", health_next_run_at=now)
    await make_service(runtime, slug="never-checked", health_next_run_at=None)
    await make_service(runtime, slug="overdue", health_next_run_at=now - timedelta(hours=1))
    await make_service(runtime, slug="later", health_next_run_at=now + timedelta(seconds=60))
    await make_service(runtime, slug="inactive", is_active=False, health_next_run_at=now)

    assert await run_due_health_checks(runtime, worker_id="w1") == 3
    assert sorted(fake.calls) == ["due-now", "never-checked", "overdue"]

    # Nothing is due again until the interval has passed.
    assert await run_due_health_checks(runtime, worker_id="w1") == 0
    clock.advance(60)
    assert await run_due_health_checks(runtime, worker_id="w1") == 1
    assert fake.calls[-1] == "later"
    clock.advance(300)
    assert await run_due_health_checks(runtime, worker_id="w1") == 4
    assert "inactive" not in fake.calls


async def test_due_checks_release_their_lease(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    service = await make_service(runtime, health_next_run_at=clock.now())
    assert await run_due_health_checks(runtime, worker_id="w1") == 1
    saved = await stored(runtime, service.id)
    assert saved.health_lease_owner is None
    assert saved.health_lease_expires_at is None


async def test_a_live_lease_is_respected_and_an_expired_one_taken_over(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    now = clock.now()
    await make_service(
        runtime,
        slug="held",
        health_next_run_at=now,
        health_lease_owner="crashed-worker",
        health_lease_expires_at=now + timedelta(seconds=30),
    )
    assert await run_due_health_checks(runtime, worker_id="w2") == 0
    assert fake.calls == []
    clock.advance(30)
    assert await run_due_health_checks(runtime, worker_id="w2") == 1
    assert fake.calls == ["held"]


async def test_on_demand_check_leaves_a_workers_lease_alone(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    expires = clock.now() + timedelta(seconds=30)
    service = await make_service(runtime, health_lease_owner="w1", health_lease_expires_at=expires)
    await run_health_check(runtime, service.id)
    saved = await stored(runtime, service.id)
    assert (saved.health_lease_owner, saved.health_lease_expires_at) == ("w1", expires)


async def test_a_hanging_service_does_not_hold_up_the_batch(
    runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    for slug in ("slow", "quick-1", "quick-2"):
        await make_service(runtime, slug=slug, health_next_run_at=clock.now())
    fake.answers["slow"] = HANG
    assert await run_due_health_checks(runtime, worker_id="w1") == 3
    async with runtime.db.session() as session:
        rows = (await session.execute(select(Service.slug, Service.health_status))).all()
    statuses = {slug: status for slug, status in rows}
    assert statuses == {"slow": "unhealthy", "quick-1": "healthy", "quick-2": "healthy"}


@pytest.fixture
async def second_runtime(
    settings: Settings, clock: FakeClock, fake: FakeConnector
) -> AsyncIterator[Runtime]:
    """Another process's view: its own engine and connections to the same database."""
    other = build_runtime(settings, clock=clock, connectors={"michigan": fake})
    yield other
    await other.close()


async def test_two_workers_never_check_the_same_service_twice(
    runtime: Runtime, second_runtime: Runtime, fake: FakeConnector, clock: FakeClock
) -> None:
    slugs = [f"svc-{i:02d}" for i in range(11)]
    for slug in slugs:
        await make_service(runtime, slug=slug, health_next_run_at=clock.now())

    totals = [0, 0]
    for _ in range(20):
        # Each call claims at most worker_batch_size (4): both must keep competing.
        a, b = await asyncio.gather(
            run_due_health_checks(runtime, worker_id="worker-a"),
            run_due_health_checks(second_runtime, worker_id="worker-b"),
        )
        totals[0] += a
        totals[1] += b
        if a == b == 0:
            break

    assert sorted(fake.calls) == slugs  # each service exactly once
    assert sum(totals) == len(slugs)
    async with runtime.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(ServiceHealthCheck))
    assert count == len(slugs)
