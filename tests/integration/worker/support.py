"""Helpers for worker tests: job rows, reading back what the worker recorded, driving it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from imputehub.clock import FakeClock
from imputehub.db.models import Job, JobStatusUpdate, StoredFile
from imputehub.domain.jobs import TERMINAL, JobStatus
from imputehub.jobs import lifecycle
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.support import factories

INPUT = b"##fileformat=VCFv4.2\n" + b"20\t60343\t.\tG\tA\t.\tPASS\t.\tGT\t0|1\n" * 200
CREDENTIAL = "platform-api-token-123"


async def new_job(
    hub: Runtime,
    user_id: str,
    *,
    service_fields: dict[str, Any] | None = None,
    **job_fields: Any,
) -> Job:
    """A pending job due for submission, on a service holding a platform credential."""
    service = await factories.make_service(
        hub,
        credential_encrypted=hub.vault.encrypt(CREDENTIAL),
        **(service_fields or {}),
    )
    panel = await factories.make_panel(hub, service)
    stored = await factories.make_file(hub, user_id, INPUT)
    return await factories.make_job(
        hub, user_id=user_id, service=service, panel=panel, files=[stored], **job_fields
    )


async def load_job(hub: Runtime, job_id: str) -> Job:
    async with hub.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def status_updates(hub: Runtime, job_id: str) -> list[JobStatusUpdate]:
    async with hub.db.session() as session:
        rows = await session.scalars(
            select(JobStatusUpdate)
            .where(JobStatusUpdate.job_id == job_id)
            .order_by(JobStatusUpdate.id)
        )
        return list(rows)


async def result_files(hub: Runtime, job_id: str) -> list[StoredFile]:
    async with hub.db.session() as session:
        rows = await session.scalars(
            select(StoredFile)
            .where(StoredFile.job_id == job_id, StoredFile.kind == "result")
            .order_by(StoredFile.filename)
        )
        return list(rows)


async def stored_bytes(hub: Runtime, key: str) -> bytes:
    return b"".join([chunk async for chunk in hub.storage.read(key)])


async def drive(
    hub: Runtime,
    worker: Worker,
    clock: FakeClock,
    job_id: str,
    *,
    until: frozenset[JobStatus] = TERMINAL,
    rounds: int = 60,
    advance: float = 1.0,
) -> Job:
    """Run the worker round by round, moving the clock on, until the job's status is in `until`."""
    for _ in range(rounds):
        await worker.run_once()
        job = await load_job(hub, job_id)
        if JobStatus(job.status) in until:
            return job
        clock.advance(advance)
    raise AssertionError(f"job still {job.status} after {rounds} rounds")


async def request_cancel(hub: Runtime, job_id: str) -> None:
    """A user cancels the job, through the same use case the jobs API calls."""
    async with hub.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        lifecycle.request_cancel(session, job, now=hub.clock.now())


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, what: str, within: float = 10.0
) -> None:
    """Poll `condition` (state in a database or file, so no event to wait on) until true."""
    interval = 0.01
    for _ in range(int(within / interval)):
        if await condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within} s waiting for {what}")
