"""Resumable uploads: start one, receive its parts in any order, look at it, abort it.

The database is the record of what arrived: a part's row is written only after its bytes
are stored, so after any interruption (client or server) `upload_state` tells the client
exactly which parts to send again. Part bodies stream straight into storage; no
transaction is open while they do. Completion lives in `files/assembly.py`, expiry in
`files/upload_expiry.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Upload, UploadPart, User, new_id
from imputehub.db.session import lock_row
from imputehub.domain.errors import Conflict, Gone, InvalidInput, NotFound, PayloadTooLarge
from imputehub.domain.uploads import (
    FALLBACK_MAX_PART_COUNT,
    FALLBACK_MIN_PART_SIZE,
    UploadStatus,
    check_part_length,
    choose_part_size,
    expected_part_size,
    expiry,
    is_expired,
    missing_parts,
    normalise_sha256,
    part_count,
)
from imputehub.files import names, quota
from imputehub.files.storage import HashedStream, Storage
from imputehub.files.uploads import input_key
from imputehub.monitoring import counters
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class UploadRequest:
    filename: str
    size: int
    part_size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class PartRecord:
    index: int
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class UploadState:
    """An upload as its owner sees it: enough to resume from."""

    upload: Upload
    parts: list[PartRecord]
    missing: list[int]

    @property
    def received_bytes(self) -> int:
        return sum(part.size for part in self.parts)


def part_limits(storage: Storage) -> tuple[int, int]:
    """The backend's smallest part (all but the last) and largest number of parts."""
    min_size = getattr(storage, "min_part_size", None) or FALLBACK_MIN_PART_SIZE
    max_count = getattr(storage, "max_part_count", None) or FALLBACK_MAX_PART_COUNT
    return int(min_size), int(max_count)


async def get_upload(
    session: AsyncSession, user: User, upload_id: str, *, for_update: bool = False
) -> Upload:
    """The caller's own upload; anyone else's (admins' too) is "not found"."""
    statement = select(Upload).where(Upload.id == upload_id)
    if for_update:
        await lock_row(session, Upload, upload_id)
        statement = statement.execution_options(populate_existing=True)
    upload = await session.scalar(statement)
    if upload is None or upload.user_id != user.id or upload.status == UploadStatus.ABORTING:
        raise NotFound(f"upload {upload_id} not found")
    return upload


def require_unexpired(upload: Upload, now: datetime) -> None:
    if upload.status != UploadStatus.COMPLETED and is_expired(upload.expires_at, now):
        raise Gone(
            f"upload {upload.id} expired at {upload.expires_at.isoformat()}; start a new one",
            code="upload_expired",
        )


def completing_elsewhere(upload: Upload, now: datetime) -> bool:
    """Another request holds the upload while it assembles and checks the file."""
    return (
        upload.status == UploadStatus.COMPLETING
        and upload.completing_until is not None
        and upload.completing_until > now
    )


def require_open(upload: Upload, now: datetime) -> None:
    """Parts may still arrive: not completed, not being completed, not expired."""
    require_unexpired(upload, now)
    if upload.status == UploadStatus.COMPLETED:
        raise Conflict(
            f"upload {upload.id} is already complete (file {upload.file_id})",
            code="upload_completed",
        )
    if upload.status == UploadStatus.COMPLETING:
        raise Conflict(
            f"upload {upload.id} is being completed; it takes no more parts",
            code="upload_completing",
        )


def check_upload_size(size: int, limit: int) -> None:
    """Refuse a file of `size` bytes that the hub would not take (also a job's dry run)."""
    if size <= 0:
        raise InvalidInput("size must be a positive number of bytes", field="size")
    if size > limit:
        raise PayloadTooLarge(
            f"the file is larger than the limit of {limit} bytes",
            limit=limit,
        )


async def init_upload(
    runtime: Runtime, user: User, request: UploadRequest, *, now: datetime
) -> Upload:
    """Check the request, reserve quota and start the storage's multipart upload."""
    settings = runtime.settings
    check_upload_size(request.size, settings.max_upload_size)
    min_part_size, max_part_count = part_limits(runtime.storage)
    part_size = choose_part_size(
        request.size,
        request.part_size,
        min_part_size=min_part_size,
        max_part_count=max_part_count,
    )
    sha256 = normalise_sha256(request.sha256) if request.sha256 is not None else None
    filename = names.display_name(request.filename)
    key = input_key(user.id, filename, now)
    handle = await runtime.storage.create_multipart(key)
    try:
        async with runtime.db.session() as session:
            await quota.reserve_upload(
                session,
                user.id,
                request.size,
                quota=settings.storage_quota_bytes,
                pending_limit=settings.max_pending_upload_bytes,
            )
            upload = Upload(
                id=new_id(),
                user_id=user.id,
                filename=filename,
                storage_key=key,
                storage_handle=handle,
                size=request.size,
                part_size=part_size,
                part_count=part_count(request.size, part_size),
                sha256=sha256,
                status=UploadStatus.OPEN.value,
                created_at=now,
                updated_at=now,
                expires_at=expiry(now, settings.upload_expiry_seconds),
            )
            session.add(upload)
    except BaseException:
        await abort_quietly(runtime.storage, key, handle)
        raise
    log.info(
        "upload started",
        extra={
            "action": "upload_started",
            "upload_id": upload.id,
            "size": upload.size,
            "part_count": upload.part_count,
        },
    )
    return upload


async def upload_state(
    session: AsyncSession, user: User, upload_id: str, *, now: datetime
) -> UploadState:
    upload = await get_upload(session, user, upload_id)
    require_unexpired(upload, now)
    parts = await _parts(session, upload.id)
    missing = (
        []
        if upload.status == UploadStatus.COMPLETED
        else missing_parts(upload.part_count, (part.index for part in parts))
    )
    return UploadState(upload=upload, parts=parts, missing=missing)


async def receive_part(
    runtime: Runtime,
    user: User,
    upload_id: str,
    index: int,
    chunks: AsyncIterable[bytes],
    *,
    content_length: str | None,
    part_sha256: str | None,
    now: datetime,
) -> PartRecord:
    """Stream one part into storage, then record it; a wrong part is never kept.

    The part is checked while it streams (length and, when given, SHA-256) and the
    storage only keeps it if the stream ends cleanly, so an earlier good copy of the same
    part survives a bad resend.
    """
    declared = (
        normalise_sha256(part_sha256, field="X-Part-SHA256") if part_sha256 is not None else None
    )
    async with runtime.db.session() as session:
        upload = await get_upload(session, user, upload_id)
        require_open(upload, now)
        expected = expected_part_size(upload.size, upload.part_size, index)
        key, handle = upload.storage_key, upload.storage_handle
    if content_length is not None and content_length.isdigit():
        check_part_length(expected, int(content_length))
    batch = runtime.settings.upload_chunk_size
    async with contextlib.aclosing(
        CheckedPart(chunks, expected=expected, declared=declared, batch=batch)
    ) as checked:
        written = await runtime.storage.write_part(key, handle, index, checked, max_size=expected)
    part = PartRecord(index=index, size=written.size, sha256=written.sha256)
    async with runtime.db.session() as session:
        await lock_row(session, Upload, upload_id)
        current = await session.get(Upload, upload_id, populate_existing=True)
        if current is not None and current.status == UploadStatus.OPEN:
            await _record_part(session, current, part, now=now)
            # Counted with the part's row: one transaction per part, not two.
            await counters.increment(
                session, "imputehub_upload_bytes_total", {"kind": "chunked"}, part.size
            )
            current.expires_at = expiry(now, runtime.settings.upload_expiry_seconds)
            current.updated_at = now
    if current is None or current.status == UploadStatus.ABORTING:
        # Aborted or expired while the part streamed: do not leave it behind.
        await abort_quietly(runtime.storage, key, handle)
        raise NotFound(f"upload {upload_id} not found")
    if current.status != UploadStatus.OPEN:
        raise Conflict(
            f"upload {upload_id} was completed while part {index} arrived",
            code="upload_completing",
        )
    log.info(
        "upload part stored",
        extra={
            "action": "upload_part_stored",
            "upload_id": upload_id,
            "index": index,
            "size": part.size,
        },
    )
    return part


async def abort_upload(runtime: Runtime, user: User, upload_id: str, *, now: datetime) -> None:
    """Drop an unfinished (or expired) upload and free its storage."""
    async with runtime.db.session() as session:
        upload = await get_upload(session, user, upload_id, for_update=True)
        if upload.status == UploadStatus.COMPLETED:
            raise Conflict(
                f"upload {upload_id} is complete: it is file {upload.file_id}; "
                "delete that file instead",
                code="upload_completed",
            )
        if completing_elsewhere(upload, now):
            raise Conflict(f"upload {upload_id} is being completed", code="upload_completing")
        # Marked first: if freeing the storage fails, the worker's cleanup finishes it.
        upload.status = UploadStatus.ABORTING.value
        upload.updated_at = now
        key, handle = upload.storage_key, upload.storage_handle
    await free_storage(runtime.storage, key, handle)
    async with runtime.db.session() as session:
        await session.execute(delete(Upload).where(Upload.id == upload_id))
    log.info("upload aborted", extra={"action": "upload_aborted", "upload_id": upload_id})


async def free_storage(storage: Storage, key: str, handle: str) -> None:
    """Remove an unfinished upload's parts and any assembled object (no StoredFile has it)."""
    await storage.abort_multipart(key, handle)
    await storage.delete(key)


async def abort_quietly(storage: Storage, key: str, handle: str) -> None:
    try:
        await storage.abort_multipart(key, handle)
    except Exception:
        log.exception(
            "could not abort a multipart upload",
            extra={"action": "upload_abort_failed", "storage_key": key},
        )


async def _parts(session: AsyncSession, upload_id: str) -> list[PartRecord]:
    rows = await session.scalars(
        select(UploadPart).where(UploadPart.upload_id == upload_id).order_by(UploadPart.index)
    )
    return [PartRecord(index=row.index, size=row.size, sha256=row.sha256) for row in rows]


async def _record_part(
    session: AsyncSession, upload: Upload, part: PartRecord, *, now: datetime
) -> None:
    """Insert or replace the part's row (the caller holds the upload's row lock)."""
    row = await session.get(UploadPart, (upload.id, part.index))
    if row is None:
        session.add(
            UploadPart(
                upload_id=upload.id,
                index=part.index,
                size=part.size,
                sha256=part.sha256,
                received_at=now,
            )
        )
        return
    row.size = part.size
    row.sha256 = part.sha256
    row.received_at = now


class CheckedPart(HashedStream):
    """A part's bytes on their way to storage, checked as they pass, in `batch`-sized blocks.

    Raises inside the stream (so the storage discards the part) when the part grows past
    its size, or ends short of it, or its SHA-256 is not the one the client announced: the
    last block is only handed on once the whole part proved right. Network reads come in
    small pieces; they are joined into larger blocks (one copy, hashed in the same thread
    hop) so the storage makes few large writes and local disk need not hash them again.
    """

    def __init__(
        self, chunks: AsyncIterable[bytes], *, expected: int, declared: str | None, batch: int
    ) -> None:
        self._chunks = aiter(chunks)
        self._expected = expected
        self._declared = declared
        self._batch = batch
        self._digest = hashlib.sha256()
        self._size = 0
        self._done = False

    def __aiter__(self) -> CheckedPart:
        return self

    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        pieces: list[bytes] = []
        pending = 0
        while pending < self._batch:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._done = True
                break
            self._size += len(chunk)
            if self._size > self._expected:
                check_part_length(self._expected, self._size)
            pieces.append(chunk)
            pending += len(chunk)
        block = await asyncio.to_thread(_join_and_hash, pieces, self._digest) if pieces else b""
        if self._done:
            check_part_length(self._expected, self._size)
            if self._declared is not None and self._digest.hexdigest() != self._declared:
                raise InvalidInput(
                    "the part's SHA-256 is not the one given in X-Part-SHA256 "
                    "(it was damaged on the way); send it again",
                    code="part_checksum_mismatch",
                )
            if not block:
                raise StopAsyncIteration
        return block

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


def _join_and_hash(pieces: list[bytes], digest: hashlib._Hash) -> bytes:
    # CPU work, off the event loop: one copy (the join) and the hash, in one thread hop.
    block = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    digest.update(block)
    return block


@dataclass(frozen=True, kw_only=True)
class UnfinishedUpload:
    """An upload that has not become a file yet, as its owner's list shows it."""

    upload: Upload
    parts_received: int
    received_bytes: int
    expired: bool

    @property
    def share(self) -> float:
        return self.received_bytes / self.upload.size if self.upload.size else 0.0


async def unfinished_uploads(
    session: AsyncSession, user: User, *, now: datetime, limit: int = 50
) -> list[UnfinishedUpload]:
    """The caller's open (or completing) uploads, newest first; expired ones stay listed
    until the sweep removes them, so their owner sees why a resume will not work."""
    received = (
        select(
            UploadPart.upload_id,
            func.count().label("parts"),
            func.coalesce(func.sum(UploadPart.size), 0).label("bytes"),
        )
        .group_by(UploadPart.upload_id)
        .subquery()
    )
    rows = await session.execute(
        select(Upload, received.c.parts, received.c.bytes)
        .outerjoin(received, received.c.upload_id == Upload.id)
        .where(
            Upload.user_id == user.id,
            Upload.status.in_([UploadStatus.OPEN.value, UploadStatus.COMPLETING.value]),
        )
        .order_by(Upload.created_at.desc(), Upload.id.desc())
        .limit(limit)
    )
    return [
        UnfinishedUpload(
            upload=upload,
            parts_received=int(parts or 0),
            received_bytes=int(size or 0),
            expired=is_expired(upload.expires_at, now),
        )
        for upload, parts, size in rows
    ]
