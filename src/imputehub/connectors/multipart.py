"""A streamed multipart/form-data body: text fields, then files read in bounded chunks.

Built by hand because httpx's own multipart reads files through synchronous file objects,
and our inputs are async streams; the length is known up front (sizes are checked), so the
request carries a Content-Length rather than chunked encoding.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from imputehub.connectors.base import InputFile


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class MultipartBody:
    fields: Sequence[tuple[str, str]]
    files: Sequence[tuple[str, InputFile]]
    boundary: str = ""

    def __post_init__(self) -> None:
        if not self.boundary:
            object.__setattr__(self, "boundary", secrets.token_hex(16))

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _field_head(self, name: str) -> bytes:
        return (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
        ).encode()

    def _file_head(self, name: str, file: InputFile) -> bytes:
        return (
            f"--{self.boundary}\r\nContent-Disposition: form-data; "
            f'name="{_quote(name)}"; filename="{_quote(file.name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def length(self) -> int:
        total = len(self._tail())
        for name, value in self.fields:
            total += len(self._field_head(name)) + len(value.encode()) + 2
        for name, file in self.files:
            total += len(self._file_head(name, file)) + file.size + 2
        return total

    async def stream(self) -> AsyncIterator[bytes]:
        for name, value in self.fields:
            yield self._field_head(name) + value.encode() + b"\r\n"
        for name, file in self.files:
            yield self._file_head(name, file)
            async for chunk in file.open():
                yield chunk
            yield b"\r\n"
        yield self._tail()
