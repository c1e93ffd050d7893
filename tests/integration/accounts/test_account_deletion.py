"""Deleting your own account: the password confirms it, its jobs, files and results go,
the audit log keeps that it happened."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from imputehub.accounts import deletion
from imputehub.db.models import AuditEntry, Job, StoredFile, User
from imputehub.domain.jobs import JobStatus
from imputehub.runtime import Runtime
from tests.support.api import PASSWORD, Actor
from tests.support.factories import make_file, make_job, make_panel, make_service

DELETE = "/api/v1/auth/delete-account"


async def test_a_wrong_password_deletes_nothing(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime
) -> None:
    record = await make_file(runtime, alice.id)
    response = await client.post(DELETE, json={"password": "not it at all"}, headers=alice.headers)
    assert response.status_code == 403
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
    assert [chunk async for chunk in runtime.storage.read(record.storage_key)]
    async with runtime.db.session() as session:
        [entry] = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "account_deletion_requested")
        )
    assert entry.outcome == "failure"


async def test_deleting_removes_the_account_its_files_and_jobs(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, runtime: Runtime
) -> None:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc")
    mine = await make_file(runtime, alice.id)
    theirs = await make_file(runtime, bob.id)
    await make_job(runtime, user_id=alice.id, service=service, panel=panel, files=[mine])

    response = await client.post(DELETE, json={"password": PASSWORD}, headers=alice.headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "deleted", "jobs_stopping": 0}
    assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 401
    login = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 401
    async with runtime.db.session() as session:
        assert await session.get(User, alice.id) is None
        assert list(await session.scalars(select(Job.id))) == []
        assert list(await session.scalars(select(StoredFile.id))) == [theirs.id]
        actions = list(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == alice.id))
        )
    assert actions == ["account_deletion_requested", "account_deleted"]
    assert not await runtime.storage.exists(mine.storage_key)
    assert await runtime.storage.exists(theirs.storage_key)


async def test_running_jobs_are_cancelled_first(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime
) -> None:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc")
    record = await make_file(runtime, alice.id)
    now = runtime.clock.now()
    job = await make_job(
        runtime,
        user_id=alice.id,
        service=service,
        panel=panel,
        files=[record],
        status=JobStatus.RUNNING.value,
        submit_started_at=now,
        external_job_id="job-1",
        next_step="poll",
    )
    response = await client.post(DELETE, json={"password": PASSWORD}, headers=alice.headers)
    assert response.json() == {"status": "deleting", "jobs_stopping": 1}
    async with runtime.db.session() as session:
        stopping = await session.get(Job, job.id)
        assert stopping is not None
        assert stopping.status == JobStatus.CANCELLING.value
    assert await deletion.finish_due(runtime, now=now) == 0  # the service has not heard yet
    assert await runtime.storage.exists(record.storage_key)
    async with runtime.db.session() as session:
        stopped = await session.get(Job, job.id)
        assert stopped is not None
        stopped.status = JobStatus.CANCELLED.value
    assert await deletion.finish_due(runtime, now=now) == 1
    assert not await runtime.storage.exists(record.storage_key)
    async with runtime.db.session() as session:
        assert await session.get(User, alice.id) is None


async def test_the_only_admin_cannot_delete_their_account(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    response = await client.post(DELETE, json={"password": PASSWORD}, headers=admin.headers)
    assert response.status_code == 409
    assert "another admin" in response.json()["detail"]
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).status_code == 200


async def test_deleting_needs_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    assert (await client.post(DELETE, json={"password": PASSWORD})).status_code == 401
