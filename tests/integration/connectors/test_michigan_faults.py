"""The hub with the real Michigan connector against an emulated server that misbehaves.

AES-256 result zips, a connection dropped mid-download, result GETs failing for longer than
one fetch attempt, slow and malformed status answers, the per-user job limit: each job ends
completed with its decrypted results, says why it waited, and spends no download twice.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.connectors.michigan import MichiganConnector
from imputehub.connectors.michigan.answers import JOB_LIMIT_RETRY_SECONDS
from imputehub.db.models import Job
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.connectors.test_michigan_hub import TOKEN, michigan_job
from tests.integration.worker.support import (
    drive,
    load_job,
    result_files,
    status_updates,
    stored_bytes,
)
from tests.support.michigan_emulator import (
    DOSE,
    EXCLUDED,
    INFO,
    QC_REPORT,
    MichiganEmulator,
    running_emulator,
)
from tests.support.seaweedfs import S3Server

AES = 99  # the compression method a zip records for a WinZip-AES encrypted member
RESULTS = {
    "chr20.dose.vcf.gz": DOSE,
    "chr20.info.gz": INFO,
    "qc_report.txt": QC_REPORT,
    "snps-excluded.txt": EXCLUDED,
}
SOURCES = ["chr_20.zip", "qc_report.txt", "snps-excluded.txt"]


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:40]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


@contextlib.asynccontextmanager
async def michigan_hub(
    settings: Settings, clock: FakeClock, *, storage_url: str | None = None
) -> AsyncIterator[Runtime]:
    # A short wait for API answers, so a slow server shows up within a fast test.
    connector = MichiganConnector(api_seconds=0.3)
    if storage_url is not None:
        settings = settings.model_copy(update={"storage_url": SecretStr(storage_url)})
    runtime = build_runtime(settings, clock=clock, connectors={"michigan": connector})
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def hub(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with michigan_hub(settings, clock) as runtime:
        yield runtime


async def assert_results(hub: Runtime, job: Job) -> None:
    """The job's results are the service's files, zip members decrypted, nothing else."""
    files = {f.filename: f for f in await result_files(hub, job.id)}
    assert sorted(files) == sorted(RESULTS)
    for name, expected in RESULTS.items():
        content = await stored_bytes(hub, files[name].storage_key)
        assert (gzip.decompress(content) if name.endswith(".gz") else content) == expected


def messages(job: Job) -> str:
    return "\n".join(str(entry.get("message")) for entry in job.error_log)


async def test_aes_zips_are_asked_for_decrypted_and_resumed_after_a_drop(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(hub, emulator, api_config={"aes_encryption": True})
    emulator.drop_after["chr_20.zip"] = 700  # the connection breaks 700 bytes into the zip

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_log
    [submission] = emulator.accepted(job.id)
    assert submission["fields"]["aesEncryption"] == ["true"]
    [zipped] = [blob for (_, name), blob in emulator.blobs.items() if name == "chr_20.zip"]
    with zipfile.ZipFile(zipped.path) as archive:  # the server really used AES
        assert {member.compress_type for member in archive.infolist()} == {AES}
    await assert_results(hub, done)
    # One GET, then one Range resume from where it broke; every GET spends a download.
    assert [d["range"] for d in emulator.downloads if d["name"] == "chr_20.zip"] == [
        None,
        "bytes=700-",
    ]
    assert [emulator.spent(name) for name in SOURCES] == [2, 1, 1]


@pytest.mark.parametrize("storage", ["local", "s3"])
async def test_a_fetch_retried_after_a_failure_spends_no_download_twice(
    settings: Settings,
    clock: FakeClock,
    emulator: MichiganEmulator,
    storage: str,
    request: pytest.FixtureRequest,
) -> None:
    # On S3, what was fetched is known to workers on every machine.
    storage_url: str | None = None
    if storage == "s3":
        seaweedfs: S3Server = request.getfixturevalue("seaweedfs")
        storage_url = seaweedfs.storage_url()
    async with michigan_hub(settings, clock, storage_url=storage_url) as hub:
        job = await michigan_job(hub, emulator)
        # The third file's GETs fail for longer than one fetch attempt: the fetch step is
        # retried three times, after the first two files were stored.
        emulator.download_failures["snps-excluded.txt"] = 3

        done = await drive(hub, Worker(hub), clock, job.id)

        assert done.status == "completed", done.error_log
        assert emulator.failed_downloads == ["snps-excluded.txt"] * 3
        assert "the download of snps-excluded.txt failed: the service answered HTTP 500" in (
            messages(done)
        )
        assert sorted(d["name"] for d in emulator.downloads) == SOURCES
        assert [emulator.spent(name) for name in SOURCES] == [1, 1, 1]
        await assert_results(hub, done)
        # The marks that told the retries what was stored are gone with the finished fetch.
        # (The connector remembers a file by its path at the service, `{id}/output/{name}`.)
        assert done.external_job_id is not None
        sources = [f"{done.external_job_id}/output/{name}" for name in SOURCES]
        marks = [f"results/{job.id}/.fetched/{digest(source)}.json" for source in sources]
        assert [await hub.storage.exists(key) for key in marks] == [False] * len(SOURCES)


async def test_a_status_answer_slower_than_the_connector_waits_is_retried(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(hub, emulator)
    emulator.status_delays = [1.0]  # the first status call answers after the client gave up

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_log
    assert "the service did not answer in time (ReadTimeout after 0.3 s)" in messages(done)
    assert len(emulator.accepted(job.id)) == 1
    await assert_results(hub, done)


async def test_malformed_status_answers_are_retried(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(hub, emulator)
    emulator.status_garbage = 2

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_log
    assert "the service sent a malformed answer (HTTP 200)" in messages(done)
    assert len(emulator.accepted(job.id)) == 1
    await assert_results(hub, done)


async def test_a_job_over_the_per_user_limit_uploads_nothing_and_says_why(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    job = await michigan_job(hub, emulator)
    others = emulator.occupy("hub", 2)  # the platform account's slots are taken
    worker = Worker(hub)

    await worker.run_once()
    clock.advance(60)
    await worker.run_once()  # not due yet: no second try

    waiting = await load_job(hub, job.id)
    assert waiting.status == "pending"
    shown = (await status_updates(hub, job.id))[-1].message
    assert shown is not None
    assert "busy with this account's other jobs" in shown
    assert "Only 2 jobs per user can be executed simultaneously; 2 are waiting or running" in shown
    assert (emulator.submit_posts(), emulator.submit_bytes) == (0, 0)
    assert waiting.attempts == 0  # waiting for a slot is no failed attempt

    for other in others:
        other.state = 4
    clock.advance(JOB_LIMIT_RETRY_SECONDS)
    done = await drive(hub, worker, clock, job.id)

    assert done.status == "completed", done.error_log
    assert [s["status"] for s in emulator.submissions] == [200]
    assert emulator.submit_posts() == 1
    await assert_results(hub, done)


async def test_a_job_held_back_by_maintenance_uploads_nothing_and_resumes_within_an_interval(
    settings: Settings, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    interval = 120.0  # the health-check interval; a maintenance used to mean 10 minutes
    settings = settings.model_copy(update={"health_check_interval_seconds": interval})
    async with michigan_hub(settings, clock) as hub:
        job = await michigan_job(hub, emulator)
        emulator.maintenance = True
        worker = Worker(hub)

        await worker.run_once()
        clock.advance(interval - 1)
        await worker.run_once()  # not due yet
        clock.advance(1)
        await worker.run_once()  # one interval later, still in maintenance: waits again

        waiting = await load_job(hub, job.id)
        assert waiting.status == "pending"
        shown = (await status_updates(hub, job.id))[-1].message
        assert shown == (
            "waiting to retry after a temporary problem: "
            "the service is in maintenance; waiting for it to come back"
        )
        assert [e["message"] for e in waiting.error_log] == [
            "the service is in maintenance; waiting for it to come back"
        ] * 2
        assert (emulator.submit_posts(), emulator.submit_bytes) == (0, 0)
        assert waiting.attempts == 0  # a maintenance is no failed attempt

        emulator.maintenance = False  # back: one interval after its last look, it submits
        clock.advance(interval)
        await worker.run_once()

        submitted = await load_job(hub, job.id)
        assert submitted.external_job_id == emulator.job_named(job.id).id
        assert emulator.submit_posts() == 1
        done = await drive(hub, worker, clock, job.id)
        assert done.status == "completed", done.error_log
        assert len(emulator.accepted(job.id)) == 1
        assert emulator.submit_posts() == 1
        await assert_results(hub, done)
