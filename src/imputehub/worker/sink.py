"""The ResultSink the worker hands to connectors: stores each fetched result file.

Bytes stream into storage under `results/{job_id}/{safe name}`; the file's record is
upserted by that key, so fetching again after a crash replaces files, never duplicates them.

A connector whose service limits downloads marks each service file it stored completely;
the mark is a small JSON object in storage (`results/{job_id}/.fetched/{digest}.json`), so
a fetch retried on any worker or machine sees it and skips that file. The fetch that
completes the job removes the marks it saw or wrote (`forget_marks`); one left by a crash
in between, or by a fetch that failed for good, is a few hundred bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select

from imputehub.connectors.base import ResultFile
from imputehub.db.models import StoredFile
from imputehub.runtime import Runtime
from imputehub.worker.leases import Claim, LeaseLost, lock_leased_job

MAX_NAME = 200
FETCHED_DIR = ".fetched"  # safe_name never starts with a dot: no clash with a result
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
        self._marks: set[str] = set()  # storage keys of the marks this fetch looked at

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
        digest = hashlib.sha256(source.encode()).hexdigest()[:40]
        key = f"results/{self.claim.job_id}/{FETCHED_DIR}/{digest}.json"
        self._marks.add(key)
        return key

    async def forget_marks(self) -> None:
        """Remove the marks this fetch saw or wrote: the job has all its results now."""
        for key in sorted(self._marks):
            await self.runtime.storage.delete(key)
        self._marks.clear()

    async def fetched(self, source: str) -> list[ResultFile] | None:
        key = self._mark_key(source)
        if not await self.runtime.storage.exists(key):
            return None
        mark = await self._read_mark(key)
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

    async def _read_mark(self, key: str) -> dict[str, Any] | None:
        """The mark's JSON; a mark is small, so a large or garbled one counts as none."""
        body = bytearray()
        async for chunk in self.runtime.storage.read(key):
            body.extend(chunk)
            if len(body) > MAX_MARK_BYTES:
                return None
        try:
            mark = json.loads(bytes(body))
        except ValueError:
            return None
        return mark if isinstance(mark, dict) else None
