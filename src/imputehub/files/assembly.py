"""Completing a resumable upload: join the parts, check the whole file, record it.

Completion runs in four steps, each safe to repeat: claim the upload (a short lease, so
two completes never assemble at once, and a crashed one is taken over once its lease
lapses); join the parts in storage (skipped when an earlier attempt already did); stream
the joined file once, counting its bytes, hashing it and feeding the VCF checker; and
record the file. A file that fails a check is deleted with its upload: nothing is kept.
Completing a completed upload returns the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from imputehub.db.models import StoredFile, Upload, UploadPart, User, new_id
from imputehub.db.session import lock_row
from imputehub.domain.errors import Conflict, Gone, InvalidInput, NotFound
from imputehub.domain.uploads import UploadStatus, expiry, missing_parts
from imputehub.files import chunked
from imputehub.files.vcf_check import VcfChecker
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

# How long a completing request holds the upload before another may take over; renewed
# while a large file is being checked.
COMPLETE_LEASE = timedelta(seconds=120)
# Bytes per read of the joined file while it is hashed and checked (at least).
CHECK_CHUNK_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Completion:
    record: StoredFile
    created: bool  # False: the upload was already complete, this is the same file


@dataclass(frozen=True, kw_only=True)
class _Plan:
    upload_id: str
    user_id: str
    filename: str
    key: str
    handle: str
    size: int
    sha256: str | None
    part_count: int


async def complete_upload(
    runtime: Runtime, user: User, upload_id: str, *, now: datetime
) -> Completion:
    claimed = await _claim(runtime, user, upload_id, now=now)
    if isinstance(claimed, StoredFile):
        return Completion(record=claimed, created=False)
    plan = claimed
    storage = runtime.storage
    recovered = await storage.exists(plan.key)
    if not recovered:
        try:
            await storage.complete_multipart(plan.key, plan.handle, list(range(plan.part_count)))
        except NotFound:
            await _drop(runtime, plan)
            raise Gone(
                f"the parts of upload {upload_id} are no longer stored; start the upload again",
                code="upload_lost",
            ) from None
        except InvalidInput:
            missing = await _reopen_with_stored_parts(runtime, plan, now=now)
            if not missing:
                raise  # refused for another reason: the storage's own message says which
            raise _incomplete(upload_id, plan.part_count, missing) from None
    try:
        sha256, report = await _check(runtime, plan)
    except InvalidInput:
        await _drop(runtime, plan)
        raise
    record = await _record(runtime, plan, sha256=sha256, report=report, now=now)
    if record is None:
        # Dropped while we checked it: the joined file belongs to nobody now.
        await storage.delete(plan.key)
        raise Conflict(f"upload {upload_id} was aborted while it was being completed")
    if recovered:
        # An earlier attempt joined the parts and died; make sure none are left over.
        await chunked.abort_quietly(storage, plan.key, plan.handle)
    log.info(
        "upload completed",
        extra={
            "action": "upload_completed",
            "upload_id": plan.upload_id,
            "file_id": record.id,
            "size": record.size,
        },
    )
    return Completion(record=record, created=True)


async def _claim(
    runtime: Runtime, user: User, upload_id: str, *, now: datetime
) -> _Plan | StoredFile:
    """Take the upload for completing, or return its file when it is already complete."""
    async with runtime.db.session() as session:
        upload = await chunked.get_upload(session, user, upload_id, for_update=True)
        if upload.status == UploadStatus.COMPLETED:
            record = await session.get(StoredFile, upload.file_id) if upload.file_id else None
            if record is None:
                raise NotFound(f"the file made from upload {upload_id} has been deleted")
            return record
        chunked.require_unexpired(upload, now)
        if chunked.completing_elsewhere(upload, now):
            raise Conflict(
                f"upload {upload_id} is being completed by another request; ask again shortly",
                code="upload_completing",
            )
        present = await session.scalars(
            select(UploadPart.index).where(UploadPart.upload_id == upload_id)
        )
        missing = missing_parts(upload.part_count, present)
        if missing:
            raise _incomplete(upload_id, upload.part_count, missing)
        upload.status = UploadStatus.COMPLETING.value
        upload.completing_until = now + COMPLETE_LEASE
        upload.updated_at = now
        return _Plan(
            upload_id=upload.id,
            user_id=upload.user_id,
            filename=upload.filename,
            key=upload.storage_key,
            handle=upload.storage_handle,
            size=upload.size,
            sha256=upload.sha256,
            part_count=upload.part_count,
        )


async def _check(runtime: Runtime, plan: _Plan) -> tuple[str, dict[str, Any]]:
    """Stream the joined file once: its size, SHA-256 and VCF report; InvalidInput if bad."""
    digest = hashlib.sha256()
    checker = VcfChecker()
    size = 0
    loop = asyncio.get_running_loop()
    renew_at = loop.time() + COMPLETE_LEASE.total_seconds() / 3

    # Three things overlap: reading the next chunk, hashing this one (hashlib lets go of
    # the GIL) and checking it as VCF, each in a thread of its own, a bounded chunk at a time.
    chunk_size = max(runtime.settings.upload_chunk_size, CHECK_CHUNK_SIZE)
    stream = aiter(runtime.storage.read(plan.key, chunk_size=chunk_size))
    ahead: asyncio.Future[bytes] = asyncio.ensure_future(anext(stream, b""))
    try:
        while chunk := await ahead:
            ahead = asyncio.ensure_future(anext(stream, b""))
            size += len(chunk)
            await asyncio.gather(
                asyncio.to_thread(digest.update, chunk),
                # returns at once after a fatal problem: hashing goes on
                asyncio.to_thread(checker.feed, chunk),
            )
            if loop.time() >= renew_at:
                await _renew(runtime, plan)
                renew_at = loop.time() + COMPLETE_LEASE.total_seconds() / 3
    finally:
        ahead.cancel()  # a read still under way (the loop stopped early)
        await asyncio.wait([ahead])
        if not ahead.cancelled():
            ahead.exception()  # seen: its error, if any, is not ours to report
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    report = await asyncio.to_thread(checker.finish)
    if size != plan.size:
        raise InvalidInput(
            f"the assembled file has {size} bytes, not the {plan.size} bytes declared; "
            "nothing was kept, upload the file again",
            code="size_mismatch",
        )
    sha256 = digest.hexdigest()
    if plan.sha256 is not None and sha256 != plan.sha256:
        raise InvalidInput(
            f"the assembled file's SHA-256 is {sha256}, not the {plan.sha256} declared; "
            "nothing was kept, upload the file again",
            code="sha256_mismatch",
        )
    # Checked last: bytes damaged on the way would also look like a broken VCF.
    if report.fatal:
        reason = next((p.message for p in report.problems if p.fatal), "see the report")
        raise InvalidInput(
            f"'{plan.filename}' is not a VCF the hub can use: {reason}",
            code="invalid_vcf",
            report=report.to_dict(),
        )
    return sha256, report.to_dict()


async def _renew(runtime: Runtime, plan: _Plan) -> None:
    async with runtime.db.session() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == plan.upload_id, Upload.status == UploadStatus.COMPLETING.value)
            .values(completing_until=runtime.clock.now() + COMPLETE_LEASE)
        )


async def _record(
    runtime: Runtime, plan: _Plan, *, sha256: str, report: dict[str, Any], now: datetime
) -> StoredFile | None:
    """The file's row, and the upload marked complete; None if the upload is gone."""
    async with runtime.db.session() as session:
        await lock_row(session, Upload, plan.upload_id)
        upload = await session.get(Upload, plan.upload_id, populate_existing=True)
        if upload is None or upload.status != UploadStatus.COMPLETING:
            return None
        record = StoredFile(
            id=new_id(),
            user_id=plan.user_id,
            kind="input",
            filename=plan.filename,
            storage_key=plan.key,
            size=plan.size,
            sha256=sha256,
            validation=report,
            created_at=now,
        )
        session.add(record)
        await session.flush()
        upload.status = UploadStatus.COMPLETED.value
        upload.file_id = record.id
        upload.completing_until = None
        upload.updated_at = now
        # Kept a while so a client that missed the answer can complete again.
        upload.expires_at = expiry(now, runtime.settings.upload_expiry_seconds)
        await session.execute(delete(UploadPart).where(UploadPart.upload_id == plan.upload_id))
    return record


async def _drop(runtime: Runtime, plan: _Plan) -> None:
    """A failed check: the joined file, any parts and the upload itself go."""
    async with runtime.db.session() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == plan.upload_id)
            .values(status=UploadStatus.ABORTING.value)
        )
    await chunked.free_storage(runtime.storage, plan.key, plan.handle)
    async with runtime.db.session() as session:
        await session.execute(delete(Upload).where(Upload.id == plan.upload_id))
    log.info(
        "upload refused at completion",
        extra={"action": "upload_refused", "upload_id": plan.upload_id},
    )


async def _reopen_with_stored_parts(runtime: Runtime, plan: _Plan, *, now: datetime) -> list[int]:
    """The storage lacks parts the database lists: forget those, so the client resends them.

    Returns the indexes now missing.
    """
    stored = await runtime.storage.list_parts(plan.key, plan.handle)
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(UploadPart).where(UploadPart.upload_id == plan.upload_id)
        )
        kept = []
        for row in rows:
            if stored.get(row.index) == row.size:
                kept.append(row.index)
            else:
                await session.delete(row)
        await session.execute(
            update(Upload)
            .where(Upload.id == plan.upload_id)
            .values(status=UploadStatus.OPEN.value, completing_until=None, updated_at=now)
        )
    log.warning(
        "storage lost parts of an upload",
        extra={"action": "upload_parts_lost", "upload_id": plan.upload_id},
    )
    return missing_parts(plan.part_count, kept)


def _incomplete(upload_id: str, count: int, missing: list[int]) -> Conflict:
    return Conflict(
        f"{len(missing)} of {count} parts of upload {upload_id} have not arrived "
        f"(missing: {_summary(missing)}); send them, then complete again",
        code="upload_incomplete",
        missing=missing,
    )


def _summary(indexes: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(index) for index in indexes[:limit])
    return shown + (f" and {len(indexes) - limit} more" if len(indexes) > limit else "")
