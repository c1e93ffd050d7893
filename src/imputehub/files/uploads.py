"""Uploads: streaming a client's bytes into storage, then recording them.

Bytes are staged first (written under a key the hub makes up) and recorded in the
database afterwards, in the caller's transaction. A failure at any point removes what was
staged, so nothing is ever half-stored.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import StoredFile, new_id
from imputehub.domain.errors import InvalidInput, PayloadTooLarge
from imputehub.files import names
from imputehub.files.storage import Storage

log = logging.getLogger(__name__)

INPUT_PREFIX = "inputs"


@dataclass(frozen=True, kw_only=True)
class StagedUpload:
    """Bytes in storage that no database row points at yet."""

    key: str
    filename: str
    size: int
    sha256: str


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


async def stage_upload(
    storage: Storage,
    *,
    user_id: str,
    client_name: str | None,
    chunks: AsyncIterable[bytes],
    budget: UploadBudget,
    now: datetime,
) -> StagedUpload:
    """Stream `chunks` into storage; raises PayloadTooLarge or InvalidInput storing nothing."""
    filename = names.display_name(client_name)
    key = input_key(user_id, filename, now)
    written = await storage.write(key, _Counted(chunks, budget))
    staged = StagedUpload(key=key, filename=filename, size=written.size, sha256=written.sha256)
    if written.size == 0:
        await discard(storage, [staged])
        raise InvalidInput(f"file '{filename}' is empty")
    return staged


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
        created_at=now,
    )
    session.add(record)
    return record
