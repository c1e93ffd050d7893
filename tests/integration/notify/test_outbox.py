"""Events are written with the change they report, and fanned out by the user's preferences.

A job's status change through the worker commits its event in the same transaction; a
rolled-back change leaves none. The relay turns each event into the in-app notification and
the e-mail and webhook deliveries the user wants, once, however often it runs. On PostgreSQL
event writers take turns, so event ids become visible in order (what `Last-Event-ID` needs).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import (
    Delivery,
    Event,
    Job,
    Notification,
    NotificationPreference,
    User,
    Webhook,
)
from imputehub.domain.jobs import JobStatus
from imputehub.jobs import lifecycle
from imputehub.notify import outbox, relay
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive, new_job
from tests.support.fake_connector import FakeConnector


async def make_user(runtime: Runtime, name: str, email: str | None) -> User:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(
            username=name,
            email=email,
            password_hash="!",
            role="user",
            created_at=now,
            updated_at=now,
        )
        session.add(user)
    return user


async def events_of(runtime: Runtime, job_id: str) -> list[Event]:
    async with runtime.db.session() as session:
        return list(
            await session.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id))
        )


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock, tmp_path) -> Runtime:  # type: ignore[no-untyped-def]
    fake = FakeConnector(tmp_path / "fake.json")
    runtime = build_runtime(
        settings.model_copy(update={"smtp_host": "127.0.0.1"}),
        clock=clock,
        connectors={"michigan": fake},
    )
    yield runtime
    await runtime.close()


async def test_a_job_run_by_the_worker_leaves_one_event_per_stage(
    hub: Runtime, clock: FakeClock
) -> None:
    user = await make_user(hub, "dana", "dana@example.org")
    job = await new_job(hub, user.id)

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed"
    kinds = [e.kind for e in await events_of(hub, job.id)]
    assert kinds == [
        "job.queued",
        "job.running",
        "job.completed",
        "job.results_ready",
    ]
    ready = (await events_of(hub, job.id))[-1]
    assert ready.payload["job_name"] == job.name
    assert ready.payload["files"] >= 1
    assert all(e.user_id == user.id for e in await events_of(hub, job.id))


async def test_a_change_rolled_back_leaves_no_event(hub: Runtime) -> None:
    user = await make_user(hub, "dana", None)
    job = await new_job(hub, user.id)
    before = len(await events_of(hub, job.id))

    async def change_then_fail() -> None:
        async with hub.db.session() as session:
            row = await session.get(Job, job.id)
            assert row is not None
            lifecycle.set_status(session, row, JobStatus.QUEUED, now=hub.clock.now())
            await session.flush()
            raise RuntimeError("the transaction fails after the change")

    with pytest.raises(RuntimeError):
        await change_then_fail()

    assert len(await events_of(hub, job.id)) == before


async def add_webhook(hub: Runtime, user: User, kinds: list[str]) -> Webhook:
    async with hub.db.session() as session:
        hook = Webhook(
            user_id=user.id,
            url="https://hooks.example.org/x",
            event_kinds=kinds,
            secret_encrypted=hub.vault.encrypt("s"),
            created_at=hub.clock.now(),
        )
        session.add(hook)
    return hook


async def record(hub: Runtime, user: User, job_id: str, status: JobStatus, now: datetime) -> None:
    async with hub.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        outbox.job_changed(session, job, status, now=now, message="")


async def test_the_relay_follows_preferences_and_never_repeats_itself(hub: Runtime) -> None:
    user = await make_user(hub, "dana", "dana@example.org")
    job = await new_job(hub, user.id)
    everything = await add_webhook(hub, user, [])
    failures_only = await add_webhook(hub, user, ["job.failed"])
    async with hub.db.session() as session:
        # Dana wants no in-app notice of queued jobs, and e-mail when they run.
        session.add(
            NotificationPreference(
                user_id=user.id, kind="job.queued", channel="in_app", enabled=False
            )
        )
        session.add(
            NotificationPreference(
                user_id=user.id, kind="job.running", channel="email", enabled=True
            )
        )
    now = hub.clock.now()
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED):
        await record(hub, user, job.id, status, now)

    assert await relay.fan_out(hub) == 3
    assert await relay.fan_out(hub) == 0  # nothing left: a second relay adds nothing

    async with hub.db.session() as session:
        notes = list(await session.scalars(select(Notification).order_by(Notification.created_at)))
        deliveries = list(await session.scalars(select(Delivery).order_by(Delivery.id)))
    assert sorted(n.kind for n in notes) == ["job.failed", "job.running"]
    assert all(n.user_id == user.id and n.read_at is None for n in notes)
    sent = {(d.channel, d.target, kind) for d in deliveries for kind in [await kind_of(hub, d)]}
    assert sent == {
        ("webhook", everything.id, "job.queued"),
        ("webhook", everything.id, "job.running"),
        ("webhook", everything.id, "job.failed"),
        ("webhook", failures_only.id, "job.failed"),
        ("email", "dana@example.org", "job.running"),  # turned on by Dana
        ("email", "dana@example.org", "job.failed"),  # on by default
    }
    assert all(d.status == "pending" and d.next_run_at is not None for d in deliveries)


async def kind_of(hub: Runtime, delivery: Delivery) -> str:
    async with hub.db.session() as session:
        event = await session.get(Event, delivery.event_id)
        assert event is not None
        return event.kind


async def test_no_e_mail_is_queued_without_an_smtp_server_or_an_address(
    runtime: Runtime,
) -> None:
    with_address = await make_user(runtime, "dana", "dana@example.org")
    without = await make_user(runtime, "eve", None)
    for user in (with_address, without):
        job = await new_job(runtime, user.id)
        await record(runtime, user, job.id, JobStatus.FAILED, runtime.clock.now())

    assert await relay.fan_out(runtime) == 2

    async with runtime.db.session() as session:
        channels = list(await session.scalars(select(Delivery.channel)))
        notes = list(await session.scalars(select(Notification.user_id)))
    assert channels == []  # runtime's settings name no SMTP server
    assert sorted(notes) == sorted([with_address.id, without.id])


async def test_a_second_event_writer_waits_for_the_first_to_commit(hub: Runtime) -> None:
    # PostgreSQL: the advisory lock; SQLite: its single writer.
    user = await make_user(hub, "dana", None)
    first_job = await new_job(hub, user.id)
    second_job = await new_job(hub, user.id)
    now = hub.clock.now()
    first_done = asyncio.Event()

    async def second_writer() -> int:
        async with hub.db.session() as session:
            job = await session.get(Job, second_job.id)
            assert job is not None
            outbox.job_changed(session, job, JobStatus.QUEUED, now=now, message="")
            await session.flush()  # waits here for the first writer's commit
            assert first_done.is_set(), "the second writer got an id before the first committed"
            rows = list(
                await session.scalars(select(Event.id).where(Event.job_id == second_job.id))
            )
        return rows[-1]

    async with hub.db.session() as session:
        job = await session.get(Job, first_job.id)
        assert job is not None
        outbox.job_changed(session, job, JobStatus.QUEUED, now=now, message="")
        await session.flush()
        first_id = (await events_of_in(session, first_job.id))[-1]
        other = asyncio.create_task(second_writer())
        finished, _ = await asyncio.wait({other}, timeout=1.0)
        assert not finished, "the second writer did not wait for the first"
        first_done.set()
    second_id = await other

    assert second_id > first_id


async def events_of_in(session, job_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    return list(await session.scalars(select(Event.id).where(Event.job_id == job_id)))
