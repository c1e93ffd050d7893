"""The console's queue: every user's active jobs with filters and paging, cancel or retry
any of them (audited), and pausing or resuming a service from the queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from imputehub.db.models import AuditEntry, Job, JobStatusUpdate, ReferencePanel, Service
from imputehub.domain.jobs import Step
from imputehub.runtime import Runtime
from tests.integration.accounts.conftest import set_hub
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.web import sign_in


@pytest.fixture
async def service(runtime: Runtime) -> Service:
    return await make_service(runtime, name="Michigan Imputation Server", slug="michigan")


@pytest.fixture
async def panel(runtime: Runtime, service: Service) -> ReferencePanel:
    return await make_panel(runtime, service, display_name="1000G Phase 3")


async def a_job(
    runtime: Runtime, owner: Actor, service: Service, panel: ReferencePanel, **fields: Any
) -> Job:
    upload = await make_file(runtime, owner.id)
    return await make_job(
        runtime, user_id=owner.id, service=service, panel=panel, files=[upload], **fields
    )


async def stored(runtime: Runtime, job_id: str) -> Job:
    async with runtime.db.session() as session:
        job = await session.scalar(select(Job).where(Job.id == job_id))
    assert job is not None
    return job


async def audit_actions(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.db.session() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.target_id).order_by(AuditEntry.id)
        )
    return [(action, target) for action, target in rows.all()]


async def test_the_queue_shows_every_users_active_jobs_with_their_last_message(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    bob: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    now = runtime.clock.now()
    queued = await a_job(
        runtime, alice, service, panel, name="alice chr20", status="queued",
        created_at=now - timedelta(hours=2),
    )  # fmt: skip
    await a_job(runtime, bob, service, panel, name="<b>bob's</b> study", status="running")
    await a_job(runtime, bob, service, panel, name="finished study", status="completed")
    async with runtime.db.session() as session:
        session.add(
            JobStatusUpdate(
                job_id=queued.id,
                status="queued",
                progress=0,
                message="waiting for a free slot at Michigan Imputation Server: 2 of 2 in use",
                created_at=now,
            )
        )

    page = await client.get("/console/queue")

    assert page.status_code == 200
    assert "alice chr20" in page.text
    assert "&lt;b&gt;bob&#39;s&lt;/b&gt; study" in page.text
    assert "<b>bob's</b>" not in page.text
    assert "finished study" not in page.text
    assert "waiting for a free slot at Michigan Imputation Server: 2 of 2 in use" in page.text
    assert "1000G Phase 3" in page.text
    assert "2 jobs." in page.text
    assert page.text.index("alice chr20") < page.text.index("bob&#39;s")  # oldest first
    assert "The hub is not in maintenance." in page.text


async def test_filters_by_status_service_and_owner(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    bob: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    other = await make_service(runtime, name="TOPMed", slug="topmed")
    other_panel = await make_panel(runtime, other)
    await a_job(runtime, alice, service, panel, name="alice pending", status="pending")
    await a_job(runtime, bob, service, panel, name="bob running", status="running")
    await a_job(runtime, bob, other, other_panel, name="bob at topmed", status="queued")
    await a_job(runtime, bob, service, panel, name="bob failed", status="failed")

    by_owner = await client.get("/console/queue", params={"user": "bob"})
    assert "bob running" in by_owner.text
    assert "bob at topmed" in by_owner.text
    assert "alice pending" not in by_owner.text
    assert "2 jobs match the filters." in by_owner.text

    by_service = await client.get("/console/queue", params={"service": "topmed"})
    assert "bob at topmed" in by_service.text
    assert "bob running" not in by_service.text
    assert '<option value="topmed" selected>' in by_service.text

    by_status = await client.get("/console/queue", params={"status": "running"})
    assert "bob running" in by_status.text
    assert "alice pending" not in by_status.text

    failed = await client.get("/console/queue", params={"status": "failed"})
    assert "bob failed" in failed.text
    assert "bob running" not in failed.text
    assert ">Retry<" in failed.text

    nobody = await client.get("/console/queue", params={"user": "carol"})
    assert "No job matches the filters." in nobody.text


async def test_bad_filters_give_the_page_with_a_message(
    client: httpx.AsyncClient, admin_csrf: str
) -> None:
    for params, words in (
        ({"status": "completed"}, "Choose a status from the list"),
        ({"status": "<script>"}, "Choose a status from the list"),
        ({"page": "zero"}, "The page must be a whole number from 1."),
    ):
        page = await client.get("/console/queue", params=params)
        assert page.status_code == 422
        assert words in page.text
        assert "<script>" not in page.text.split("<main", 1)[1]


async def test_the_queue_is_paged(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    upload = await make_file(runtime, alice.id)
    start = runtime.clock.now()
    for number in range(27):
        await make_job(
            runtime,
            user_id=alice.id,
            service=service,
            panel=panel,
            files=[upload],
            name=f"job number {number:02d}",
            created_at=start + timedelta(minutes=number),
        )
    first = await client.get("/console/queue", params={"user": "alice"})
    assert "job number 00" in first.text
    assert "job number 24" in first.text
    assert "job number 25" not in first.text
    assert "page 1 of 2" in first.text
    assert 'href="/console/queue?user=alice&amp;page=2"' in first.text
    second = await client.get("/console/queue", params={"user": "alice", "page": "2"})
    assert "job number 25" in second.text
    assert "job number 26" in second.text
    assert "job number 00" not in second.text


async def test_the_admin_cancels_someone_elses_job_and_it_is_audited(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    job = await a_job(runtime, alice, service, panel, name="to cancel")

    answer = await client.post(
        f"/console/queue/jobs/{job.id}/cancel", data={"csrf_token": admin_csrf}
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/queue?done=cancelled"
    assert (await stored(runtime, job.id)).status == "cancelled"
    assert ("job_cancelled_by_admin", job.id) in await audit_actions(runtime)
    page = await client.get(answer.headers["location"])
    assert "The job was cancelled." in page.text
    assert "to cancel" not in page.text

    again = await client.post(
        f"/console/queue/jobs/{job.id}/cancel", data={"csrf_token": admin_csrf}
    )
    assert again.status_code == 409
    assert "already cancelled" in again.text


async def test_the_admin_retries_a_failed_job_for_its_owner(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    job = await a_job(
        runtime, alice, service, panel, name="failed study", status="failed", next_step=None
    )

    answer = await client.post(
        f"/console/queue/jobs/{job.id}/retry", data={"csrf_token": admin_csrf}
    )

    assert answer.status_code == 303
    async with runtime.db.session() as session:
        retry = await session.scalar(select(Job).where(Job.retry_of == job.id))
    assert retry is not None
    assert (retry.user_id, retry.status, retry.name) == (alice.id, "pending", "failed study")
    assert ("job_retried_by_admin", job.id) in await audit_actions(runtime)
    page = await client.get(answer.headers["location"])
    assert "A new job with the same settings and files was queued for its owner." in page.text
    assert "failed study" in page.text  # the new job is in the queue


async def test_forged_and_malformed_actions_change_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    job = await a_job(runtime, alice, service, panel)
    forged = await client.post(f"/console/queue/jobs/{job.id}/cancel", data={"csrf_token": "x"})
    assert forged.status_code == 403
    missing = await client.post(
        "/console/queue/jobs/no-such-job/cancel", data={"csrf_token": admin_csrf}
    )
    assert missing.status_code == 404
    odd = await client.post(
        "/console/queue/jobs/%3Cscript%3E/retry", data={"csrf_token": admin_csrf}
    )
    assert odd.status_code == 404
    assert "<script>" not in odd.text
    bad = await client.post(
        f"/console/queue/services/{service.slug}/pause",
        data={"csrf_token": admin_csrf, "paused": "maybe"},
    )
    assert bad.status_code == 422
    assert "choose pause or resume" in bad.text.lower()
    assert (await stored(runtime, job.id)).status == "pending"
    async with runtime.db.session() as session:
        again = await session.get(Service, service.id)
        assert again is not None
        assert not again.is_paused


async def test_a_user_cannot_cancel_through_the_console(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    bob: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    job = await a_job(runtime, bob, service, panel)
    csrf = await sign_in(client, alice.username)
    answer = await client.post(f"/console/queue/jobs/{job.id}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 403
    assert (await stored(runtime, job.id)).status == "pending"


async def test_pause_and_resume_a_service_from_the_queue(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    alice: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    now = runtime.clock.now()
    later = now + timedelta(days=1)  # held: looks again later
    held = [
        await a_job(runtime, alice, service, panel, status="queued", next_run_at=later)
        for _ in range(2)
    ]

    paused = await client.post(
        f"/console/queue/services/{service.slug}/pause",
        data={"csrf_token": admin_csrf, "paused": "1"},
    )
    assert paused.status_code == 303
    page = await client.get(paused.headers["location"])
    assert "The service is paused: its new jobs wait in the hub." in page.text
    assert "<strong>Paused</strong>" in page.text
    assert "2 held" in page.text
    assert ">Resume<" in page.text
    assert ("service_paused", service.id) in await audit_actions(runtime)

    resumed = await client.post(
        f"/console/queue/services/{service.slug}/pause",
        data={"csrf_token": admin_csrf, "paused": "0"},
    )
    assert resumed.status_code == 303
    page = await client.get(resumed.headers["location"])
    assert "The service was resumed" in page.text
    assert "<strong>Paused</strong>" not in page.text
    assert ("service_resumed", service.id) in await audit_actions(runtime)
    for job in held:  # released: due now
        assert (await stored(runtime, job.id)).next_run_at == now
        assert (await stored(runtime, job.id)).next_step == Step.SUBMIT.value


async def test_the_queue_says_when_the_hub_is_in_maintenance(
    client: httpx.AsyncClient, admin: Actor, admin_csrf: str
) -> None:
    await set_hub(client, admin, maintenance=True, maintenance_new_jobs="refuse")
    page = await client.get("/console/queue")
    assert "The hub is in maintenance: new jobs are refused." in page.text
    assert 'href="/console/settings"' in page.text
