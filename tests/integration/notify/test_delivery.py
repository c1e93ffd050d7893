"""Deliveries reach real receivers (an HTTP server and an SMTP server on loopback): signed,
retried with backoff until accepted or given up, sent again by another worker when the one
sending dies, and recorded `sent` exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Delivery, Job, NotificationPreference, User, Webhook
from imputehub.domain.jobs import JobStatus
from imputehub.domain.notifications import EventKind
from imputehub.notify import delivery, outbox, relay, webhooks
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.processes import start_worker, wait_until
from tests.integration.worker.support import drive, eventually, load_job, new_job
from tests.support.api import make_actor
from tests.support.fake_connector import FakeConnector
from tests.support.smtp_server import smtp_server
from tests.support.webhook_receiver import Receiver, receiving

BASE = 10.0  # notify_retry_base_seconds in these tests


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allow_private": True,  # the receivers listen on loopback, over http
            "notify_retry_base_seconds": BASE,
            "notify_retry_max_seconds": 60.0,
            "notify_max_attempts": 4,
            "public_url": "https://hub.example.org",
        }
    )


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock, tmp_path) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    runtime = build_runtime(
        settings, clock=clock, connectors={"michigan": FakeConnector(tmp_path / "fake.json")}
    )
    yield runtime
    await runtime.close()


async def make_user(hub: Runtime, name: str) -> User:
    now = hub.clock.now()
    async with hub.db.session() as session:
        user = User(
            username=name,
            email=f"{name}@example.org",
            password_hash="!",
            role="user",
            created_at=now,
            updated_at=now,
        )
        session.add(user)
    return user


async def register(hub: Runtime, user: User, url: str) -> webhooks.CreatedWebhook:
    async with hub.db.session() as session:
        return await webhooks.create_webhook(
            session,
            hub.vault,
            user_id=user.id,
            url=url,
            description="",
            event_kinds=[],
            allow_private=hub.settings.webhook_allow_private,
            now=hub.clock.now(),
        )


async def job_fails(hub: Runtime, user: User) -> Job:
    """A job of `user` fails: one job.failed event, fanned out into its deliveries."""
    job = await new_job(hub, user.id)
    async with hub.db.session() as session:
        row = await session.get(Job, job.id)
        assert row is not None
        row.error_message = "Chromosome 23 is not supported"
        row.status = JobStatus.FAILED.value
        row.next_step = None  # nothing left for a worker to do but deliver
        outbox.job_changed(session, row, JobStatus.FAILED, now=hub.clock.now(), message="")
    await relay.fan_out(hub)
    return job


async def deliveries(hub: Runtime) -> list[Delivery]:
    async with hub.db.session() as session:
        return list(await session.scalars(select(Delivery).order_by(Delivery.id)))


async def webhook_row(hub: Runtime, hook_id: str) -> Webhook:
    async with hub.db.session() as session:
        row = await session.get(Webhook, hook_id)
        assert row is not None
        return row


def verified(receiver: Receiver, secret: str) -> list[dict[str, object]]:
    """Every request's JSON body, after checking its signature as a receiver would."""
    bodies = []
    for request in receiver.requests:
        header = request.headers["x-imputehub-signature"]
        assert webhooks.verify_signature(secret, header, request.body, now=request.received_at), (
            header
        )
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.body)
        assert request.headers["x-imputehub-event"] == body["type"]
        assert request.headers["x-imputehub-delivery"] == body["id"]
        bodies.append(body)
    return bodies


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (10, 60.0), (0, 10.0)],
)
def test_the_backoff_doubles_up_to_its_ceiling(attempts: int, delay: float) -> None:
    assert delivery.retry_delay(attempts, base=BASE, maximum=60.0) == delay


async def test_a_receiver_failing_twice_gets_it_on_the_third_attempt_once(
    hub: Runtime, clock: FakeClock
) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp(), script=[500, 500]) as receiver:
        hook = await register(hub, dana, receiver.url)
        job = await job_fails(hub, dana)

        assert await delivery.deliver_due(hub, owner="w1") == 0
        assert await delivery.deliver_due(hub, owner="w1") == 0  # not due yet: no call
        assert len(receiver.requests) == 1
        [waiting] = await deliveries(hub)
        assert (waiting.status, waiting.attempts, waiting.last_status_code) == ("pending", 1, 500)
        clock.advance(BASE)
        assert await delivery.deliver_due(hub, owner="w2") == 0
        clock.advance(2 * BASE)
        assert await delivery.deliver_due(hub, owner="w3") == 1
        clock.advance(3600)
        assert await delivery.deliver_due(hub, owner="w4") == 0  # sent: never again

    [sent] = await deliveries(hub)
    assert (sent.status, sent.attempts, sent.last_status_code) == ("sent", 3, 200)
    assert sent.last_error is None
    assert sent.sent_at is not None
    bodies = verified(receiver, hook.secret)
    assert len(bodies) == 3
    assert {b["id"] for b in bodies} == {str(sent.id)}  # one id: a receiver can de-duplicate
    data = bodies[-1]["data"]
    assert isinstance(data, dict)
    assert bodies[-1]["type"] == "job.failed"
    assert data["job_id"] == job.id
    assert data["error_message"] == "Chromosome 23 is not supported"
    row = await webhook_row(hub, hook.webhook.id)
    assert (row.last_status_code, row.last_error, row.is_active) == (200, None, True)


async def test_a_receiver_that_keeps_failing_is_given_up_with_its_last_error(
    hub: Runtime, clock: FakeClock
) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp(), script=[503] * 10) as receiver:
        hook = await register(hub, dana, receiver.url)
        await job_fails(hub, dana)
        for _ in range(6):
            await delivery.deliver_due(hub, owner="w")
            clock.advance(3600)

    [failed] = await deliveries(hub)
    assert failed.status == "failed"
    assert failed.attempts == hub.settings.notify_max_attempts == len(receiver.requests)
    assert failed.last_error == "the receiver answered HTTP 503"
    row = await webhook_row(hub, hook.webhook.id)
    assert row.last_status_code == 503
    assert row.is_active


async def test_410_gone_deactivates_the_webhook(hub: Runtime, clock: FakeClock) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp(), script=[410]) as receiver:
        hook = await register(hub, dana, receiver.url)
        await job_fails(hub, dana)
        await delivery.deliver_due(hub, owner="w")
        clock.advance(3600)
        await job_fails(hub, dana)  # no delivery is made for a deactivated webhook
        await delivery.deliver_due(hub, owner="w")

    [gone] = await deliveries(hub)
    assert gone.status == "failed"
    assert gone.last_status_code == 410
    assert len(receiver.requests) == 1
    row = await webhook_row(hub, hook.webhook.id)
    assert row.is_active is False
    assert row.last_status_code == 410


async def test_a_worker_dying_mid_delivery_leaves_it_to_another_recorded_once(
    hub: Runtime, clock: FakeClock
) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp(), script=["hang"]) as receiver:
        hook = await register(hub, dana, receiver.url)
        await job_fails(hub, dana)
        first = asyncio.create_task(delivery.deliver_due(hub, owner="doomed"))
        await receiver.wait_for(1)
        first.cancel()  # the worker dies while the receiver holds the request
        await asyncio.gather(first, return_exceptions=True)
        [held] = await deliveries(hub)
        assert held.status == "pending"
        assert held.lease_owner is not None

        assert await delivery.deliver_due(hub, owner="other") == 0  # the lease still holds
        assert held.lease_expires_at is not None
        clock.current = held.lease_expires_at
        clock.advance(1)
        assert await delivery.deliver_due(hub, owner="other") == 1
        clock.advance(3600)
        assert await delivery.deliver_due(hub, owner="third") == 0

    [sent] = await deliveries(hub)
    assert (sent.status, sent.attempts, sent.lease_owner) == ("sent", 2, None)
    bodies = verified(receiver, hook.secret)
    # Sent twice (at least once), with one delivery id so the receiver keeps one.
    assert [b["id"] for b in bodies] == [str(sent.id), str(sent.id)]


async def test_a_worker_process_killed_mid_delivery_is_taken_over(
    hub: Runtime, clock: FakeClock, tmp_path: Path
) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(["hang"], clock=lambda: clock.now().timestamp()) as receiver:
        hook = await register(hub, dana, receiver.url)
        await job_fails(hub, dana)
        doomed = start_worker(
            hub.settings,
            tmp_path / "fake.json",
            "doomed",
            tmp_path / "logs",
            webhook_allow_private=True,
        )
        try:

            async def called() -> bool:
                return len(receiver.requests) == 1

            await wait_until(called, workers=[doomed], what="the webhook call")
        finally:
            doomed.kill()  # SIGKILL while the receiver holds the request
        [held] = await deliveries(hub)
        assert held.status == "pending"
        assert held.lease_owner is not None
        assert held.lease_owner.startswith("doomed#")
        assert held.lease_expires_at is not None
        clock.current = max(clock.now(), held.lease_expires_at) + timedelta(seconds=1)

        assert await delivery.deliver_due(hub, owner="survivor") == 1
        clock.advance(3600)
        assert await delivery.deliver_due(hub, owner="survivor") == 0

    [sent] = await deliveries(hub)
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert [r.headers["x-imputehub-delivery"] for r in receiver.requests] == [str(sent.id)] * 2
    assert json.loads(receiver.requests[0].body) == json.loads(receiver.requests[1].body)
    assert verified(receiver, hook.secret)[-1]["type"] == "job.failed"


async def test_one_slow_receiver_does_not_hold_up_the_others(
    hub: Runtime, clock: FakeClock
) -> None:
    hub.settings = hub.settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    dana = await make_user(hub, "dana")
    async with (
        receiving(clock=lambda: clock.now().timestamp(), script=["hang"]) as slow,
        receiving() as fast,
    ):
        await register(hub, dana, slow.url)
        quick = await register(hub, dana, fast.url)
        await job_fails(hub, dana)

        assert await delivery.deliver_due(hub, owner="w") == 1

    by_target = {d.target: d for d in await deliveries(hub)}
    assert by_target[quick.webhook.id].status == "sent"
    [late] = [d for target, d in by_target.items() if target != quick.webhook.id]
    assert late.status == "pending"
    assert late.last_error == "no answer within 0.5 s"
    assert late.next_run_at is not None
    assert late.lease_owner is None


async def test_an_address_turned_private_is_refused_at_delivery(
    hub: Runtime, clock: FakeClock
) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp()) as receiver:
        hook = await register(hub, dana, receiver.url.replace("http://", "https://"))
        # Registered while allowed (or while its DNS said public); now the rule applies.
        hub.settings = hub.settings.model_copy(update={"webhook_allow_private": False})
        await job_fails(hub, dana)
        await delivery.deliver_due(hub, owner="w")

    [refused] = await deliveries(hub)
    assert refused.status == "pending"
    assert refused.last_error is not None
    assert refused.last_error.startswith("refused:")
    assert "non-public" in refused.last_error
    assert receiver.requests == []
    row = await webhook_row(hub, hook.webhook.id)
    assert row.last_error == refused.last_error


async def test_a_deleted_webhook_gets_nothing(hub: Runtime, clock: FakeClock) -> None:
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp()) as receiver:
        hook = await register(hub, dana, receiver.url)
        await job_fails(hub, dana)
        async with hub.db.session() as session:
            await webhooks.delete_webhook(session, user_id=dana.id, webhook_id=hook.webhook.id)
        await delivery.deliver_due(hub, owner="w")

    [dropped] = await deliveries(hub)
    assert (dropped.status, dropped.last_error) == ("failed", "the webhook was deleted")
    assert receiver.requests == []


async def test_a_job_run_by_the_worker_mails_and_calls_the_user_at_every_stage(
    settings: Settings,
    clock: FakeClock,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    with smtp_server() as mail:
        async with receiving(clock=lambda: clock.now().timestamp()) as receiver:
            hub = build_runtime(
                settings.model_copy(
                    update={
                        "smtp_host": mail.host,
                        "smtp_port": mail.port,
                        "smtp_security": "none",
                        "smtp_from": "hub@imputehub.example.org",
                    }
                ),
                clock=clock,
                connectors={"michigan": FakeConnector(tmp_path / "fake.json")},
            )
            try:
                await run_a_job_and_check_what_arrived(hub, clock, mail, receiver)
            finally:
                await hub.close()


async def run_a_job_and_check_what_arrived(hub, clock, mail, receiver) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        dana = await make_actor(hub, client, "dana")
        created = await client.post(
            "/api/v1/webhooks", json={"url": receiver.url}, headers=dana.headers
        )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    async with hub.db.session() as session:  # Dana wants every e-mail, not just the defaults
        for kind in EventKind:
            session.add(
                NotificationPreference(
                    user_id=dana.id, kind=kind.value, channel="email", enabled=True
                )
            )
    job = await new_job(hub, dana.id)
    done = await drive(hub, Worker(hub), clock, job.id)
    assert done.status == "completed"

    stop = asyncio.Event()
    worker = asyncio.create_task(Worker(hub).run(stop))  # its housekeeping relays and delivers
    try:
        mails = await mail.wait_for(4)
        await receiver.wait_for(4)
    finally:
        stop.set()
        await worker

    stages = ["job.queued", "job.running", "job.completed", "job.results_ready"]
    assert all(m.rcpt_tos == ["dana@example.org"] for m in mails)
    assert sorted(m.message["Subject"] for m in mails) == sorted(
        [
            f"Job '{job.name}' is queued",
            f"Job '{job.name}' is running",
            f"Job '{job.name}' completed",
            f"Results of job '{job.name}' are ready",
        ]
    )
    [ready] = [m for m in mails if m.message["Subject"].startswith("Results")]
    link = f"https://hub.example.org/api/v1/jobs/{job.id}/results"
    assert link in ready.body("plain")
    assert f'href="{link}"' in ready.body("html")
    bodies = verified(receiver, secret)
    assert sorted(str(b["type"]) for b in bodies) == sorted(stages)
    assert all(b["data"]["job_id"] == job.id for b in bodies)  # type: ignore[index]
    rows = await deliveries(hub)
    assert len(rows) == 8
    assert all(d.status == "sent" and d.attempts == 1 for d in rows)
    assert len(mail.messages()) == 4
    assert len(receiver.requests) == 4


async def test_claims_handed_back_untried_are_due_again_without_a_spent_attempt(
    hub: Runtime, clock: FakeClock
) -> None:
    dana = await make_user(hub, "dana")
    await register(hub, dana, "http://127.0.0.1:9/never-called")
    await job_fails(hub, dana)
    now = clock.now()
    async with hub.db.session() as session:
        claims = await delivery.claim_due_deliveries(
            session, owner="w#1", now=now, lease_seconds=60, limit=10
        )
    async with hub.db.session() as session:
        again = await delivery.claim_due_deliveries(
            session, owner="w#2", now=now, lease_seconds=60, limit=10
        )
    assert len(claims) == 1
    assert again == []  # leased: nobody else takes it

    async with hub.db.session() as session:
        await delivery.hand_back(session, claims)

    [row] = await deliveries(hub)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 0, None)
    async with hub.db.session() as session:
        retaken = await delivery.claim_due_deliveries(
            session, owner="w#3", now=now, lease_seconds=60, limit=10
        )
    assert [(c.delivery_id, c.attempts) for c in retaken] == [(row.id, 1)]


async def test_an_e_mail_to_a_refused_mailbox_fails_at_once_and_others_arrive(
    hub: Runtime, clock: FakeClock
) -> None:
    with smtp_server(refuse=frozenset({"gone@example.org"})) as mail:
        hub.settings = hub.settings.model_copy(
            update={"smtp_host": mail.host, "smtp_port": mail.port, "smtp_security": "none"}
        )
        dana = await make_user(hub, "dana")
        gone = await make_user(hub, "gone")
        await job_fails(hub, dana)
        await job_fails(hub, gone)

        assert await delivery.deliver_due(hub, owner="w") == 1
        [arrived] = await mail.wait_for(1)

    assert arrived.rcpt_tos == ["dana@example.org"]
    assert "Chromosome 23 is not supported" in arrived.body("plain")
    by_target = {d.target: d for d in await deliveries(hub)}
    assert by_target["dana@example.org"].status == "sent"
    refused = by_target["gone@example.org"]
    assert refused.status == "failed"  # a missing mailbox stays missing: no retries
    assert refused.last_status_code == 550
    assert refused.last_error is not None
    assert "no such mailbox" in refused.last_error


async def test_a_receiver_that_never_answers_does_not_hold_up_the_worker_s_jobs(
    hub: Runtime, clock: FakeClock
) -> None:
    hub.settings = hub.settings.model_copy(update={"webhook_timeout_seconds": 120.0})
    dana = await make_user(hub, "dana")
    async with receiving(clock=lambda: clock.now().timestamp(), script=["hang"] * 5) as stuck:
        await register(hub, dana, stuck.url)
        await job_fails(hub, dana)  # one delivery due now, to a receiver that never answers
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(hub).run(stop))
        try:
            await stuck.wait_for(1)  # the worker is inside that delivery now
            job = await new_job(hub, dana.id)

            async def completed() -> bool:
                clock.advance(1.0)  # the fake service's next poll falls due
                return (await load_job(hub, job.id)).status == "completed"

            await eventually(completed, what="the job to complete while the webhook hangs")
        finally:
            stop.set()
            await worker

    hanging = (await deliveries(hub))[0]  # the failed job's, the first one made
    assert hanging.status == "pending"  # never answered: handed back, tried again later
