"""A worker SIGKILLed at every point of fetching a Michigan job's results.

Real worker processes (tests/support/run_worker.py, RUN_WORKER_KILL_AT) with the real
Michigan connector against the emulated server: the first dies at a named point of
fetching the job's zip, a second completes the job. The results must be what the server
serves, no file that had completely arrived is downloaded again, and nothing kept for the
fetch is left in storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pyzipper  # type: ignore[import-untyped]
from pydantic import SecretStr

from imputehub.config import Settings
from imputehub.db.models import Job
from imputehub.domain.jobs import TERMINAL
from imputehub.runtime import Runtime, build_runtime
from tests.integration.connectors.test_michigan_hub import TOKEN, michigan_job
from tests.integration.worker.processes import start_worker, wait_until
from tests.integration.worker.support import load_job, result_files, stored_bytes
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.run_worker import (
    KILL_AT_ENV,
    KILL_POINTS,
    REAL_MICHIGAN_ENV,
    SEGMENT_ENV,
)
from tests.support.seaweedfs import S3Server

SEGMENT = 1024
FILES = ["chr_20.zip", "qc_report.txt", "snps-excluded.txt"]
# The files completely downloaded when the worker dies (the zip is fetched first).
ARRIVED_BEFORE = {
    "body": [],
    "downloaded": ["chr_20.zip"],
    "member": ["chr_20.zip"],
    "marked": ["chr_20.zip"],
    "fetched": FILES,
}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN, username="hub")
        yield server


@contextlib.asynccontextmanager
async def hub_on(
    settings: Settings, storage: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Runtime, str | None]]:
    """The test's runtime on the storage asked for, and the storage URL for the workers."""
    url: str | None = None
    if storage == "s3":
        seaweedfs: S3Server = request.getfixturevalue("seaweedfs")
        url = seaweedfs.storage_url()
        settings = settings.model_copy(update={"storage_url": SecretStr(url)})
    runtime = build_runtime(settings)
    try:
        yield runtime, url
    finally:
        await runtime.close()


def served(emulator: MichiganEmulator, job_name: str) -> dict[str, bytes]:
    """What the server serves for the job, the zip's members decrypted."""
    job = emulator.job_named(job_name)
    expected = {
        name: emulator.blob(job_name, name).path.read_bytes()
        for name in ("qc_report.txt", "snps-excluded.txt")
    }
    content = emulator.blob(job_name, "chr_20.zip").path.read_bytes()
    with pyzipper.AESZipFile(io.BytesIO(content)) as archive:
        archive.setpassword(job.password.encode())
        for member in archive.infolist():
            expected[member.filename] = archive.read(member)
    return expected


def kept_keys(job: Job, source: str) -> list[str]:
    digest = hashlib.sha256(source.encode()).hexdigest()[:40]
    folder = f"results/{job.id}/.downloads/{digest}"
    return [
        f"{folder}.json",
        f"{folder}/0",
        f"results/{job.id}/.fetched/{digest}.json",
    ]


async def run_until_killed(settings: Settings, logs: Path, storage_url: str | None) -> None:
    overrides = {} if storage_url is None else {"storage_url": storage_url}
    doomed = start_worker(settings, logs / "unused.json", "doomed", logs, **overrides)
    try:
        code = await asyncio.to_thread(doomed.proc.wait, 60)
    finally:
        if doomed.proc.poll() is None:
            doomed.kill()
    assert code == -signal.SIGKILL, doomed.output()


async def run_to_the_end(
    hub: Runtime, settings: Settings, logs: Path, job: Job, storage_url: str | None
) -> Job:
    overrides = {} if storage_url is None else {"storage_url": storage_url}
    survivor = start_worker(settings, logs / "unused.json", "survivor", logs, **overrides)
    try:

        async def finished() -> bool:
            return (await load_job(hub, job.id)).status in TERMINAL

        await wait_until(finished, workers=[survivor], what="the job to finish")
    finally:
        assert survivor.stop() == 0, survivor.output()
    return await load_job(hub, job.id)


@pytest.mark.parametrize(
    ("storage", "point", "redirect"),
    [
        *(("local", point, False) for point in KILL_POINTS),
        ("local", "body", True),
        ("s3", "body", True),
        ("s3", "downloaded", False),
        ("s3", "marked", False),
    ],
)
async def test_a_worker_killed_while_fetching_leaves_a_job_another_completes(
    settings: Settings,
    emulator: MichiganEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    storage: str,
    point: str,
    redirect: bool,
) -> None:
    emulator.redirect = redirect
    async with hub_on(settings, storage, request) as (hub, storage_url):
        job = await michigan_job(hub, emulator)
        logs = tmp_path / "logs"
        monkeypatch.setenv(REAL_MICHIGAN_ENV, "1")
        monkeypatch.setenv(SEGMENT_ENV, str(SEGMENT))
        monkeypatch.setenv(KILL_AT_ENV, point)

        await run_until_killed(settings, logs, storage_url)

        killed = await load_job(hub, job.id)
        assert killed.status not in TERMINAL
        assert killed.external_job_id is not None
        zip_source = f"{killed.external_job_id}/output/chr_20.zip"
        size = emulator.blob(job.id, "chr_20.zip").path.stat().st_size
        if point == "body":  # the first segment is kept; the second never arrived whole
            notes, first, _ = kept_keys(job, zip_source)
            assert await hub.storage.exists(notes)
            assert await hub.storage.size(first) == SEGMENT

        gets_before = Counter(d["name"] for d in emulator.downloads)
        assert gets_before["chr_20.zip"] >= 1
        arrived = ARRIVED_BEFORE[point]
        monkeypatch.delenv(KILL_AT_ENV)
        done = await run_to_the_end(hub, settings, logs, job, storage_url)

        assert done.status == "completed", done.error_log
        expected = served(emulator, job.id)
        files = {f.filename: f for f in await result_files(hub, job.id)}
        assert sorted(files) == sorted(expected)
        for name, content in expected.items():
            assert await stored_bytes(hub, files[name].storage_key) == content, name
        # Only a zip cut short is asked for again; every other file arrived once.
        # No file that had completely arrived before the kill was asked for again.
        gets = Counter(d["name"] for d in emulator.downloads)
        assert {name: gets[name] - gets_before[name] for name in arrived} == dict.fromkeys(
            arrived, 0
        )
        assert all(gets[name] >= 1 for name in FILES)
        if point == "body" and redirect:  # the rest, and only the rest, the second time
            last = [d for d in emulator.presigned if d["name"] == "chr_20.zip"][-1]
            assert (last["range"], last["sent"]) == (f"bytes={SEGMENT}-", size - SEGMENT)
        for name in FILES:
            for key in kept_keys(job, f"{done.external_job_id}/output/{name}"):
                assert not await hub.storage.exists(key), key
