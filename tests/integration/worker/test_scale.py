"""Several worker processes share one PostgreSQL database without double claims."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from imputehub.config import Settings
from imputehub.db.models import Job, StoredFile, WorkerHeartbeat
from imputehub.runtime import Runtime
from tests.integration.worker.processes import start_worker, wait_until
from tests.support import factories
from tests.support.fake_connector import FakeConnector

JOBS = 30
WORKERS = 3


@pytest.mark.postgres
async def test_three_workers_complete_thirty_jobs_each_exactly_once(
    settings: Settings, hub: Runtime, fake: FakeConnector, user_id: str, tmp_path: Path
) -> None:
    # (PostgreSQL only, `postgres` mark: SQLite runs one writer at a time by design.)
    # Slow enough answers that no single worker can take everything.
    fake.configure(delay={"submit": 0.05, "poll": 0.02, "fetch": 0.02})
    workers = [
        start_worker(
            settings,
            fake.state_path,
            f"w{n}",
            tmp_path / "logs",
            worker_batch_size=2,
            worker_concurrency=4,
        )
        for n in range(WORKERS)
    ]
    try:

        async def all_up() -> bool:
            async with hub.db.session() as session:
                alive = await session.scalar(select(func.count()).select_from(WorkerHeartbeat))
            return alive == WORKERS

        await wait_until(all_up, workers=workers, what="the workers to start")

        # Every job may be at the service at once: this is about claims, not slots.
        service = await factories.make_service(hub, api_config={"max_jobs_per_user": JOBS})
        panel = await factories.make_panel(hub, service)
        stored = await factories.make_file(hub, user_id)
        jobs = [
            await factories.make_job(
                hub, user_id=user_id, service=service, panel=panel, files=[stored]
            )
            for _ in range(JOBS)
        ]

        async def all_finished() -> bool:
            async with hub.db.session() as session:
                open_jobs = await session.scalar(
                    select(func.count()).select_from(Job).where(Job.next_step.is_not(None))
                )
            return open_jobs == 0

        await wait_until(all_finished, workers=workers, what="every job to finish", within=45)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0] * WORKERS

    async with hub.db.session() as session:
        statuses = Counter((await session.scalars(select(Job.status))).all())
        result_rows = await session.scalar(
            select(func.count()).select_from(StoredFile).where(StoredFile.kind == "result")
        )
    assert statuses == {"completed": JOBS}
    assert result_rows == 2 * JOBS
    for job in jobs:
        assert fake.submissions(job.id) == 1
        # One claim per step: a double claim would show as an extra call.
        ops = [c["op"] for c in fake.calls(key=job.id)]
        assert ops == ["submit", "poll", "poll", "poll", "fetch"], ops
    labels = Counter(c["label"] for c in fake.calls())
    assert len(labels) > 1, f"one worker did all the work: {labels}"
