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
kept download once the file is stored, or when its fetch fails for good. Once the job is
finished (completed, failed or cancelled) the worker that finished it removes all of its
marks and kept downloads (`retention.discard_fetch_state`); if it dies first, the
retention chore's sweep does. Each fetch attempt first removes the partial writes an
interrupted attempt left under `results/{job_id}/` (`discard_partials`): it holds the job's
lease, so no live writer of this job's results is left there.

A service is untrusted, so its results are bounded as they stream in: all result files of
one job together may hold at most `max_result_bytes` (the service's api_config) or else
IMPUTEHUB_MAX_RESULT_BYTES_PER_JOB, and, with a storage quota, no more than the owner has
left. A file that would pass either limit is not stored at all and fails the job for good
(a re-store of a file replaces it, so its old size does not count).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.connectors.base import ResultFile
from imputehub.db.models import Job, Service, StoredFile, User
from imputehub.db.session import lock_row
from imputehub.domain.errors import PayloadTooLarge, PermanentServiceError
from imputehub.files.quota import bytes_in_use
from imputehub.files.retention import DOWNLOADS_DIR, FETCHED_DIR, results_folder
from imputehub.registry import rules
from imputehub.runtime import Runtime
from imputehub.worker.leases import Claim, LeaseLost, lock_leased_job

MAX_NAME = 200
# FETCHED_DIR and DOWNLOADS_DIR start with a dot, which safe_name never does: no clash
# with a result.
MAX_MARK_BYTES = 1024 * 1024
# The api_config key that bounds one job's results at a service (a positive whole number).
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
        async with self.runtime.db.session() as session:
            room = await self._room(session, key)
        try:
            written = await self.runtime.storage.write(key, chunks, max_size=room.size)
        except PayloadTooLarge as exc:
            raise PermanentServiceError(room.message) from exc
        now = self.runtime.clock.now()
        over_quota = False
        async with self.runtime.db.session() as session:
            if await lock_leased_job(session, self.claim) is None:
                raise LeaseLost(self.claim.job_id)
            record = await session.scalar(select(StoredFile).where(StoredFile.storage_key == key))
            over_quota = await self._past_quota(session, record, written.size)
            if over_quota:
                # Its bytes already replaced the old copy's: neither stays.
                await self.runtime.storage.delete(key)
                if record is not None:
                    await session.delete(record)
            else:
                if record is None:
                    record = StoredFile(storage_key=key, kind="result")
                    session.add(record)
                record.user_id = self.user_id
                record.job_id = self.claim.job_id
                record.filename = stored_name
                record.size = written.size
                record.sha256 = written.sha256
                record.created_at = now
        if over_quota:
            raise PermanentServiceError(_quota_message(self.runtime.settings.storage_quota_bytes))
        return ResultFile(name=stored_name, size=written.size, sha256=written.sha256)

    async def _past_quota(
        self, session: AsyncSession, record: StoredFile | None, size: int
    ) -> bool:
        """Whether `size` more bytes (replacing `record`) pass the owner's storage quota.

        Uploads of the same user may have taken room since `_room` looked: check again
        under the user's lock, as uploads do, before the bytes count as stored.
        """
        quota = self.runtime.settings.storage_quota_bytes
        if quota is None:
            return False
        await lock_row(session, User, self.user_id)
        used = await bytes_in_use(session, self.user_id)
        if record is not None and record.user_id == self.user_id:
            used -= record.size
        return used + size > quota

    async def _room(self, session: AsyncSession, key: str) -> _Room:
        """How many bytes the file stored under `key` may have, and what to say past that."""
        config = await session.scalar(
            select(Service.api_config)
            .join(Job, Job.service_id == Service.id)
            .where(Job.id == self.claim.job_id)
        )
        limit = result_limit(config or {}, self.runtime.settings.max_result_bytes_per_job)
        others = await session.scalar(
            select(func.coalesce(func.sum(StoredFile.size), 0)).where(
                StoredFile.job_id == self.claim.job_id,
                StoredFile.kind == "result",
                StoredFile.storage_key != key,
            )
        )
        room = _Room(size=max(limit - int(others or 0), 0), message=_limit_message(limit))
        quota = self.runtime.settings.storage_quota_bytes
        if quota is None:
            return room
        used = await bytes_in_use(session, self.user_id)
        replaced = await session.scalar(
            select(StoredFile.size).where(
                StoredFile.storage_key == key, StoredFile.user_id == self.user_id
            )
        )
        left = max(quota - (used - int(replaced or 0)), 0)
        return room if room.size <= left else _Room(size=left, message=_quota_message(quota))

    # ---- files fetched completely by an earlier attempt ----------------------------------

    async def discard_partials(self) -> int:
        """Remove what writes of an interrupted attempt left half-written; call before
        this attempt stores anything."""
        return await self.runtime.storage.discard_partials(
            results_folder(self.claim.job_id), before=None
        )

    def _mark_key(self, source: str) -> str:
        return f"{results_folder(self.claim.job_id)}{FETCHED_DIR}/{_digest(source)}.json"

    def kept_download(self, source: str) -> StoredDownload:
        return StoredDownload(self.runtime, self.claim, source)

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
        folder = f"{results_folder(claim.job_id)}{DOWNLOADS_DIR}/{_digest(source)}"
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


@dataclass(frozen=True, kw_only=True)
class _Room:
    size: int  # bytes the next result file may have
    message: str  # why the job fails when it has more


def result_limit(config: Mapping[str, Any], default: int) -> int:
    """The bytes of results one job at the service may store: its `max_result_bytes` if
    that is a positive whole number, else `default` (IMPUTEHUB_MAX_RESULT_BYTES_PER_JOB)."""
    value = config.get(rules.RESULT_BYTES)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def human_bytes(size: int) -> str:
    """`size` in the largest binary unit it is a whole number of, e.g. '200 GiB'."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _limit_message(limit: int) -> str:
    return (
        f"the results of this job exceed the limit of {human_bytes(limit)} "
        "(IMPUTEHUB_MAX_RESULT_BYTES_PER_JOB, or the service's max_result_bytes); "
        "nothing more was stored"
    )


def _quota_message(quota: int | None) -> str:
    return (
        f"the results of this job exceed what is left of the owner's storage quota of "
        f"{human_bytes(quota or 0)} (IMPUTEHUB_STORAGE_QUOTA_BYTES); nothing more was stored"
    )


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
