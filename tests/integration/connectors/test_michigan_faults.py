"""The hub with the real Michigan connector against an emulated server that misbehaves.

AES-256 result zips, a connection dropped mid-download (the server's own stream, or a
presigned URL's), result GETs failing for longer than one fetch attempt, slow and malformed
status answers, the per-user job limit: each job ends completed with its decrypted
results, says why it waited, and spends no download twice.
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
SEGMENT = 1024  # downloads are kept in segments this small: a zip takes several


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:40]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


@contextlib.asynccontextmanager
async def michigan_hub(
    settings: Settings,
    clock: FakeClock,
    *,
    storage_url: str | None = None,
    segment_size: int = SEGMENT,
) -> AsyncIterator[Runtime]:
    # A short wait for API answers, so a slow server shows up within a fast test.
    connector = MichiganConnector(api_seconds=0.3, download_segment_size=segment_size)
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


async def test_aes_zips_are_asked_for_decrypted_and_downloaded_again_after_a_drop(
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
    # The drop ended the attempt; the retry asked for the rest, and the server (which
    # ignores Range) sent it all again. Every GET spends a download.
    assert "the download of chr_20.zip broke off after 700 of" in messages(done)
    size = zipped.path.stat().st_size
    assert [(d["range"], d["sent"]) for d in emulator.downloads if d["name"] == "chr_20.zip"] == [
        (None, 700),
        ("bytes=700-", size),
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


async def storage_of(storage: str, request: pytest.FixtureRequest) -> str | None:
    if storage != "s3":
        return None
    seaweedfs: S3Server = request.getfixturevalue("seaweedfs")
    return seaweedfs.storage_url()


@pytest.mark.parametrize("storage", ["local", "s3"])
async def test_a_partial_download_kept_in_storage_is_resumed_by_the_next_attempt(
    settings: Settings,
    clock: FakeClock,
    emulator: MichiganEmulator,
    storage: str,
    request: pytest.FixtureRequest,
) -> None:
    storage_url = await storage_of(storage, request)
    async with michigan_hub(settings, clock, storage_url=storage_url) as hub:
        job = await michigan_job(hub, emulator)
        emulator.drop_after["chr_20.zip"] = 2500  # two whole segments and part of a third
        worker = Worker(hub)
        for _ in range(30):  # until the first fetch broke off
            await worker.run_once()
            clock.advance(1)
            if "broke off" in messages(await load_job(hub, job.id)):
                break
        broken = await load_job(hub, job.id)
        assert broken.external_job_id is not None
        folder = (
            f"results/{job.id}/.downloads/{digest(f'{broken.external_job_id}/output/chr_20.zip')}"
        )
        sizes = [await hub.storage.size(f"{folder}/{index}") for index in range(3)]
        assert sizes == [SEGMENT, SEGMENT, 2500 - 2 * SEGMENT]
        assert not await hub.storage.exists(f"{folder}/3")

        emulator.redirect = True  # the next GET is redirected to a URL that honours Range
        done = await drive(hub, worker, clock, job.id)

        assert done.status == "completed", done.error_log
        await assert_results(hub, done)
        [zipped] = [blob for (_, name), blob in emulator.blobs.items() if name == "chr_20.zip"]
        size = zipped.path.stat().st_size
        assert [d["range"] for d in emulator.downloads if d["name"] == "chr_20.zip"] == [
            None,
            "bytes=2500-",
        ]
        assert [
            (d["range"], d["sent"]) for d in emulator.presigned if d["name"] == "chr_20.zip"
        ] == [("bytes=2500-", size - 2500)]
        # Nothing kept for the fetch is left once the job has its results.
        assert not await hub.storage.exists(f"{folder}.json")
        assert not await hub.storage.exists(f"{folder}/0")


async def test_a_drop_at_a_presigned_url_resumes_within_the_attempt(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    emulator.redirect = True
    job = await michigan_job(hub, emulator)
    emulator.drop_after["chr_20.zip"] = 700

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_log
    await assert_results(hub, done)
    assert done.error_log == []  # no attempt failed
    assert [d["range"] for d in emulator.downloads if d["name"] == "chr_20.zip"] == [None]
    assert [d["range"] for d in emulator.presigned if d["name"] == "chr_20.zip"] == [
        None,
        "bytes=700-",
    ]
    assert [emulator.spent(name) for name in SOURCES] == [1, 1, 1]


async def test_the_last_download_of_a_file_is_kept_and_the_job_says_why(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    emulator.download_count = 2
    job = await michigan_job(hub, emulator)
    emulator.drop_after["chr_20.zip"] = 700

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "failed"
    assert done.error_message is not None
    assert (
        "chr_20.zip has 1 download left at the service and an earlier download of it broke off; "
        "imputehub keeps it rather than spend it on a retry that could fail the same way"
    ) in done.error_message
    [zipped] = [blob for (_, name), blob in emulator.blobs.items() if name == "chr_20.zip"]
    assert zipped.count == 1
    assert len([d for d in emulator.downloads if d["name"] == "chr_20.zip"]) == 1


async def test_a_zip_that_fails_its_published_md5_is_downloaded_again_and_not_stored(
    hub: Runtime, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    emulator.publish_md5 = True  # like TOPMed
    job = await michigan_job(hub, emulator)
    emulator.corrupt["chr_20.zip"] = 1  # damaged on the way, once

    done = await drive(hub, Worker(hub), clock, job.id)

    assert done.status == "completed", done.error_log
    assert "chr_20.zip arrived damaged: its MD5 differs" in messages(done)
    await assert_results(hub, done)  # the .md5 is no result of the user's
    gets = [d["name"] for d in emulator.downloads]
    assert (gets.count("chr_20.zip"), gets.count("chr_20.zip.md5")) == (2, 1)


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


async def test_a_fetch_that_runs_out_of_attempts_leaves_nothing_kept(
    settings: Settings, clock: FakeClock, emulator: MichiganEmulator
) -> None:
    # One attempt allowed: the drop that ends it fails the job for good.
    settings = settings.model_copy(update={"max_transient_attempts": 1})
    async with michigan_hub(settings, clock) as hub:
        job = await michigan_job(hub, emulator)
        emulator.drop_after["chr_20.zip"] = 2500  # a partial download gets kept...

        done = await drive(hub, Worker(hub), clock, job.id)

        assert done.status == "failed"
        assert "broke off" in str(done.error_message)
        assert done.external_job_id is not None
        # ...and goes with the job's last attempt: no bytes stay behind in storage.
        folder = (
            f"results/{job.id}/.downloads/{digest(f'{done.external_job_id}/output/chr_20.zip')}"
        )
        assert not await hub.storage.exists(f"{folder}.json")
        assert not await hub.storage.exists(f"{folder}/0")
        sources = [f"{done.external_job_id}/output/{name}" for name in SOURCES]
        marks = [f"results/{job.id}/.fetched/{digest(source)}.json" for source in sources]
        assert [await hub.storage.exists(key) for key in marks] == [False] * len(SOURCES)
