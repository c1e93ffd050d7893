"""Receiving multipart forms: file parts stream to storage, small fields stay in memory.

Used by `POST /files` (one file) and the multipart form of `POST /jobs`. Whatever goes
wrong while a form arrives (a malformed or cut-off body, a file over the size limit, an
unexpected field, a client that hangs up), the files already staged are removed again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import datetime

from imputehub.db.models import StoredFile
from imputehub.domain.errors import InvalidInput, PayloadTooLarge
from imputehub.files.multipart import MultipartReader, boundary_from_content_type
from imputehub.files.storage import Storage
from imputehub.files.uploads import (
    StagedUpload,
    UploadBudget,
    discard,
    record_uploads,
    stage_upload,
)
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

# Room for part headers and small fields on top of the file bytes themselves.
FORM_OVERHEAD = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class FormSpec:
    """Which fields a form may carry, and how much of them."""

    file_fields: frozenset[str]
    text_fields: frozenset[str] = frozenset()
    max_files: int = 1
    max_field_bytes: int = 64 * 1024
    max_text_parts: int = 64


@dataclass(frozen=True, kw_only=True)
class ReceivedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    uploads: list[StagedUpload] = field(default_factory=list)


FILE_FORM = FormSpec(file_fields=frozenset({"file"}))


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    """Refuse at once a body whose declared length cannot fit, before reading any of it."""
    if content_length is None or not content_length.isdigit():
        return
    if int(content_length) > max_bytes + FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"the upload is larger than the limit of {max_bytes} bytes", limit=max_bytes
        )


class _PartBytes:
    """A part's bytes, with the first chunk (already read to peek) put back in front."""

    def __init__(self, first: bytes, reader: MultipartReader) -> None:
        self._first = first
        self._reader = reader

    def __aiter__(self) -> _PartBytes:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            chunk, self._first = self._first, b""
            return chunk
        chunk = await self._reader.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


async def _read_text(reader: MultipartReader, name: str, limit: int) -> str:
    value = bytearray()
    while chunk := await reader.read():
        value += chunk
        if len(value) > limit:
            raise InvalidInput(f"form field '{name}' is longer than {limit} bytes", field=name)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"form field '{name}' is not valid UTF-8", field=name) from exc


async def receive_form(
    storage: Storage,
    *,
    spec: FormSpec,
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterable[bytes],
    user_id: str,
    max_bytes: int,
    now: datetime,
) -> ReceivedForm:
    """Read a whole multipart form, staging its files; on any error nothing stays stored."""
    boundary = boundary_from_content_type(content_type)
    check_declared_length(content_length, max_bytes)
    reader = MultipartReader(chunks, boundary)
    budget = UploadBudget(max_bytes)
    form = ReceivedForm()
    text_parts = 0
    try:
        while (part := await reader.next_part()) is not None:
            if part.name in spec.file_fields:
                if part.filename is None:
                    raise InvalidInput(
                        f"form field '{part.name}' must be a file (a part with a filename)",
                        field=part.name,
                    )
                first = await reader.read()
                if not first and not part.filename:
                    continue  # a browser form whose file input was left empty
                if len(form.uploads) >= spec.max_files:
                    raise InvalidInput(
                        f"send at most {spec.max_files} file(s) in one request", field=part.name
                    )
                staged = await stage_upload(
                    storage,
                    user_id=user_id,
                    client_name=part.filename,
                    chunks=_PartBytes(first, reader),
                    budget=budget,
                    now=now,
                )
                form.uploads.append(staged)
            elif part.name in spec.text_fields:
                if part.filename is not None:
                    raise InvalidInput(
                        f"form field '{part.name}' must be a plain value, not a file",
                        field=part.name,
                    )
                text_parts += 1
                if text_parts > spec.max_text_parts:
                    raise InvalidInput("the form has too many fields")
                value = await _read_text(reader, part.name, spec.max_field_bytes)
                form.fields.setdefault(part.name, []).append(value)
            else:
                raise InvalidInput(f"unexpected form field '{part.name}'", field=part.name)
    except BaseException:
        await discard(storage, form.uploads)
        raise
    return form


async def receive_file(
    runtime: Runtime,
    *,
    user_id: str,
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterable[bytes],
    now: datetime,
) -> StoredFile:
    """`POST /files`: one file in the `file` field, streamed to storage and recorded."""
    form = await receive_form(
        runtime.storage,
        spec=FILE_FORM,
        content_type=content_type,
        content_length=content_length,
        chunks=chunks,
        user_id=user_id,
        max_bytes=runtime.settings.max_upload_size,
        now=now,
    )
    try:
        if not form.uploads:
            raise InvalidInput("send one file in the multipart field 'file'", field="file")
        async with runtime.db.session() as session:
            (record,) = await record_uploads(
                session,
                user_id=user_id,
                staged=form.uploads[:1],
                now=now,
                quota=runtime.settings.storage_quota_bytes,
            )
    except BaseException:
        await discard(runtime.storage, form.uploads)
        raise
    log.info(
        "file uploaded",
        extra={"action": "file_uploaded", "file_id": record.id, "size": record.size},
    )
    return record
