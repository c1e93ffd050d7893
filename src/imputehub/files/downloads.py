"""Downloads: a stored file's bytes, whole or one range, or a redirect to object storage.

Conditional requests are answered before any byte is read: the ETag is the file's
SHA-256, so a client holding the same bytes gets "not modified".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import StoredFile, User
from imputehub.files import ranges, records
from imputehub.files.storage import CHUNK_SIZE, Storage


@dataclass(frozen=True, kw_only=True)
class Conditions:
    """What the client sent that shapes the answer (the raw header values)."""

    range: str | None = None
    if_none_match: str | None = None
    if_range: str | None = None


@dataclass(frozen=True, kw_only=True)
class NotModified:
    pass


@dataclass(frozen=True, kw_only=True)
class Redirect:
    url: str


@dataclass(frozen=True, kw_only=True)
class Download:
    record: StoredFile
    etag: str
    answer: ranges.RangeAnswer | NotModified | Redirect
    # The bytes to send: the whole file or the range; None when there is no body.
    chunks: AsyncIterator[bytes] | None = None


def etag_of(record: StoredFile) -> str:
    return f'"{record.sha256}"'


async def open_download(
    session: AsyncSession,
    storage: Storage,
    user: User,
    file_id: str,
    conditions: Conditions,
    *,
    presign_seconds: int | None,
    chunk_size: int = CHUNK_SIZE,
) -> Download:
    """Decide how to answer a download; `presign_seconds=None` never redirects."""
    record = await records.get_file(session, user, file_id)
    etag = etag_of(record)
    if ranges.none_match(conditions.if_none_match, etag):
        return Download(record=record, etag=etag, answer=NotModified())
    if presign_seconds is not None:
        url = await storage.download_url(
            record.storage_key, filename=record.filename, expires_seconds=presign_seconds
        )
        if url is not None:
            # The object store serves Range requests itself.
            return Download(record=record, etag=etag, answer=Redirect(url=url))
    answer: ranges.RangeAnswer = ranges.WholeFile()
    if ranges.range_applies(conditions.if_range, etag):
        answer = ranges.parse_range(conditions.range, record.size)
    if isinstance(answer, ranges.Unsatisfiable):
        return Download(record=record, etag=etag, answer=answer)
    start, end = (answer.start, answer.stop) if isinstance(answer, ranges.ByteRange) else (0, None)
    chunks = await records.read_content(
        storage, record, start=start, end=end, chunk_size=chunk_size
    )
    return Download(record=record, etag=etag, answer=answer, chunks=chunks)
