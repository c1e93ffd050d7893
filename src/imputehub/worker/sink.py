"""The ResultSink the worker hands to connectors: stores each fetched result file.

Bytes stream into storage under `results/{job_id}/{safe name}`; the file's record is
upserted by that key, so fetching again after a crash replaces files, never duplicates them.

A connector whose service limits downloads marks each service file it stored completely;
the mark is a small JSON object in storage (`results/{job_id}/.fetched/{digest}.json`), so
a fetch retried on any worker or machine sees it and skips that file. While such a file
arrives, it is kept in storage too (`StoredDownload`: numbered segments under
`results/{job_id}/.downloads/{digest}/` and the connector's notes beside them), so a retry
after any crash resumes it instead of spending another download. Keys name the service's
file by a digest of its `source`, never by anything secret. A connector forgets a file's
kept download once the file is stored, or when its fetch fails for good; the fetch that
completes the job removes the marks and kept downloads it saw or wrote (`forget_marks`).
A mark left by a crash in between is a few hundred bytes; what a job that ran out of
transient retries kept is not removed here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from imputehub.connectors.base import ResultFile
from imputehub.db.models import StoredFile
from imputehub.runtime import Runtime
from imputehub.worker.leases import Claim, LeaseLost, lock_leased_job

MAX_NAME = 200
# safe_name never starts with a dot: no clash with a result
FETCHED_DIR = ".fetched"
DOWNLOADS_DIR = ".downloads"
MAX_MARK_BYTES = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file name that is safe as a storage key part and in a download header.

    Services choose result names; only the last path component survives, other characters
    become '_', and a name never starts with a dot (no hidden files, no '..').
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")
    return cleaned[-MAX_NAME:] or "result"


class StorageSink:
    """Stores the results of one job while `claim` still holds its lease."""

    def __init__(self, runtime: Runtime, claim: Claim, *, user_id: str) -> None:
        self.runtime = runtime
        self.claim = claim
        self.user_id = user_id
        self._names: dict[str, str] = {}  # service's name -> stored name, within one fetch
        self._sources: set[str] = set()  # service files whose marks or downloads it touched

    def _unique(self, name: str) -> str:
        """The stored name for `name`; two service names never share one stored file."""
        if name in self._names:
            return self._names[name]
        candidate, n = safe_name(name), 1
        taken = set(self._names.values())
        while candidate in taken:
            n += 1
            stem, dot, ext = safe_name(name).partition(".")
            candidate = f"{stem}-{n}{dot}{ext}"
        self._names[name] = candidate
        return candidate

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        stored_name = self._unique(name)
        key = f"results/{self.claim.job_id}/{stored_name}"
        written = await self.runtime.storage.write(key, chunks)
        now = self.runtime.clock.now()
        async with self.runtime.db.session() as session:
            if await lock_leased_job(session, self.claim) is None:
                raise LeaseLost(self.claim.job_id)
            record = await session.scalar(select(StoredFile).where(StoredFile.storage_key == key))
            if record is None:
                record = StoredFile(storage_key=key, kind="result")
                session.add(record)
            record.user_id = self.user_id
            record.job_id = self.claim.job_id
            record.filename = stored_name
            record.size = written.size
            record.sha256 = written.sha256
            record.created_at = now
        return ResultFile(name=stored_name, size=written.size, sha256=written.sha256)

    # ---- files fetched completely by an earlier attempt ----------------------------------

    def _mark_key(self, source: str) -> str:
        self._sources.add(source)
        return f"results/{self.claim.job_id}/{FETCHED_DIR}/{_digest(source)}.json"

    def kept_download(self, source: str) -> StoredDownload:
        self._sources.add(source)
        return StoredDownload(self.runtime, self.claim, source)

    async def forget_marks(self) -> None:
        """Remove the marks and kept downloads this fetch saw or wrote: the job has all
        its results now."""
        for source in sorted(self._sources):
            await self.runtime.storage.delete(self._mark_key(source))
            await StoredDownload(self.runtime, self.claim, source).forget()
        self._sources.clear()

    async def fetched(self, source: str) -> list[ResultFile] | None:
        key = self._mark_key(source)
        if not await self.runtime.storage.exists(key):
            return None
        mark = await _read_json(self.runtime, key)
        if mark is None or mark.get("source") != source:
            return None
        entries = [e for e in mark.get("files") or [] if isinstance(e, dict)]
        keys = [f"results/{self.claim.job_id}/{e.get('name')}" for e in entries]
        async with self.runtime.db.session() as session:
            rows = await session.scalars(select(StoredFile).where(StoredFile.storage_key.in_(keys)))
            present = {row.storage_key: row for row in rows}
        files: list[ResultFile] = []
        for stored_key, entry in zip(keys, entries, strict=True):
            row = present.get(stored_key)
            if row is None or row.job_id != self.claim.job_id or row.sha256 != entry.get("sha256"):
                return None  # the stored copy is gone or differs: fetch the file again
            files.append(ResultFile(name=row.filename, size=row.size, sha256=row.sha256))
        for entry, file in zip(entries, files, strict=True):
            # Later files of this fetch must not take the names these already hold.
            self._names[str(entry.get("service_name") or file.name)] = file.name
        return files

    async def mark_fetched(self, source: str, files: Sequence[ResultFile]) -> None:
        by_stored = {stored: service for service, stored in self._names.items()}
        mark = {
            "source": source,
            "files": [
                {
                    "name": f.name,
                    "service_name": by_stored.get(f.name, f.name),
                    "size": f.size,
                    "sha256": f.sha256,
                }
                for f in files
            ],
        }
        body = json.dumps(mark).encode()

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        await self.runtime.storage.write(self._mark_key(source), chunks())


class StoredDownload:
    """A service file's download kept in storage while it arrives (the KeptDownload of
    connectors/base.py): segment i at `results/{job}/.downloads/{digest}/{i}`, the
    connector's notes at `results/{job}/.downloads/{digest}.json`.

    Segments are written in index order, each replacing any old one of its index, so the
    stored ones always run from 0 without a gap (deleting goes from the last down), and
    finding them needs no listing. Writing checks the job's lease first: a worker that lost
    the job stops before it overwrites what the new holder keeps.
    """

    def __init__(self, runtime: Runtime, claim: Claim, source: str) -> None:
        self.runtime = runtime
        self.claim = claim
        self.source = source
        folder = f"results/{claim.job_id}/{DOWNLOADS_DIR}/{_digest(source)}"
        self._notes_key = f"{folder}.json"
        self._folder = folder

    def _segment_key(self, index: int) -> str:
        return f"{self._folder}/{index}"

    async def notes(self) -> dict[str, Any] | None:
        if not await self.runtime.storage.exists(self._notes_key):
            return None
        stored = await _read_json(self.runtime, self._notes_key)
        if stored is None or stored.get("source") != self.source:
            return None
        notes = stored.get("notes")
        return notes if isinstance(notes, dict) else None

    async def save_notes(self, notes: Mapping[str, Any]) -> None:
        await self._check_lease()
        body = json.dumps({"source": self.source, "notes": dict(notes)}).encode()

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        await self.runtime.storage.write(self._notes_key, chunks())

    async def write_segment(self, index: int, chunks: AsyncIterator[bytes]) -> int:
        await self._check_lease()
        return (await self.runtime.storage.write(self._segment_key(index), chunks)).size

    def read_segment(self, index: int) -> AsyncIterator[bytes]:
        return self.runtime.storage.read(self._segment_key(index))

    async def drop_segments(self) -> None:
        count = 0
        while await self.runtime.storage.exists(self._segment_key(count)):
            count += 1
        for index in reversed(range(count)):
            await self.runtime.storage.delete(self._segment_key(index))

    async def forget(self) -> None:
        await self.drop_segments()
        await self.runtime.storage.delete(self._notes_key)

    async def _check_lease(self) -> None:
        async with self.runtime.db.session() as session:
            if await lock_leased_job(session, self.claim) is None:
                raise LeaseLost(self.claim.job_id)


def _digest(source: str) -> str:
    """A service file's name in storage keys: unique per source, secret-free."""
    return hashlib.sha256(source.encode()).hexdigest()[:40]


async def _read_json(runtime: Runtime, key: str) -> dict[str, Any] | None:
    """A small JSON object from storage; a large or garbled one counts as none."""
    body = bytearray()
    async for chunk in runtime.storage.read(key):
        body.extend(chunk)
        if len(body) > MAX_MARK_BYTES:
            return None
    try:
        value = json.loads(bytes(body))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
