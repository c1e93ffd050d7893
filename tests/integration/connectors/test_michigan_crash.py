"""A worker process SIGKILLed between Michigan's answer to a submit and recording the job id.

The real Michigan connector in real worker processes (tests/support/run_worker.py with its
switches), against the emulated server: the second worker must adopt the job by its
`job-name` instead of submitting it again.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from imputehub.config import Settings
from imputehub.domain.jobs import TERMINAL
from imputehub.runtime import Runtime
from tests.integration.connectors.test_michigan_hub import TOKEN, michigan_job
from tests.integration.worker.processes import start_worker, wait_until
from tests.integration.worker.support import load_job, result_files
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.run_worker import KILL_AFTER_SUBMIT_ENV, REAL_MICHIGAN_ENV


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


async def test_a_worker_killed_before_recording_the_job_id_does_not_submit_twice(
    settings: Settings,
    runtime: Runtime,
    emulator: MichiganEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = await michigan_job(runtime, emulator)
    logs, unused_fake_state = tmp_path / "logs", tmp_path / "fake.json"
    monkeypatch.setenv(REAL_MICHIGAN_ENV, "1")
    monkeypatch.setenv(KILL_AFTER_SUBMIT_ENV, "1")
    doomed = start_worker(settings, unused_fake_state, "doomed", logs)
    try:
        code = await asyncio.to_thread(doomed.proc.wait, 60)
    finally:
        if doomed.proc.poll() is None:
            doomed.kill()
    assert code == -signal.SIGKILL, doomed.output()
    assert len(emulator.accepted(job.id)) == 1  # the service has the job...
    inside = await load_job(runtime, job.id)
    assert inside.status == "pending"
    assert inside.submit_started_at is not None
    assert inside.external_job_id is None  # ...the hub never learnt its id

    monkeypatch.delenv(KILL_AFTER_SUBMIT_ENV)
    survivor = start_worker(settings, unused_fake_state, "survivor", logs)
    try:

        async def finished() -> bool:
            return (await load_job(runtime, job.id)).status in TERMINAL

        await wait_until(finished, workers=[survivor], what="the job to finish")
    finally:
        assert survivor.stop() == 0, survivor.output()

    done = await load_job(runtime, job.id)
    assert done.status == "completed", done.error_log
    assert len(emulator.accepted(job.id)) == 1
    assert len(emulator.jobs) == 1
    assert done.external_job_id == emulator.job_named(job.id).id
    # Found by its job-name, not sent again. (The job list is read before every upload
    # too, so a GET of it alone proves nothing.)
    assert emulator.submit_posts() == 1
    assert len(await result_files(runtime, job.id)) == 4
