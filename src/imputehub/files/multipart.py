"""Reading a multipart/form-data body as it arrives, one bounded piece at a time.

`python_multipart`'s parser is push-based (it calls us back); uploads need pull-based
reading (storage asks for the next chunk). `MultipartReader` bridges the two: it feeds the
parser only when the caller wants more, so memory stays bounded by the piece size whatever
the size of the body. A body that breaks the format or ends early raises InvalidInput.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from imputehub.domain.errors import InvalidInput

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FEED_SIZE = 256 * 1024
MAX_HEADER_SIZE = 4096
MAX_HEADER_COUNT = 8
ERROR_CODE = "invalid_multipart"


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code=ERROR_CODE)


def boundary_from_content_type(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type header, else InvalidInput."""
    media_type, options = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data":
        raise _invalid("send the request body as multipart/form-data")
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise _invalid("the multipart/form-data Content-Type has no boundary parameter")
    if len(boundary) > 70:  # RFC 2046 section 5.1.1
        raise _invalid("the multipart boundary is longer than 70 characters")
    return boundary


@dataclass(frozen=True, kw_only=True)
class Part:
    """One part's headers; its data is read through the reader."""

    name: str
    filename: str | None  # None for a plain field; may be "" when a form sends no file
    content_type: str


@dataclass(frozen=True)
class _Data:
    data: bytes


class _PartEnd:
    pass


class _End:
    pass


_Event = Part | _Data | _PartEnd | _End
_PART_END = _PartEnd()
_END = _End()


def _decode(value: bytes) -> str:
    # RFC 7578: names are UTF-8 in practice; parse_options_header hands back latin-1 bytes.
    return value.decode("utf-8", errors="replace")


def _part_from_headers(headers: list[tuple[bytes, bytes]]) -> Part:
    disposition: bytes | None = None
    content_type = b"application/octet-stream"
    for field, value in headers:
        key = field.strip().lower()
        if key == b"content-disposition":
            disposition = value.strip()
        elif key == b"content-type":
            content_type = value.strip()
    if disposition is None:
        raise _invalid("a multipart part has no Content-Disposition header")
    kind, options = parse_options_header(disposition.decode("latin-1"))
    if kind != b"form-data":
        raise _invalid("multipart parts must have Content-Disposition: form-data")
    name = _decode(options.get(b"name", b""))
    if not name:
        raise _invalid("a multipart part has no field name")
    raw_filename = options.get(b"filename")
    return Part(
        name=name,
        filename=None if raw_filename is None else _decode(raw_filename),
        content_type=_decode(content_type)[:100],
    )


class MultipartReader:
    """Pull parts and their bytes from a multipart/form-data stream.

    Use `next_part()` to move to the next part (skipping what is left of the current one)
    and `read()` / `data()` for the current part's bytes.
    """

    def __init__(
        self, chunks: AsyncIterable[bytes], boundary: bytes, *, feed_size: int = FEED_SIZE
    ) -> None:
        self._source = aiter(chunks)
        self._feed_size = feed_size
        self._pending = b""
        self._events: deque[_Event] = deque()
        self._headers: list[tuple[bytes, bytes]] = []
        self._field = bytearray()
        self._value = bytearray()
        self._in_part = False
        self._finished = False
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks,
                max_header_count=MAX_HEADER_COUNT,
                max_header_size=MAX_HEADER_SIZE,
            )
        except FormParserError as exc:
            raise _invalid("the multipart boundary is not valid") from exc

    # Parser callbacks: they only record events; all decisions happen on the pull side.
    def _on_part_begin(self) -> None:
        self._headers = []

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers.append((bytes(self._field), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(_part_from_headers(self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(_Data(bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(_PART_END)

    def _on_end(self) -> None:
        self._events.append(_END)

    async def _next_event(self) -> _Event:
        while not self._events:
            if not self._pending:
                try:
                    self._pending = await anext(self._source)
                except StopAsyncIteration:
                    raise _invalid(
                        "the multipart body ended before its closing boundary "
                        "(was the upload cut off?)"
                    ) from None
                continue
            piece, self._pending = (
                self._pending[: self._feed_size],
                self._pending[self._feed_size :],
            )
            try:
                self._parser.write(piece)
            except FormParserError as exc:
                raise _invalid(f"the multipart body is malformed: {exc}") from exc
        return self._events.popleft()

    async def next_part(self) -> Part | None:
        """The next part's headers, or None after the closing boundary."""
        while self._in_part:
            await self.read()
        if self._finished:
            return None
        event = await self._next_event()
        if isinstance(event, _End):
            self._finished = True
            return None
        if not isinstance(event, Part):  # the parser emits headers before any data
            raise _invalid("the multipart body is malformed")
        self._in_part = True
        return event

    async def read(self) -> bytes:
        """The next piece of the current part's data; b"" once the part is over."""
        while self._in_part:
            event = await self._next_event()
            if isinstance(event, _Data):
                return event.data
            if isinstance(event, _PartEnd):
                self._in_part = False
                break
            raise _invalid("the multipart body is malformed")
        return b""

    def data(self) -> AsyncIterator[bytes]:
        """The current part's bytes as an async iterator (for storage writes)."""
        return _PartData(self)


class _PartData:
    # A class rather than an async generator: a consumer that stops early (size limit)
    # leaves nothing for the garbage collector to finalise on the event loop.
    def __init__(self, reader: MultipartReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _PartData:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._reader.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk
