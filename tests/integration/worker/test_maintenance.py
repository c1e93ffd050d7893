"""Maintenance mode and paused services: new jobs wait in the hub, and go when it ends."""

from __future__ import annotations

from imputehub.clock import FakeClock
from imputehub.db.models import Service, User
from imputehub.domain.jobs import JobStatus
from imputehub.operations import maintenance
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import CREDENTIAL, INPUT, load_job, status_updates
from tests.support import factories
from tests.support.fake_connector import FakeConnector


async def an_admin(hub: Runtime) -> User:
    now = hub.clock.now()
    async with hub.db.session() as session:
        admin = User(
            username="root", password_hash="!", role="admin", created_at=now, updated_at=now
        )
        session.add(admin)
    return admin


async def a_job(hub: Runtime, user_id: str) -> tuple[Service, str]:
    service = await factories.make_service(hub, credential_encrypted=hub.vault.encrypt(CREDENTIAL))
    panel = await factories.make_panel(hub, service)
    stored = await factories.make_file(hub, user_id, INPUT)
    job = await factories.make_job(
        hub, user_id=user_id, service=service, panel=panel, files=[stored]
    )
    return service, job.id


async def test_jobs_are_held_during_maintenance_and_released_after(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    admin = await an_admin(hub)
    now = clock.now()
    async with hub.db.session() as session:
        await maintenance.change_settings(
            session,
            admin,
            {"maintenance": True, "maintenance_message": "disk swap"},
            origin=None,
            now=now,
        )
    _, job_id = await a_job(hub, user_id)
    await Worker(hub).run_once()
    held = await load_job(hub, job_id)
    assert held.status == JobStatus.QUEUED.value
    assert held.submit_started_at is None
    assert fake.submissions(job_id) == 0
    (update,) = await status_updates(hub, job_id)
    assert update.message == "held in the hub during maintenance: disk swap"

    clock.advance(5)
    async with hub.db.session() as session:
        await maintenance.change_settings(
            session, admin, {"maintenance": False}, origin=None, now=clock.now()
        )
    await Worker(hub).run_once()  # due at once: no waiting for the recheck
    assert fake.submissions(job_id) == 1
    assert (await load_job(hub, job_id)).submit_started_at is not None


async def test_a_paused_service_holds_only_its_own_jobs(
    hub: Runtime, fake: FakeConnector, clock: FakeClock, user_id: str
) -> None:
    admin = await an_admin(hub)
    service, job_id = await a_job(hub, user_id)
    async with hub.db.session() as session:
        row = await session.get(Service, service.id)
        assert row is not None
        await maintenance.set_paused(session, admin, row, True, origin=None, now=clock.now())
    await Worker(hub).run_once()
    assert fake.submissions(job_id) == 0
    (update,) = await status_updates(hub, job_id)
    assert update.message == f"held in the hub: an admin paused {service.name}"

    clock.advance(5)
    async with hub.db.session() as session:
        row = await session.get(Service, service.id)
        assert row is not None
        await maintenance.set_paused(session, admin, row, False, origin=None, now=clock.now())
    await Worker(hub).run_once()
    assert fake.submissions(job_id) == 1
