"""Cancel, delete and retry, in every state a job can be in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, JobInput, JobStatusUpdate, ReferencePanel, Service, StoredFile
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_active_jobs_per_user": 2})


@dataclass
class World:
    service: Service
    panel: ReferencePanel
    file: StoredFile


@pytest.fixture
async def world(runtime: Runtime, alice: Actor) -> World:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc")
    return World(service=service, panel=panel, file=await make_file(runtime, alice.id))


async def job_in(runtime: Runtime, world: World, owner: str, status: str, **fields: Any) -> Job:
    return await make_job(
        runtime,
        user_id=owner,
        service=world.service,
        panel=world.panel,
        files=[world.file],
        status=status,
        **fields,
    )


async def load(runtime: Runtime, job_id: str) -> Job | None:
    async with runtime.db.session() as session:
        return await session.get(Job, job_id)


async def updates_of(runtime: Runtime, job_id: str) -> list[tuple[str, str]]:
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(JobStatusUpdate)
            .where(JobStatusUpdate.job_id == job_id)
            .order_by(JobStatusUpdate.id)
        )
        return [(row.status, row.message) for row in rows]


# --- cancel -------------------------------------------------------------------------------


async def test_cancel_a_job_no_service_has_seen(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    job = await job_in(runtime, world, alice.id, "pending")
    clock.advance(10)
    response = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["completed_at"] is not None
    stored = await load(runtime, job.id)
    assert stored is not None
    assert stored.next_step is None
    assert stored.next_run_at is None
    assert stored.completed_at == clock.now()
    assert await updates_of(runtime, job.id) == [("cancelled", "cancelled by user")]


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        pytest.param("pending", {"submit_started_at": "now"}, id="pending-submit-started"),
        pytest.param("pending", {"external_job_id": "ext-1"}, id="pending-with-external-id"),
        pytest.param("queued", {"external_job_id": "ext-1", "next_step": "poll"}, id="queued"),
        pytest.param("running", {"external_job_id": "ext-1", "next_step": "poll"}, id="running"),
    ],
)
async def test_cancel_a_job_the_service_may_have_goes_through_the_worker(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    clock: FakeClock,
    status: str,
    fields: dict[str, Any],
) -> None:
    values = {k: clock.now() if v == "now" else v for k, v in fields.items()}
    job = await job_in(
        runtime,
        world,
        alice.id,
        status,
        progress=35.0,
        lease_owner="worker-1",
        lease_expires_at=clock.now() + timedelta(seconds=60),
        next_run_at=clock.now() + timedelta(seconds=30),
        **values,
    )
    clock.advance(3)
    response = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    assert response.json()["progress_percentage"] == 35
    stored = await load(runtime, job.id)
    assert stored is not None
    assert stored.status == "cancelling"
    assert stored.next_step == "cancel"
    assert stored.next_run_at == clock.now()
    assert stored.lease_owner is None
    assert stored.lease_expires_at is None
    assert stored.completed_at is None
    assert await updates_of(runtime, job.id) == [
        ("cancelling", "cancel requested by user; telling the service")
    ]


async def test_cancel_a_cancelling_job_changes_nothing(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    job = await job_in(runtime, world, alice.id, "cancelling", next_step="cancel")
    before = await load(runtime, job.id)
    clock.advance(60)
    response = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    after = await load(runtime, job.id)
    assert before is not None
    assert after is not None
    assert after.updated_at == before.updated_at
    assert after.next_run_at == before.next_run_at
    assert await updates_of(runtime, job.id) == []


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_cancel_a_finished_job_is_409(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, status: str
) -> None:
    job = await job_in(runtime, world, alice.id, status, next_step=None, next_run_at=None)
    response = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=alice.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert f"already {status}" in response.json()["detail"]
    stored = await load(runtime, job.id)
    assert stored is not None
    assert stored.status == status


# --- delete -------------------------------------------------------------------------------


async def test_delete_a_pending_job_cancels_it(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_in(runtime, world, alice.id, "pending")
    response = await client.delete(f"/api/v1/jobs/{job.id}", headers=alice.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert response.json()["id"] == job.id
    assert (await load(runtime, job.id)) is not None


@pytest.mark.parametrize("status", ["queued", "running"])
async def test_delete_a_running_job_asks_the_service_to_cancel(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, status: str
) -> None:
    job = await job_in(runtime, world, alice.id, status, external_job_id="ext-9")
    response = await client.delete(f"/api/v1/jobs/{job.id}", headers=alice.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "cancelling"
    stored = await load(runtime, job.id)
    assert stored is not None
    assert stored.next_step == "cancel"


async def test_delete_a_cancelling_job_returns_it(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_in(runtime, world, alice.id, "cancelling", next_step="cancel")
    response = await client.delete(f"/api/v1/jobs/{job.id}", headers=alice.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "cancelling"


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_delete_a_finished_job_removes_it_with_its_results(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    status: str,
) -> None:
    job = await job_in(runtime, world, alice.id, status, next_step=None, next_run_at=None)
    keep = await job_in(runtime, world, alice.id, status, next_step=None, next_run_at=None)
    results = [
        await make_file(runtime, alice.id, b"dose", kind="result", job_id=job.id),
        await make_file(runtime, alice.id, b"info", kind="result", job_id=job.id),
    ]
    kept_result = await make_file(runtime, alice.id, b"other", kind="result", job_id=keep.id)
    async with runtime.db.session() as session:
        session.add(
            JobStatusUpdate(
                job_id=job.id,
                status=status,
                progress=0.0,
                message="done",
                created_at=runtime.clock.now(),
            )
        )
    root = settings.data_dir / "files"
    assert all((root / r.storage_key).exists() for r in results)

    response = await client.delete(f"/api/v1/jobs/{job.id}", headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""

    assert (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).status_code == 404
    assert not any((root / r.storage_key).exists() for r in results)
    assert (root / kept_result.storage_key).exists()
    assert (root / world.file.storage_key).exists()  # inputs are the user's, not the job's
    async with runtime.db.session() as session:
        assert await session.get(StoredFile, world.file.id) is not None
        assert await session.get(StoredFile, kept_result.id) is not None
        for model, column in (
            (StoredFile, StoredFile.job_id),
            (JobStatusUpdate, JobStatusUpdate.job_id),
            (JobInput, JobInput.job_id),
        ):
            remaining = await session.scalar(
                select(func.count()).select_from(model).where(column == job.id)
            )
            assert remaining == 0, model
    assert (await load(runtime, keep.id)) is not None


# --- retry --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "cancelled"])
async def test_retry_creates_a_new_pending_job(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    clock: FakeClock,
    status: str,
) -> None:
    old = await job_in(
        runtime,
        world,
        alice.id,
        status,
        name="chr20 study",
        description="again",
        phasing="beagle",
        population="afr",
        mode="qc_only",
        r2_filter=0.5,
        external_job_id="ext-old",
        error_message="the service said no",
        next_step=None,
        next_run_at=None,
    )
    clock.advance(100)
    response = await client.post(f"/api/v1/jobs/{old.id}/retry", headers=alice.headers)
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["id"] != old.id
    assert new["retry_of"] == old.id
    assert new["status"] == "pending"
    assert new["progress_percentage"] == 0
    assert new["external_job_id"] is None
    assert new["error_message"] is None
    assert new["user_id"] == alice.id
    for field in ("name", "description", "phasing", "population", "mode", "r2_filter", "build"):
        assert new[field] == getattr(old, field), field
    assert new["service_id"] == world.service.id
    assert new["reference_panel_id"] == world.panel.id
    assert [f["id"] for f in new["input_files"]] == [world.file.id]
    stored = await load(runtime, new["id"])
    assert stored is not None
    assert stored.next_step == "submit"
    assert stored.next_run_at == clock.now()
    assert await updates_of(runtime, new["id"]) == [("pending", f"job created (retry of {old.id})")]
    original = await load(runtime, old.id)
    assert original is not None
    assert original.status == status


@pytest.mark.parametrize("status", ["pending", "queued", "running", "cancelling", "completed"])
async def test_retry_of_other_states_is_409(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, status: str
) -> None:
    job = await job_in(runtime, world, alice.id, status)
    response = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=alice.headers)
    assert response.status_code == 409
    assert "only failed or cancelled jobs can be retried" in response.json()["detail"]
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 1


async def test_an_admin_retrying_someone_elses_job_is_audited(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, world: World, runtime: Runtime
) -> None:
    failed = await job_in(runtime, world, alice.id, "failed")
    response = await client.post(f"/api/v1/jobs/{failed.id}/retry", headers=admin.headers)
    assert response.status_code == 201
    new = response.json()
    log = await client.get(
        "/api/v1/admin/audit-log?action=job_retried_by_admin", headers=admin.headers
    )
    [entry] = log.json()["items"]
    assert entry["target_id"] == failed.id
    assert entry["details"] == {"owner_id": alice.id, "new_job_id": new["id"]}
    own = await client.post(f"/api/v1/jobs/{new['id']}/cancel", headers=alice.headers)
    assert own.status_code == 200  # the new job is alice's


async def test_retry_respects_the_active_job_limit(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    failed = await job_in(runtime, world, alice.id, "failed")
    await job_in(runtime, world, alice.id, "running")
    await job_in(runtime, world, alice.id, "queued")
    response = await client.post(f"/api/v1/jobs/{failed.id}/retry", headers=alice.headers)
    assert response.status_code == 429
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 3


async def test_retry_revalidates(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    """A job whose service was retired since cannot be retried onto it."""
    retired = await make_service(runtime, slug="retired", is_active=False)
    panel = await make_panel(runtime, retired)
    job = await make_job(
        runtime,
        user_id=alice.id,
        service=retired,
        panel=panel,
        files=[world.file],
        status="failed",
    )
    response = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=alice.headers)
    assert response.status_code == 422
    assert "service 'retired' is not active" in response.json()["detail"]


async def test_retry_after_inputs_were_deleted_is_409(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_in(runtime, world, alice.id, "failed")
    response = await client.delete(f"/api/v1/files/{world.file.id}", headers=alice.headers)
    assert response.status_code == 204
    response = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=alice.headers)
    assert response.status_code == 409
    assert "input files" in response.json()["detail"]


async def test_admin_retries_a_users_job_for_that_user(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_in(runtime, world, alice.id, "failed")
    response = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=admin.headers)
    assert response.status_code == 201
    assert response.json()["user_id"] == alice.id
    mine = (await client.get("/api/v1/jobs", headers=alice.headers)).json()
    assert mine["total"] == 2


async def test_admin_deletes_a_users_finished_job(
    client: httpx.AsyncClient, alice: Actor, admin: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_in(runtime, world, alice.id, "completed")
    response = await client.delete(f"/api/v1/jobs/{job.id}", headers=admin.headers)
    assert response.status_code == 204
    assert (await load(runtime, job.id)) is None


async def test_bob_cannot_cancel_delete_or_retry_alices_jobs(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, world: World, runtime: Runtime
) -> None:
    running = await job_in(runtime, world, alice.id, "running", external_job_id="e")
    done = await job_in(runtime, world, alice.id, "failed")
    for method, url in [
        ("POST", f"/api/v1/jobs/{running.id}/cancel"),
        ("DELETE", f"/api/v1/jobs/{running.id}"),
        ("DELETE", f"/api/v1/jobs/{done.id}"),
        ("POST", f"/api/v1/jobs/{done.id}/retry"),
    ]:
        response = await client.request(method, url, headers=bob.headers)
        assert response.status_code == 404, (method, url)
    stored_running = await load(runtime, running.id)
    stored_done = await load(runtime, done.id)
    assert stored_running is not None
    assert stored_running.status == "running"
    assert stored_done is not None
    assert stored_done.status == "failed"
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 2
