"""In one `serve` process the API wakes the worker: a new job does not wait a poll interval.

The worker here polls only every 60 s, so a job picked up sooner was picked up because the
API said so (a worker in another process would find it at its next poll instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import WorkerHeartbeat
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import eventually, load_job
from tests.support import factories
from tests.support.api import Actor, make_actor
from tests.support.fake_connector import FakeConnector

SLOW_POLL = 60.0


@pytest.fixture
async def hub(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, FakeConnector]]:
    fake = FakeConnector(tmp_path / "fake.json")
    runtime = build_runtime(
        settings.model_copy(update={"worker_poll_interval": SLOW_POLL}),
        clock=clock,
        connectors={"michigan": fake},
    )
    yield runtime, fake
    await runtime.close()


async def idle_worker(runtime: Runtime, stop: asyncio.Event) -> asyncio.Task[None]:
    """A worker loop that has done its first round and now waits out its long poll."""
    task = asyncio.create_task(Worker(runtime, worker_id="w").run(stop))

    async def beating() -> bool:
        async with runtime.db.session() as session:
            return await session.get(WorkerHeartbeat, "w") is not None

    await eventually(beating, what="the worker's first round")
    await asyncio.sleep(0.2)  # past its first (empty) claim, into the wait
    return task


async def test_a_job_created_by_the_api_is_submitted_without_waiting_a_poll(
    hub: tuple[Runtime, FakeConnector],
) -> None:
    runtime, fake = hub
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        dana: Actor = await make_actor(runtime, client, "dana")
        service = await factories.make_service(runtime, slug="michigan")
        panel = await factories.make_panel(runtime, service)
        stored = await factories.make_file(runtime, dana.id)
        stop = asyncio.Event()
        worker = await idle_worker(runtime, stop)
        try:
            created = await client.post(
                "/api/v1/jobs",
                json={
                    "name": "woken",
                    "service_id": service.id,
                    "reference_panel_id": panel.id,
                    "input_file_ids": [stored.id],
                    "build": "hg19",
                    "phasing": "eagle",
                },
                headers=dana.headers,
            )
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]

            async def submitted() -> bool:
                return fake.job(job_id) is not None

            await eventually(submitted, what="the submission", within=SLOW_POLL / 4)

            cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=dana.headers)
            assert cancelled.json()["status"] == "cancelling"

            async def told_the_service() -> bool:
                return (await load_job(runtime, job_id)).status == "cancelled"

            await eventually(told_the_service, what="the cancel at the service", within=15.0)
        finally:
            stop.set()
            await worker
    assert [c["op"] for c in fake.calls(key=job_id) if c["op"] in ("submit", "cancel")] == [
        "submit",
        "cancel",
    ]
