"""Range and conditional-request rules for downloads, as a table."""

from __future__ import annotations

import pytest

from imputehub.files.ranges import (
    ByteRange,
    RangeAnswer,
    Unsatisfiable,
    WholeFile,
    none_match,
    parse_range,
    range_applies,
)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, WholeFile()),
        ("bytes=0-9", 100, ByteRange(0, 10, 100)),
        ("bytes=90-", 100, ByteRange(90, 100, 100)),
        ("bytes=-5", 100, ByteRange(95, 100, 100)),
        ("bytes=-500", 100, ByteRange(0, 100, 100)),
        ("bytes=50-5000", 100, ByteRange(50, 100, 100)),
        ("bytes=99-99", 100, ByteRange(99, 100, 100)),
        ("bytes=100-", 100, Unsatisfiable(100)),
        ("bytes=100-200", 100, Unsatisfiable(100)),
        ("bytes=-0", 100, Unsatisfiable(100)),
        ("bytes=0-", 0, Unsatisfiable(0)),
        ("bytes=-1", 0, Unsatisfiable(0)),
        ("bytes=5-4", 100, WholeFile()),
        ("bytes=0-1,3-4", 100, WholeFile()),
        ("lines=0-1", 100, WholeFile()),
        ("bytes=", 100, WholeFile()),
        ("bytes=-", 100, WholeFile()),
        ("bytes=x-1", 100, WholeFile()),
        ("bytes=\u00b2-3", 100, WholeFile()),
        ("bytes=0-1-2", 100, WholeFile()),
        # More digits than any file has bytes (and than int() takes): never an error.
        ("bytes=" + "9" * 5000 + "-", 100, Unsatisfiable(100)),
        ("bytes=0-" + "9" * 5000, 100, ByteRange(0, 100, 100)),
        ("bytes=-" + "9" * 5000, 100, ByteRange(0, 100, 100)),
        ("bytes=" + "0" * 5000 + "5-9", 100, ByteRange(5, 10, 100)),
        ("bytes=5-" + "0" * 5000 + "9", 100, ByteRange(5, 10, 100)),
        ("bytes=" + "9" * 30 + "-" + "9" * 31, 100, Unsatisfiable(100)),
    ],
)
def test_parse_range(header: str | None, size: int, expected: RangeAnswer) -> None:
    assert parse_range(header, size) == expected


def test_content_range_headers() -> None:
    assert ByteRange(10, 20, 100).content_range == "bytes 10-19/100"
    assert ByteRange(10, 20, 100).length == 10
    assert Unsatisfiable(100).content_range == "bytes */100"


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("", False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, '"abc"') is matches


@pytest.mark.parametrize(
    ("header", "applies"),
    [(None, True), ('"abc"', True), ('"other"', False), ("Wed, 21 Oct 2015 07:28:00 GMT", False)],
)
def test_if_range(header: str | None, applies: bool) -> None:
    assert range_applies(header, '"abc"') is applies
