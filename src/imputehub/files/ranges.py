"""HTTP conditional and range requests for downloads (RFC 9110 sections 13 and 14). No I/O.

Only a single byte range is served as a range; anything else the standard allows us to
answer with the whole file (several ranges, other units, a syntax we do not understand).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One range; a comma (several ranges) or anything else does not match.
_SPEC = re.compile(r"(\d*)[ \t]*-[ \t]*(\d*)", re.ASCII)
# Beyond any file: what a position of more digits than this stands for (Python's int() also
# refuses strings of more than 4,300 digits, and a client may send any number of them).
_MAX_DIGITS = 18
_BEYOND = 10**_MAX_DIGITS


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, stop) of a file of `size` bytes."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


@dataclass(frozen=True)
class WholeFile:
    """Send everything (no Range header, or one we answer with the whole file)."""


@dataclass(frozen=True)
class Unsatisfiable:
    """No byte of the range exists: 416, with `Content-Range: bytes */size`."""

    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


RangeAnswer = ByteRange | WholeFile | Unsatisfiable


def parse_range(header: str | None, size: int) -> RangeAnswer:
    """The answer to a `Range` header for a file of `size` bytes."""
    if header is None:
        return WholeFile()
    unit, _, spec = header.partition("=")
    match = _SPEC.fullmatch(spec.strip())
    if unit.strip().lower() != "bytes" or match is None:
        return WholeFile()
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return WholeFile()
    if not first:  # bytes=-n: the last n bytes
        suffix = _position(last)
        if suffix == 0 or size == 0:
            return Unsatisfiable(size)
        return ByteRange(max(size - suffix, 0), size, size)
    start = _position(first)
    if last and _position(last) < start:
        return WholeFile()  # invalid, so ignored, as the standard says
    if start >= size:
        return Unsatisfiable(size)
    stop = size if not last else min(_position(last) + 1, size)
    return ByteRange(start, stop, size)


def _position(digits: str) -> int:
    """A byte position from its digits; any number past _BEYOND counts as _BEYOND."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else _BEYOND


def _tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match` names our ETag (weak comparison): answer 304."""
    if header is None:
        return False
    tags = _tags(header)
    return "*" in tags or etag in tags


def range_applies(if_range: str | None, etag: str) -> bool:
    """`If-Range`: serve the range only if the client's copy is ours (strong comparison).

    A date there cannot be checked against a checksum, so it gets the whole file.
    """
    return if_range is None or if_range.strip() == etag
