"""A cancel decides on what a worker has committed, never on a stale read."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import update

from imputehub.db.models import Job
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor


async def test_cancel_waits_for_a_worker_recording_its_submission(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor
) -> None:
    service = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, service)
    file = await factories.make_file(runtime, alice.id)
    job = await factories.make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[file]
    )
    async with runtime.db.session() as worker_session:
        # The worker records its intent to submit; the cancel arrives before it commits.
        await worker_session.execute(
            update(Job).where(Job.id == job.id).values(submit_started_at=runtime.clock.now())
        )
        cancel = asyncio.create_task(
            client.post(f"/api/v1/jobs/{job.id}/cancel", headers=alice.headers)
        )
        await asyncio.sleep(0.3)
        assert not cancel.done(), "the cancel must wait for the worker's transaction"
    response = await asyncio.wait_for(cancel, timeout=30)
    assert response.status_code == 200, response.text
    # The service may have the job now, so the cancel must travel to it.
    assert response.json()["status"] == "cancelling"
