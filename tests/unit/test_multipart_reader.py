"""The streaming multipart reader: parts and bytes, whatever the chunking; clear errors."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.files.multipart import MultipartReader, Part, boundary_from_content_type

BOUNDARY = b"----imputehub-test-boundary"


def body(parts: Iterable[tuple[str, str | None, bytes]], *, close: bool = True) -> bytes:
    out = bytearray()
    for name, filename, data in parts:
        out += b"--" + BOUNDARY + b"\r\n"
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/gzip\r\n"
        out += b"\r\n" + data + b"\r\n"
    if close:
        out += b"--" + BOUNDARY + b"--\r\n"
    return bytes(out)


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(reader: MultipartReader) -> list[tuple[Part, bytes]]:
    parts = []
    while (part := await reader.next_part()) is not None:
        content = bytearray()
        async for chunk in reader.data():
            content += chunk
        parts.append((part, bytes(content)))
    return parts


# Data that contains things looking like boundaries and CRLFs, to catch off-by-one bugs.
TRICKY = b"\r\n--" + BOUNDARY[:-3] + b"\r\n\r\n--\x00\xff" * 50


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, 4096, 1 << 20])
async def test_parts_and_bytes_survive_any_chunking(chunk_size: int) -> None:
    data = body(
        [
            ("name", None, "chr20 study ü".encode()),
            ("input_file", "a.vcf.gz", TRICKY),
            ("input_file", "b.vcf", b""),
        ]
    )
    reader = MultipartReader(chunked(data, chunk_size), BOUNDARY, feed_size=5)
    parts = await read_all(reader)
    assert [(p.name, p.filename, content) for p, content in parts] == [
        ("name", None, "chr20 study ü".encode()),
        ("input_file", "a.vcf.gz", TRICKY),
        ("input_file", "b.vcf", b""),
    ]
    assert parts[1][0].content_type == "application/gzip"
    assert parts[0][0].content_type == "application/octet-stream"


async def test_large_part_streams_in_bounded_pieces() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB
    data = body([("file", "big.vcf.gz", payload)])
    reader = MultipartReader(chunked(data, len(data)), BOUNDARY, feed_size=64 * 1024)
    part = await reader.next_part()
    assert part is not None
    digest = hashlib.sha256()
    largest = 0
    async for chunk in reader.data():
        largest = max(largest, len(chunk))
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert largest <= 64 * 1024
    assert await reader.next_part() is None


async def test_next_part_skips_unread_data() -> None:
    data = body([("first", "a.vcf", b"x" * 10_000), ("second", None, b"value")])
    reader = MultipartReader(chunked(data, 100), BOUNDARY)
    first = await reader.next_part()
    assert first is not None
    assert first.name == "first"
    assert await reader.read()  # read a little, leave the rest
    second = await reader.next_part()
    assert second is not None
    assert second.name == "second"
    assert await reader.read() == b"value"
    assert await reader.read() == b""
    assert await reader.next_part() is None
    assert await reader.next_part() is None


async def test_non_ascii_filename_is_decoded_as_utf8() -> None:
    data = body([("file", "样本.vcf", b"x")])
    reader = MultipartReader(chunked(data, 3), BOUNDARY)
    part = await reader.next_part()
    assert part is not None
    assert part.filename == "样本.vcf"


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda d: d[:-10], id="no closing boundary"),
        pytest.param(lambda d: d[: len(d) // 2], id="cut in the data"),
        pytest.param(lambda d: d[:30], id="cut in the headers"),
        pytest.param(lambda d: b"", id="empty body"),
    ],
)
async def test_truncated_body_is_refused(cut: Callable[[bytes], bytes]) -> None:
    data = cut(body([("file", "a.vcf", b"y" * 1000)]))
    reader = MultipartReader(chunked(data, 64), BOUNDARY)
    with pytest.raises(InvalidInput, match="ended before its closing boundary") as info:
        await read_all(reader)
    assert info.value.code == "invalid_multipart"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"garbage without any boundary\r\n", "malformed"),
        (b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n", "Content-Disposition"),
        (
            b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n",
            "no field name",
        ),
        (
            b"--" + BOUNDARY + b'\r\nContent-Disposition: attachment; name="f"\r\n\r\nx\r\n',
            "form-data",
        ),
        (
            b"--" + BOUNDARY + b"\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
            "malformed",
        ),
    ],
)
async def test_malformed_body_is_refused(data: bytes, message: str) -> None:
    reader = MultipartReader(chunked(data, 1000), BOUNDARY)
    with pytest.raises(InvalidInput, match=message):
        await read_all(reader)


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; boundary="a b:c"', b"a b:c"),
        ("Multipart/Form-Data; charset=utf-8; boundary=xyz", b"xyz"),
    ],
)
def test_boundary_from_content_type(header: str, boundary: bytes) -> None:
    assert boundary_from_content_type(header) == boundary


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "multipart/form-data"),
        ("application/json", "multipart/form-data"),
        ("multipart/form-data", "no boundary"),
        ("multipart/form-data; boundary=", "no boundary"),
        ("multipart/mixed; boundary=abc", "multipart/form-data"),
        ("multipart/form-data; boundary=" + "b" * 71, "longer than 70"),
    ],
)
def test_bad_content_type_is_refused(header: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        boundary_from_content_type(header)
