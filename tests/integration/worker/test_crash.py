"""A worker process SIGKILLed mid-submit loses nothing and submits nothing twice."""

from __future__ import annotations

from pathlib import Path

from imputehub.config import Settings
from imputehub.domain.jobs import TERMINAL
from imputehub.runtime import Runtime
from tests.integration.worker.processes import start_worker, wait_until
from tests.integration.worker.support import load_job, new_job, result_files
from tests.support.fake_connector import FakeConnector


async def test_a_worker_killed_mid_submit_is_taken_over_without_a_second_submission(
    settings: Settings, hub: Runtime, fake: FakeConnector, user_id: str, tmp_path: Path
) -> None:
    # The service records the submission at once but answers only a minute later.
    fake.configure(delay={"submit": 60})
    job = await new_job(hub, user_id)
    logs = tmp_path / "logs"
    doomed = start_worker(settings, fake.state_path, "doomed", logs)
    try:

        async def reached_service() -> bool:
            return fake.submissions(job.id) == 1

        await wait_until(reached_service, workers=[doomed], what="the submission")
        inside = await load_job(hub, job.id)
        assert inside.status == "pending"
        assert inside.submit_started_at is not None
        assert inside.external_job_id is None
    finally:
        doomed.kill()

    fake.configure(delay={})
    survivor = start_worker(settings, fake.state_path, "survivor", logs)
    try:

        async def finished() -> bool:
            return (await load_job(hub, job.id)).status in TERMINAL

        await wait_until(finished, workers=[survivor], what="the job to finish")
    finally:
        assert survivor.stop() == 0, survivor.output()

    done = await load_job(hub, job.id)
    assert done.status == "completed", done.error_log
    assert fake.submissions(job.id) == 1
    submitted = fake.job(job.id)
    assert submitted is not None
    assert done.external_job_id == submitted["external_id"]
    survivor_ops = [c["op"] for c in fake.calls(key=job.id) if c["label"] == "survivor"]
    assert survivor_ops[0] == "find"
    assert "submit" not in survivor_ops
    assert len(await result_files(hub, job.id)) == 2
