"""A worker SIGKILLed at every point of fetching a Michigan job's results.

Real worker processes (tests/support/run_worker.py, RUN_WORKER_KILL_AT) with the real
Michigan connector against the emulated server: the first dies at a named point of
fetching the job's zip, a second completes the job. The results must be what the server
serves, no file that had completely arrived is downloaded again, and nothing but the
results is left under the job's storage prefix: no kept download, no mark, no partial
write (`storing`: killed while a result file was being written).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pyzipper  # type: ignore[import-untyped]
from pydantic import SecretStr

from imputehub.config import Settings
from imputehub.db.models import Job
from imputehub.domain.jobs import TERMINAL
from imputehub.files.s3 import S3Storage
from imputehub.files.storage import LocalStorage
from imputehub.runtime import Runtime, build_runtime
from tests.integration.connectors.test_michigan_hub import TOKEN, michigan_job
from tests.integration.worker.processes import WorkerProcess, start_worker, wait_until
from tests.integration.worker.support import load_job, result_files, stored_bytes
from tests.support import databases
from tests.support.michigan_emulator import MichiganEmulator, running_emulator
from tests.support.run_worker import (
    KILL_AT_ENV,
    KILL_POINTS,
    REAL_MICHIGAN_ENV,
    SEGMENT_ENV,
    START_WHEN_ENV,
)
from tests.support.seaweedfs import S3Server

SEGMENT = 1024
FILES = ["chr_20.zip", "qc_report.txt", "snps-excluded.txt"]
# The files completely downloaded when the worker dies (the zip is fetched first).
ARRIVED_BEFORE = {
    "body": [],
    "downloaded": ["chr_20.zip"],
    "storing": ["chr_20.zip"],
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


async def everything_under(hub: Runtime, folder: str) -> set[str]:
    """Every object, partial write and (local) directory under `folder`."""
    storage = hub.storage
    if isinstance(storage, LocalStorage):
        top = storage.root / folder
        return {
            f"{path.relative_to(storage.root).as_posix()}{'/' if path.is_dir() else ''}"
            for path in top.rglob("*")
        }
    assert isinstance(storage, S3Storage)
    found = {key async for key in storage.list_keys(folder)}
    async for key, _upload_id, _initiated in storage._uploads(storage._folder(folder)):
        found.add(f"{key} (unfinished upload)")
    return found


@dataclass
class Workers:
    """The worker that dies and the one that takes over, both started at once: the
    survivor waits, already started up, until `take_over` lets it go."""

    doomed: WorkerProcess
    survivor: WorkerProcess
    gate: Path

    async def killed(self) -> None:
        code = await asyncio.to_thread(self.doomed.proc.wait, 60)
        assert code == -signal.SIGKILL, self.doomed.output()

    async def take_over(self, hub: Runtime, job: Job) -> Job:
        self.gate.touch()

        async def finished() -> bool:
            return (await load_job(hub, job.id)).status in TERMINAL

        await wait_until(finished, workers=[self.survivor], what="the job to finish")
        return await load_job(hub, job.id)


@contextlib.contextmanager
def workers(
    settings: Settings, logs: Path, storage_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workers]:
    """Start the doomed worker (RUN_WORKER_KILL_AT set) and the waiting survivor."""
    overrides = {} if storage_url is None else {"storage_url": storage_url}
    state = logs / "unused.json"
    doomed = start_worker(settings, state, "doomed", logs, **overrides)
    gate = logs / "take-over"
    with monkeypatch.context() as env:
        env.delenv(KILL_AT_ENV)
        env.setenv(START_WHEN_ENV, str(gate))
        survivor = start_worker(settings, state, "survivor", logs, **overrides)
    try:
        yield Workers(doomed=doomed, survivor=survivor, gate=gate)
        assert survivor.stop() == 0, survivor.output()
    finally:
        for process in (doomed, survivor):
            if process.proc.poll() is None:
                process.kill()


# Each case runs on one database, alternating: what a kill leaves is in storage, and the
# leases and writes that hand the job over are the same code on both (test_crash.py and
# test_michigan_crash.py run those on each). Both databases, at ~13 s a case, doubled the
# suite's longest file for nothing new.
PG = "postgresql" if "postgresql" in databases.backends() else "sqlite"
CASES = [
    *(
        (PG if index % 2 else "sqlite", "local", point, False)
        for index, point in enumerate(KILL_POINTS)
    ),
    (PG, "local", "body", True),
    ("sqlite", "s3", "body", True),
    (PG, "s3", "downloaded", False),
    ("sqlite", "s3", "marked", False),
]


@pytest.mark.parametrize(
    ("database_url", "storage", "point", "redirect"), CASES, indirect=["database_url"]
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

        with workers(settings, logs, storage_url, monkeypatch) as both:
            await both.killed()
            killed = await load_job(hub, job.id)
            assert killed.status not in TERMINAL
            assert killed.external_job_id is not None
            zip_source = f"{killed.external_job_id}/output/chr_20.zip"
            size = emulator.blob(job.id, "chr_20.zip").path.stat().st_size
            if point == "body":  # the first segment is kept; the second never arrived whole
                notes, first, _ = kept_keys(job, zip_source)
                assert await hub.storage.exists(notes)
                assert await hub.storage.size(first) == SEGMENT
            if point == "storing":  # the partial write of the member being stored stays
                assert any(
                    key.endswith(".tmp")
                    for key in await everything_under(hub, f"results/{job.id}/")
                )

            gets_before = Counter(d["name"] for d in emulator.downloads)
            assert gets_before["chr_20.zip"] >= 1
            arrived = ARRIVED_BEFORE[point]
            done = await both.take_over(hub, job)

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
        assert await everything_under(hub, f"results/{job.id}/") == {
            f.storage_key for f in files.values()
        }
