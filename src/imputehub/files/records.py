"""Stored files as their owners see them: look up, list, read back, delete.

A user sees only their own files (another user's file is "not found"); admins see all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import is_admin
from imputehub.db.models import Job, JobInput, StoredFile, User
from imputehub.domain.errors import Conflict, InvalidInput, NotFound
from imputehub.domain.jobs import ACTIVE
from imputehub.files.storage import CHUNK_SIZE, Storage
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


async def get_file(
    session: AsyncSession, user: User, file_id: str, *, for_update: bool = False
) -> StoredFile:
    statement = select(StoredFile).where(StoredFile.id == file_id)
    if for_update:
        statement = statement.with_for_update()
    record = await session.scalar(statement)
    if record is None or (record.user_id != user.id and not is_admin(user)):
        raise NotFound(f"file {file_id} not found")
    return record


@dataclass(frozen=True, kw_only=True)
class FilePage:
    items: Sequence[StoredFile]
    total: int
    limit: int
    offset: int


async def list_files(
    session: AsyncSession, user: User, *, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> FilePage:
    """The caller's own files (uploads and results), newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    mine = StoredFile.user_id == user.id
    total = int(await session.scalar(select(func.count()).select_from(StoredFile).where(mine)) or 0)
    rows = await session.scalars(
        select(StoredFile)
        .where(mine)
        .order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return FilePage(items=list(rows), total=total, limit=limit, offset=offset)


@dataclass(frozen=True, kw_only=True)
class FileContent:
    record: StoredFile
    chunks: AsyncIterator[bytes]


class _Resumed:
    """A stream whose first chunk was already read, with that chunk put back in front."""

    def __init__(self, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self._first = first
        self._rest = rest

    def __aiter__(self) -> _Resumed:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            chunk, self._first = self._first, b""
            return chunk
        return await anext(self._rest)


async def open_content(
    session: AsyncSession,
    storage: Storage,
    user: User,
    file_id: str,
    *,
    start: int = 0,
    end: int | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> FileContent:
    """The file's record and its bytes [start, end) as a stream.

    The first chunk is read here, so missing bytes raise NotFound before any response
    has started rather than cutting a download short.
    """
    record = await get_file(session, user, file_id)
    chunks = await read_content(storage, record, start=start, end=end, chunk_size=chunk_size)
    return FileContent(record=record, chunks=chunks)


async def read_content(
    storage: Storage,
    record: StoredFile,
    *,
    start: int = 0,
    end: int | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> AsyncIterator[bytes]:
    """Bytes [start, end) of a file the caller may read; NotFound now if they are gone."""
    stream = aiter(storage.read(record.storage_key, start=start, end=end, chunk_size=chunk_size))
    first = await anext(stream, b"")
    return _Resumed(first, stream)


async def delete_file(runtime: Runtime, user: User, file_id: str) -> None:
    """Delete the file's row, then its bytes; refused while an active job uses it.

    Finished jobs that used it simply lose it from their list of inputs.
    """
    async with runtime.db.session() as session:
        record = await get_file(session, user, file_id, for_update=True)
        busy = await session.scalar(
            select(Job.id)
            .join(JobInput, JobInput.job_id == Job.id)
            .where(JobInput.file_id == record.id, Job.status.in_([s.value for s in ACTIVE]))
            .limit(1)
        )
        if busy is not None:
            raise Conflict(
                f"file {file_id} is an input of active job {busy}; "
                "cancel the job or wait until it finishes"
            )
        await session.execute(delete(JobInput).where(JobInput.file_id == record.id))
        await session.delete(record)
        key = record.storage_key
    # Only after the commit: a failed delete leaves stray bytes, never a row without bytes.
    try:
        await runtime.storage.delete(key)
    except Exception:
        log.exception(
            "could not remove a file's bytes",
            extra={"action": "file_bytes_delete_failed", "file_id": file_id},
        )
    log.info("file deleted", extra={"action": "file_deleted", "file_id": file_id})


@dataclass(frozen=True, kw_only=True)
class JobRef:
    id: str
    name: str
    status: str


async def jobs_of_files(
    session: AsyncSession, files: Sequence[StoredFile]
) -> dict[str, list[JobRef]]:
    """For each file (already checked as the caller's): the jobs it is an input of, or the
    job whose result it is, newest first. Files without a job map to an empty list."""
    found: dict[str, list[JobRef]] = {f.id: [] for f in files}
    if not found:
        return found
    inputs = await session.execute(
        select(JobInput.file_id, Job.id, Job.name, Job.status)
        .join(Job, Job.id == JobInput.job_id)
        .where(JobInput.file_id.in_(list(found)))
        .order_by(Job.created_at.desc(), Job.id.desc())
    )
    for file_id, job_id, name, status in inputs:
        found[file_id].append(JobRef(id=job_id, name=name, status=status))
    owners = {f.job_id for f in files if f.job_id is not None}
    if owners:
        jobs = await session.execute(
            select(Job.id, Job.name, Job.status).where(Job.id.in_(list(owners)))
        )
        by_id = {job_id: JobRef(id=job_id, name=name, status=s) for job_id, name, s in jobs}
        for f in files:
            ref = by_id.get(f.job_id or "")
            if ref is not None and ref not in found[f.id]:
                found[f.id].append(ref)
    return found
