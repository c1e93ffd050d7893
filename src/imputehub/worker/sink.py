"""The ResultSink the worker hands to connectors: stores each fetched result file.

Bytes stream into storage under `results/{job_id}/{safe name}`; the file's record is
upserted by that key, so fetching again after a crash replaces files, never duplicates them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from sqlalchemy import select

from imputehub.connectors.base import ResultFile
from imputehub.db.models import StoredFile
from imputehub.runtime import Runtime
from imputehub.worker.leases import Claim, LeaseLost, lock_leased_job

MAX_NAME = 200
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
