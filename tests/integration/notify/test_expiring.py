"""Credentials about to expire become one `credential.expiring` event each, then a notice."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Event, Service, UserServiceCredential
from imputehub.notify import expiring, relay
from imputehub.runtime import Runtime, build_runtime
from tests.support.api import Actor, make_actor
from tests.support.factories import make_service


async def own_credential(runtime: Runtime, actor: Actor, service: Service, ends: datetime) -> None:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        row = await session.scalar(
            select(UserServiceCredential).where(
                UserServiceCredential.user_id == actor.id,
                UserServiceCredential.service_id == service.id,
            )
        )
        if row is None:
            row = UserServiceCredential(
                user_id=actor.id,
                service_id=service.id,
                credential_encrypted=runtime.vault.encrypt("own-token"),
                last_four="oken",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        row.expires_at = ends


async def expiring_events(runtime: Runtime) -> list[Event]:
    async with runtime.db.session() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.kind == "credential.expiring").order_by(Event.id)
            )
        )


async def test_a_users_credential_expiring_within_a_week_is_announced_once(
    runtime: Runtime, alice: Actor, bob: Actor, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    now = clock.now()
    michigan = await make_service(runtime, name="Michigan")
    topmed = await make_service(runtime, name="TOPMed")
    h3africa = await make_service(runtime, name="H3Africa")
    await own_credential(runtime, alice, michigan, now + timedelta(days=3))
    await own_credential(runtime, alice, topmed, now + timedelta(days=10))  # not yet
    await own_credential(runtime, bob, h3africa, now - timedelta(days=1))  # already expired

    assert await expiring.announce_expiring(runtime) == 1
    assert await expiring.announce_expiring(runtime) == 0  # once per credential and date

    (event,) = await expiring_events(runtime)
    assert event.user_id == alice.id
    assert event.payload["service_name"] == "Michigan"
    assert event.payload["scope"] == "user"
    assert event.payload["expires_at"].startswith(str((now + timedelta(days=3)).date()))
    found = await _candidates(runtime)
    assert [f.dedupe_key for f in found] == [event.dedupe_key]  # same key as the outbox's

    # Alice sees it in the app once the relay has run.
    await relay.fan_out(runtime)
    page = (await client.get("/api/v1/notifications", headers=alice.headers)).json()
    (note,) = page["items"]
    assert note["kind"] == "credential.expiring"
    assert note["title"] == (
        f"Your credential for Michigan expires on {(now + timedelta(days=3)).date()}"
    )

    # Renewed, with a new date still within the week: a new notice for the new date.
    await own_credential(runtime, alice, michigan, now + timedelta(days=6))
    assert await expiring.announce_expiring(runtime) == 1
    # A week later TOPMed's credential is due too; Michigan's renewed one has expired by then.
    clock.advance(timedelta(days=5).total_seconds())
    assert await expiring.announce_expiring(runtime) == 1
    names = [e.payload["service_name"] for e in await expiring_events(runtime)]
    assert names == ["Michigan", "Michigan", "TOPMed"]


async def _candidates(runtime: Runtime) -> list[expiring.Expiring]:
    async with runtime.db.session() as session:
        return await expiring.expiring_credentials(session, now=runtime.clock.now())


async def test_a_platform_credential_expiring_tells_every_active_admin(
    runtime: Runtime, admin: Actor, alice: Actor, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    second = await make_actor(runtime, client, "root", role="admin")
    retired = await make_actor(runtime, client, "retired", role="admin")
    async with runtime.db.session() as session:
        from imputehub.db.models import User

        row = await session.get(User, retired.id)
        assert row is not None
        row.is_active = False
    ends = clock.now() + timedelta(days=2)
    await make_service(
        runtime,
        name="Michigan",
        credential_encrypted=runtime.vault.encrypt("platform"),
        credential_expires_at=ends,
    )
    # A platform expiry without a stored credential says nothing.
    await make_service(runtime, name="Empty", credential_expires_at=ends)

    assert await expiring.announce_expiring(runtime) == 2
    events = await expiring_events(runtime)
    assert sorted(e.user_id for e in events) == sorted([admin.id, second.id])
    assert all(e.payload["scope"] == "platform" for e in events)
    assert alice.id not in {e.user_id for e in events}
    assert await expiring.announce_expiring(runtime) == 0


async def test_workers_racing_write_each_notice_once(
    settings: Settings, runtime: Runtime, alice: Actor, bob: Actor, clock: FakeClock
) -> None:
    service = await make_service(runtime, name="Michigan")
    for actor in (alice, bob):
        await own_credential(runtime, actor, service, clock.now() + timedelta(days=1))
    others = [build_runtime(settings, clock=clock) for _ in range(3)]
    try:
        written = await asyncio.gather(*(expiring.announce_expiring(rt) for rt in others))
    finally:
        for rt in others:
            await rt.close()

    assert sum(written) == 2
    events = await expiring_events(runtime)
    assert sorted(e.user_id for e in events) == sorted([alice.id, bob.id])


async def test_the_timer_looks_at_most_once_per_interval(
    runtime: Runtime, alice: Actor, clock: FakeClock
) -> None:
    timer = expiring.ExpiringTimer(runtime)
    assert await timer.run_if_due(clock.now()) == 0
    service = await make_service(runtime, name="Michigan")
    await own_credential(runtime, alice, service, clock.now() + timedelta(days=1))
    assert await timer.run_if_due(clock.now()) is None  # not due yet
    clock.advance(expiring.INTERVAL.total_seconds())
    assert await timer.run_if_due(clock.now()) == 1
