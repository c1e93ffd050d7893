"""The hub end to end with the real Michigan connector and the emulated server."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from imputehub.api.services import ServicePublic
from imputehub.clock import FakeClock
from imputehub.db.models import Job, Service, ServiceHealthCheck, User
from imputehub.registry import health
from imputehub.runtime import Runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import (
    drive,
    eventually,
    load_job,
    result_files,
    stored_bytes,
)
from tests.support import factories
from tests.support.api import Actor
from tests.support.michigan_emulator import DOSE, INFO, MichiganEmulator, running_emulator

TOKEN = "platform-michigan-token-42"
PANEL = "apps@1000g-phase-3-v5@2.0.0"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


async def michigan_job(
    runtime: Runtime,
    emulator: MichiganEmulator,
    *,
    owner: Actor | None = None,
    **service_fields: Any,
) -> Job:
    """A pending job of `owner` (else a new user) on a service registered for the emulator."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(
            username="carol", password_hash="!", role="user", created_at=now, updated_at=now
        )
        if owner is None:
            session.add(user)
        else:
            user.id = owner.id
    service = await factories.make_service(
        runtime,
        slug="michigan",
        api_type="michigan",
        base_url=emulator.base_url,
        credential_encrypted=runtime.vault.encrypt(TOKEN),
        **service_fields,
    )
    panel = await factories.make_panel(
        runtime, service, slug="1000g", panel_id=PANEL, populations=["eur", "afr"]
    )
    stored = await factories.make_file(runtime, user.id)
    return await factories.make_job(
        runtime, user_id=user.id, service=service, panel=panel, files=[stored], population="eur"
    )


async def test_a_job_runs_at_the_service_and_its_decrypted_results_are_stored(
    runtime: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(runtime, emulator)

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "completed", done.error_log
    [submission] = emulator.accepted(job.id)
    assert done.external_job_id == emulator.job_named(job.id).id
    # The zips were encrypted with the job's own secret, which the hub keeps encrypted.
    assert done.service_secret_encrypted is not None
    assert submission["fields"]["password"] == [
        runtime.vault.decrypt(done.service_secret_encrypted)
    ]
    assert submission["fields"]["refpanel"] == [PANEL]
    assert submission["fields"]["population"] == ["eur"]
    assert any(line.startswith("Summary: Imputation finished.") for line in done.service_logs)

    files = {f.filename: f for f in await result_files(runtime, job.id)}
    assert sorted(files) == [
        "chr20.dose.vcf.gz",
        "chr20.info.gz",
        "qc_report.txt",
        "snps-excluded.txt",
    ]
    dose = await stored_bytes(runtime, files["chr20.dose.vcf.gz"].storage_key)
    assert gzip.decompress(dose) == DOSE
    info = await stored_bytes(runtime, files["chr20.info.gz"].storage_key)
    assert gzip.decompress(info) == INFO
    assert sorted(d["name"] for d in emulator.downloads) == [
        "chr_20.zip",
        "qc_report.txt",
        "snps-excluded.txt",
    ]


async def test_a_job_the_service_fails_shows_the_service_s_reason(
    runtime: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(runtime, emulator)
    emulator.fail_job(job.id, "At least 20 samples must be uploaded.")

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "At least 20 samples must be uploaded." in done.error_message


async def test_a_rejected_token_fails_the_job_plainly(
    runtime: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(runtime, emulator)
    emulator.tokens.clear()  # the token expired or was replaced by a newer one

    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert "rejected the API token" in done.error_message
    assert TOKEN not in done.error_message
    assert emulator.accepted() == []


async def test_a_worker_killed_between_submit_and_recording_does_not_submit_twice(
    runtime: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(runtime, emulator)
    emulator.hold_submits = True  # the server queues the job but never answers
    doomed = asyncio.create_task(Worker(runtime).run_once())

    async def reached_service() -> bool:
        return len(emulator.accepted(job.id)) == 1

    await eventually(reached_service, what="the submission to reach the service")
    doomed.cancel()  # the worker dies before it learns the job id
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    emulator.hold_submits = False
    inside = await load_job(runtime, job.id)
    assert inside.external_job_id is None

    clock.advance(runtime.settings.worker_lease_seconds + 1)  # its lease runs out
    done = await drive(runtime, Worker(runtime), clock, job.id)

    assert done.status == "completed", done.error_log
    assert len(emulator.accepted(job.id)) == 1
    assert len(emulator.jobs) == 1
    assert done.external_job_id == emulator.job_named(job.id).id
    # Found by its job-name, not sent again. (The job list is read before every upload
    # too, so a GET of it alone proves nothing.)
    assert emulator.submit_posts() == 1
    assert len(await result_files(runtime, job.id)) == 4


async def test_maintenance_and_server_errors_delay_a_job_but_do_not_fail_it(
    runtime: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(runtime, emulator)
    emulator.maintenance = True
    worker = Worker(runtime)

    await worker.run_once()
    waiting = await load_job(runtime, job.id)
    assert waiting.status == "pending"
    assert "maintenance" in str(waiting.error_log[-1])
    emulator.maintenance = False
    emulator.status_failures = [500, 500, 502]
    clock.advance(3600)
    done = await drive(runtime, worker, clock, job.id)

    assert done.status == "completed", done.error_log
    assert len(emulator.accepted(job.id)) == 1
    assert "HTTP 500" in str(done.error_log)
    assert len(await result_files(runtime, job.id)) == 4


async def test_health_checks_record_how_many_jobs_wait_at_the_server(
    runtime: Runtime, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(runtime, emulator)
    emulator.add_token("someone-else-token", username="dave")
    emulator.occupy("dave", 3, state=1)  # waiting at the server: its queue
    emulator.occupy("dave", 2, state=2)  # running: not queued

    checked = await health.run_health_check(runtime, "michigan")
    assert checked.queue_size == 3
    async with runtime.db.session() as session:
        service = await session.get(Service, job.service_id)
        assert service is not None
        assert ServicePublic.of(service).queue_size == 3  # GET /services shows it
        history = (await session.scalars(select(ServiceHealthCheck))).all()
        assert [check.queue_size for check in history] == [3]

    # In maintenance the figure is not known: none is shown rather than a stale one.
    emulator.maintenance = True
    checked = await health.run_health_check(runtime, "michigan")
    assert (checked.status, checked.queue_size) == ("maintenance", None)


async def test_a_fetch_that_keeps_failing_shows_when_the_server_deletes_the_results(
    runtime: Runtime,
    clock: FakeClock,
    emulator: MichiganEmulator,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    job = await michigan_job(runtime, emulator, owner=alice)
    emulator.download_failures["chr_20.zip"] = 1000  # the server keeps failing that file
    worker = Worker(runtime)

    async def fetch_failed() -> bool:
        await worker.run_once()
        clock.advance(1)
        return "chr_20.zip" in str((await load_job(runtime, job.id)).error_log)

    await eventually(fetch_failed, what="a failed download of chr_20.zip")
    shown = (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).json()
    assert shown["service_deletes_results_at"] is None  # the server has not said yet

    # Days later the server sends its retire notice: the results go in two days.
    deletes_at = (clock.now() + timedelta(days=2)).replace(microsecond=0)
    emulator.retire_notice(job.id, deletes_at)
    clock.advance(3600)
    await worker.run_once()

    shown = (await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)).json()
    assert shown["status"] == "running"
    assert datetime.fromisoformat(shown["service_deletes_results_at"]) == deletes_at

    # Retries come well before the deletion, however long the backoff has grown (a day
    # here, against the minute left).
    runtime.settings = runtime.settings.model_copy(
        update={"retry_base_seconds": 86400.0, "retry_max_seconds": 86400.0}
    )
    clock.advance((deletes_at - clock.now()).total_seconds() - 60)
    await worker.run_once()
    waiting = await load_job(runtime, job.id)
    assert waiting.next_run_at is not None
    assert waiting.next_run_at <= clock.now() + timedelta(seconds=30)
