"""GET /metrics after real jobs: job counts, queue, claims, retries, failures, step
durations, upload bytes, deliveries and service health, the same from two API processes on
one database; only admins or the configured METRICS_TOKEN may scrape."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Delivery, Event
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.monitoring.support import parse, value
from tests.integration.worker.support import drive, new_job
from tests.support import vcf
from tests.support.api import Actor, make_actor
from tests.support.fake_connector import FakeConnector


@pytest.fixture
def fake(tmp_path: Path) -> FakeConnector:
    return FakeConnector(tmp_path / "fake.json")


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock, fake: FakeConnector) -> AsyncIterator[Runtime]:
    runtime = build_runtime(
        settings.model_copy(update={"metrics_token": SecretStr("prometheus-scrape-token-1")}),
        clock=clock,
        connectors={"michigan": fake},
    )
    yield runtime
    await runtime.close()


@pytest.fixture
async def hub_client(hub: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


async def scrape(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


async def add_deliveries(hub: Runtime, user_id: str, job_id: str) -> None:
    now = hub.clock.now()
    async with hub.db.session() as session:
        event = Event(user_id=user_id, job_id=job_id, kind="job.completed", created_at=now)
        session.add(event)
        await session.flush()
        for target, status, attempts in [
            ("a@example.org", "sent", 1),
            ("b@example.org", "sent", 2),
            ("c@example.org", "failed", 8),
        ]:
            session.add(
                Delivery(
                    event_id=event.id,
                    user_id=user_id,
                    channel="email",
                    target=target,
                    status=status,
                    attempts=attempts,
                    created_at=now,
                )
            )


async def test_metrics_report_what_real_jobs_did(
    hub: Runtime, hub_client: httpx.AsyncClient, fake: FakeConnector, clock: FakeClock
) -> None:
    admin = await make_actor(hub, hub_client, "admin", role="admin")
    alice = await make_actor(hub, hub_client, "alice")
    worker = Worker(hub)
    fields = {"slug": "michigan-1", "response_time_ms": 250.0}
    done = await new_job(hub, alice.id, service_fields=fields)
    assert (await drive(hub, worker, clock, done.id)).status == "completed"
    retried = await new_job(hub, alice.id, service_fields={"slug": "michigan-2"})
    fake.configure(retried.id, transient={"poll": 2})
    assert (await drive(hub, worker, clock, retried.id)).status == "completed"
    failed = await new_job(hub, alice.id, service_fields={"slug": "michigan-3"})
    fake.configure(failed.id, permanent={"submit": "panel not found"})
    assert (await drive(hub, worker, clock, failed.id)).status == "failed"
    waiting = await new_job(hub, alice.id, service_fields={"slug": "michigan-4"})
    await add_deliveries(hub, alice.id, done.id)
    content = vcf.make_vcf()
    upload = await hub_client.post(
        "/api/v1/files",
        files={"file": ("in.vcf.gz", content, "application/gzip")},
        headers=alice.headers,
    )
    assert upload.status_code == 201, upload.text
    clock.advance(90)

    types, samples = parse(await scrape(hub_client, admin.headers))

    assert value(samples, "imputehub_jobs", service="michigan-1", status="completed") == 1
    assert value(samples, "imputehub_jobs", service="michigan-2", status="completed") == 1
    assert value(samples, "imputehub_jobs", service="michigan-3", status="failed") == 1
    assert value(samples, "imputehub_jobs", service="michigan-4", status="pending") == 1
    assert value(samples, "imputehub_queue_depth", service="michigan-4") == 1
    assert ("imputehub_queue_depth", frozenset({("service", "michigan-1")})) not in samples
    assert value(samples, "imputehub_oldest_queued_age_seconds") == 90
    assert waiting.status == "pending"

    assert types["imputehub_job_retries_total"] == "counter"
    assert value(samples, "imputehub_job_retries_total", step="poll") == 2
    assert value(samples, "imputehub_job_failures_total", step="submit") == 1
    assert value(samples, "imputehub_upload_bytes_total", kind="direct") == len(content)

    # Every claim ran one step, and every step's duration was observed once.
    assert types["imputehub_step_duration_seconds"] == "histogram"
    steps = {dict(labels)["step"] for name, labels in samples if name.endswith("_count")}
    assert {"submit", "poll", "fetch"} <= steps
    observed = sum(
        value(samples, "imputehub_step_duration_seconds_count", step=step) for step in steps
    )
    assert value(samples, "imputehub_job_claims_total") == observed >= 3 + 3
    for step in steps:
        buckets = sorted(
            (float(dict(labels)["le"]), count)
            for (name, labels), count in samples.items()
            if name == "imputehub_step_duration_seconds_bucket" and dict(labels)["step"] == step
        )
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), "histogram buckets must be cumulative"
        assert buckets[-1] == (
            math.inf,
            value(samples, "imputehub_step_duration_seconds_count", step=step),
        )

    assert value(samples, "imputehub_notification_deliveries", channel="email", status="sent") == 2
    assert (
        value(samples, "imputehub_notification_deliveries", channel="email", status="failed") == 1
    )
    assert (
        value(samples, "imputehub_notification_delivery_attempts", channel="email", status="failed")
        == 8
    )
    assert value(samples, "imputehub_service_up", service="michigan-1", status="healthy") == 1
    assert value(samples, "imputehub_service_response_seconds", service="michigan-1") == 0.25


async def test_two_api_processes_report_the_same_totals(
    hub: Runtime, hub_client: httpx.AsyncClient, fake: FakeConnector, clock: FakeClock
) -> None:
    admin = await make_actor(hub, hub_client, "admin", role="admin")
    alice = await make_actor(hub, hub_client, "alice")
    # A second process: its own runtime (engine, pool) on the same database.
    other = build_runtime(hub.settings, clock=clock, connectors={"michigan": fake})
    try:
        transport = httpx.ASGITransport(app=create_app(other))
        async with httpx.AsyncClient(transport=transport, base_url="http://other.test") as peer:
            job = await new_job(hub, alice.id, service_fields={"slug": "shared"})
            # The job runs on a worker of the other process.
            assert (await drive(other, Worker(other), clock, job.id)).status == "completed"
            first = await scrape(hub_client, admin.headers)
            second = await scrape(peer, admin.headers)
    finally:
        await other.close()
    assert first == second
    _, samples = parse(first)
    assert value(samples, "imputehub_jobs", service="shared", status="completed") == 1
    assert value(samples, "imputehub_job_claims_total") >= 3


async def test_only_admins_and_the_metrics_token_may_scrape(
    hub: Runtime, hub_client: httpx.AsyncClient
) -> None:
    alice: Actor = await make_actor(hub, hub_client, "alice")

    anonymous = await hub_client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert (await hub_client.get("/metrics", headers=alice.headers)).status_code == 403
    wrong = {"Authorization": "Bearer not-the-metrics-token"}
    assert (await hub_client.get("/metrics", headers=wrong)).status_code == 401

    token = {"Authorization": "Bearer prometheus-scrape-token-1"}
    types, _ = parse(await scrape(hub_client, token))
    assert types["imputehub_jobs"] == "gauge"
