"""Uploads: streaming a client's bytes into storage, then recording them.

Bytes are staged first (written under a key the hub makes up) and recorded in the
database afterwards, in the caller's transaction. A failure at any point removes what was
staged, so nothing is ever half-stored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import StoredFile, new_id
from imputehub.domain.errors import InvalidInput, PayloadTooLarge
from imputehub.files import names
from imputehub.files.quota import require_room
from imputehub.files.storage import Storage
from imputehub.files.vcf_check import VcfChecker, VcfReport

log = logging.getLogger(__name__)

INPUT_PREFIX = "inputs"


@dataclass(frozen=True, kw_only=True)
class StagedUpload:
    """Bytes in storage that no database row points at yet."""

    key: str
    filename: str
    size: int
    sha256: str
    # The pre-flight VCF report (VcfReport.to_dict()), stored with the file's record.
    validation: dict[str, Any] | None = None


def input_key(user_id: str, client_name: str, now: datetime) -> str:
    """`inputs/{user}_{UTC timestamp}_{random}.{ext}`; only the suffix comes from the client."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = names.storage_suffix(client_name)
    return f"{INPUT_PREFIX}/{user_id}_{stamp}_{secrets.token_hex(8)}.{suffix}"


class UploadBudget:
    """Bytes a request may still store; shared by all files of one request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, amount: int) -> None:
        self.used += amount
        if self.used > self.limit:
            raise PayloadTooLarge(
                f"the upload is larger than the limit of {self.limit} bytes",
                limit=self.limit,
            )


class _Counted:
    """Passes chunks through, charging each to the budget before storage sees it."""

    def __init__(self, chunks: AsyncIterable[bytes], budget: UploadBudget) -> None:
        self._chunks = aiter(chunks)
        self._budget = budget

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self._budget.take(len(chunk))
        return chunk


def invalid_vcf(filename: str, report: VcfReport) -> InvalidInput:
    """The refusal of a file that is no readable VCF; the report goes with it."""
    reason = next((p.message for p in report.problems if p.fatal), "see the report")
    return InvalidInput(
        f"'{filename}' is not a VCF the hub can use: {reason}",
        code="invalid_vcf",
        report=report.to_dict(),
    )


class _Checked:
    """Passes chunks through, feeding each to the VCF checker on the way (one pass).

    Bytes that cannot be a VCF stop the upload at once rather than after the whole file.
    """

    def __init__(self, chunks: AsyncIterable[bytes], checker: VcfChecker, filename: str) -> None:
        self._chunks = aiter(chunks)
        self._checker = checker
        self._filename = filename

    def __aiter__(self) -> _Checked:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        # Decompressing and parsing are CPU work: off the event loop.
        await asyncio.to_thread(self._checker.feed, chunk)
        if self._checker.failed:
            raise invalid_vcf(self._filename, self._checker.finish())
        return chunk


async def stage_upload(
    storage: Storage,
    *,
    user_id: str,
    client_name: str | None,
    chunks: AsyncIterable[bytes],
    budget: UploadBudget,
    now: datetime,
) -> StagedUpload:
    """Stream `chunks` into storage, checking the VCF on the way.

    Raises PayloadTooLarge or InvalidInput (code `invalid_vcf` with the report, for bytes
    that are no readable VCF), storing nothing.
    """
    filename = names.display_name(client_name)
    key = input_key(user_id, filename, now)
    checker = VcfChecker()
    written = await storage.write(key, _Checked(_Counted(chunks, budget), checker, filename))
    staged = StagedUpload(key=key, filename=filename, size=written.size, sha256=written.sha256)
    if written.size == 0:
        await discard(storage, [staged])
        raise InvalidInput(f"file '{filename}' is empty")
    report = await asyncio.to_thread(checker.finish)
    if report.fatal:
        await discard(storage, [staged])
        raise invalid_vcf(filename, report)
    return StagedUpload(
        key=key,
        filename=filename,
        size=written.size,
        sha256=written.sha256,
        validation=report.to_dict(),
    )


async def discard(storage: Storage, staged: Iterable[StagedUpload]) -> None:
    """Remove staged bytes (best effort: a failure here must not hide the first error)."""
    for upload in staged:
        try:
            await storage.delete(upload.key)
        except Exception:
            log.exception(
                "could not remove a staged upload",
                extra={"action": "upload_discard_failed", "storage_key": upload.key},
            )


async def record_uploads(
    session: AsyncSession,
    *,
    user_id: str,
    staged: Sequence[StagedUpload],
    now: datetime,
    quota: int | None,
) -> list[StoredFile]:
    """Record staged files within the user's storage quota (QuotaExceeded otherwise)."""
    await require_room(session, user_id, sum(s.size for s in staged), quota)
    return [record_upload(session, user_id=user_id, staged=s, now=now) for s in staged]


def record_upload(
    session: AsyncSession, *, user_id: str, staged: StagedUpload, now: datetime
) -> StoredFile:
    """Add the row for staged bytes to the session (committed with the caller's transaction)."""
    record = StoredFile(
        id=new_id(),
        user_id=user_id,
        kind="input",
        filename=staged.filename,
        storage_key=staged.key,
        size=staged.size,
        sha256=staged.sha256,
        validation=staged.validation,
        created_at=now,
    )
    session.add(record)
    return record
