"""Run one real worker process against the fake connector, until SIGTERM or SIGINT.

    FAKE_CONNECTOR_STATE=/tmp/fake.json IMPUTEHUB_DATABASE_URL=... \
        python -m tests.support.run_worker

Settings come from the IMPUTEHUB_* environment like any worker's; the fake connector's
shared state file from FAKE_CONNECTOR_STATE, and the label its calls are recorded under
from FAKE_CONNECTOR_LABEL (default: the process id). Registered for api_type "michigan";
the other types get the real connectors.

Switches for crash tests of the real Michigan connector:
- RUN_WORKER_REAL_MICHIGAN=1: the real Michigan connector instead of the fake;
- RUN_WORKER_KILL_AFTER_SUBMIT=1: the process SIGKILLs itself the moment a Michigan submit
  returns, before the worker can record the service's job id;
- RUN_WORKER_KILL_AT=<point>: the real Michigan connector, in a process that SIGKILLs
  itself at a named point of fetching a job's zip (KILL_POINTS): `body` while the second
  kept segment of its body arrives, `downloaded` once it is kept completely, `storing` while
  its first member is being written to storage, `member` once its first member is stored,
  `marked` once it is marked fetched, `fetched` once the whole fetch returned (before the
  worker records the job completed);
- RUN_WORKER_DOWNLOAD_SEGMENT=<bytes>: the real Michigan connector keeps downloads in
  segments of this size.

RUN_WORKER_START_WHEN=<path>: the process starts up, then waits for the file to exist
before it works (a test starts it beside another and lets it go the moment it must take
over, without waiting for a process to start).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from imputehub.config import Settings
from imputehub.connectors.base import (
    Connector,
    ExternalRef,
    JobSpec,
    KeptDownload,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.michigan import MichiganConnector
from imputehub.runtime import build_runtime, default_connectors
from imputehub.worker.loop import Worker
from tests.support.fake_connector import FakeConnector

STATE_ENV = "FAKE_CONNECTOR_STATE"
LABEL_ENV = "FAKE_CONNECTOR_LABEL"
REAL_MICHIGAN_ENV = "RUN_WORKER_REAL_MICHIGAN"
KILL_AFTER_SUBMIT_ENV = "RUN_WORKER_KILL_AFTER_SUBMIT"
KILL_AT_ENV = "RUN_WORKER_KILL_AT"
SEGMENT_ENV = "RUN_WORKER_DOWNLOAD_SEGMENT"
START_WHEN_ENV = "RUN_WORKER_START_WHEN"
KILL_POINTS = ("body", "downloaded", "storing", "member", "marked", "fetched")


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("still alive after SIGKILL")


class DiesAfterSubmit(MichiganConnector):
    """The real connector, in a process that dies right after the service took the job."""

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        ref = await super().submit(service, job, credential, idempotency_key)
        os.kill(os.getpid(), signal.SIGKILL)
        return ref  # never reached


class DiesWhileFetching(MichiganConnector):
    """The real connector, in a process that dies at `point` (one of KILL_POINTS)."""

    def __init__(self, point: str, **options: Any) -> None:
        assert point in KILL_POINTS, point
        super().__init__(**options)
        self.point = point

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]:
        files = await super().fetch_results(service, ref, credential, KillingSink(sink, self.point))
        if self.point == "fetched":
            die()
        return files


class KillingSink:
    """The worker's sink, dying at `point` of storing the job's zip."""

    def __init__(self, sink: ResultSink, point: str) -> None:
        self.sink = sink
        self.point = point

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        if self.point == "storing" and name.endswith(".gz"):
            arriving = chunks

            async def dying() -> AsyncIterator[bytes]:
                async for chunk in arriving:
                    yield chunk
                    die()  # the first chunk is being written, the rest never comes

            chunks = dying()
        stored = await self.sink.store(name, chunks)
        if self.point == "member" and name.endswith(".gz"):
            die()
        return stored

    async def fetched(self, source: str) -> list[ResultFile] | None:
        return await self.sink.fetched(source)

    async def mark_fetched(self, source: str, files: Sequence[ResultFile]) -> None:
        await self.sink.mark_fetched(source, files)
        if self.point == "marked" and source.endswith(".zip"):
            die()

    def kept_download(self, source: str) -> KeptDownload:
        kept = self.sink.kept_download(source)
        return KillingKept(kept, self.point) if source.endswith(".zip") else kept


class KillingKept:
    """A kept download, dying at `point` of its arrival."""

    def __init__(self, kept: KeptDownload, point: str) -> None:
        self.kept = kept
        self.point = point

    async def notes(self) -> dict[str, Any] | None:
        return await self.kept.notes()

    async def save_notes(self, notes: Mapping[str, Any]) -> None:
        await self.kept.save_notes(notes)
        if self.point == "downloaded" and notes.get("complete") is True:
            die()

    async def write_segment(self, index: int, chunks: AsyncIterator[bytes]) -> int:
        if self.point == "body" and index == 1:

            async def dying() -> AsyncIterator[bytes]:
                async for chunk in chunks:
                    yield chunk
                    die()  # the first segment kept, the second arriving

            return await self.kept.write_segment(index, dying())
        return await self.kept.write_segment(index, chunks)

    def read_segment(self, index: int) -> AsyncIterator[bytes]:
        return self.kept.read_segment(index)

    async def drop_segments(self) -> None:
        await self.kept.drop_segments()

    async def forget(self) -> None:
        await self.kept.forget()


def michigan_connector() -> Connector:
    options: dict[str, Any] = {}
    if os.environ.get(SEGMENT_ENV):
        options["download_segment_size"] = int(os.environ[SEGMENT_ENV])
    if os.environ.get(KILL_AFTER_SUBMIT_ENV) == "1":
        return DiesAfterSubmit(**options)
    if os.environ.get(KILL_AT_ENV):
        return DiesWhileFetching(os.environ[KILL_AT_ENV], **options)
    if os.environ.get(REAL_MICHIGAN_ENV) == "1":
        return MichiganConnector(**options)
    return FakeConnector(
        Path(os.environ[STATE_ENV]), label=os.environ.get(LABEL_ENV, f"pid-{os.getpid()}")
    )


async def wait_for_file(path: Path, stop: asyncio.Event) -> None:
    """Until `path` exists, or `stop` is set."""
    while not await asyncio.to_thread(path.exists):
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
            return
        except TimeoutError:
            continue


async def main() -> None:
    settings = Settings.from_environ()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(process)d %(name)s %(message)s"
    )
    # The real connectors (the local engine among them) plus, unless switched, the fake
    # for "michigan".
    connectors = {**default_connectors(settings), "michigan": michigan_connector()}
    runtime = build_runtime(settings, connectors=connectors)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        gate = os.environ.get(START_WHEN_ENV)
        if gate:
            await wait_for_file(Path(gate), stop)
        await Worker(runtime, worker_id=os.environ.get(LABEL_ENV)).run(stop)
    finally:
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
