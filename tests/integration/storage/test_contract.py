"""One contract every storage backend keeps; the rest of the hub relies on nothing more."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable

import pytest

from imputehub.domain.errors import InvalidInput, NotFound, PayloadTooLarge
from imputehub.files.storage import Storage


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def read_all(storage: Storage, key: str, **kwargs: int | None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, **kwargs)])  # type: ignore[arg-type]


def part_sizes(storage: Storage, count: int) -> Iterable[int]:
    """Sizes for `count` parts that every backend accepts: all but the last at the minimum."""
    size = max(storage.min_part_size, 1000)
    return [size] * (count - 1) + [size // 3]


async def test_write_then_read_back_the_same_bytes(storage: Storage) -> None:
    data = os.urandom(300_000)
    written = await storage.write("inputs/a.vcf.gz", stream(data[:1000], data[1000:]))
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(storage, "inputs/a.vcf.gz") == data
    assert await storage.size("inputs/a.vcf.gz") == len(data)
    assert await storage.exists("inputs/a.vcf.gz")


async def test_empty_object(storage: Storage) -> None:
    written = await storage.write("inputs/empty", stream())
    assert written.size == 0
    assert await read_all(storage, "inputs/empty") == b""
    assert await storage.size("inputs/empty") == 0


async def test_write_replaces_an_existing_object(storage: Storage) -> None:
    await storage.write("k", stream(b"old content, longer"))
    await storage.write("k", stream(b"new"))
    assert await read_all(storage, "k") == b"new"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(0, None)),
        (10, 20, slice(10, 20)),
        (0, 1, slice(0, 1)),
        (99_990, None, slice(99_990, None)),
        (5, 100_000, slice(5, 100_000)),
        (50_000, 50_000, slice(0, 0)),
    ],
)
async def test_read_a_range(storage: Storage, start: int, end: int | None, expected: slice) -> None:
    data = os.urandom(100_000)
    await storage.write("r", stream(data))
    assert await read_all(storage, "r", start=start, end=end) == data[expected]


async def test_read_streams_in_chunks_no_larger_than_asked(storage: Storage) -> None:
    data = os.urandom(50_000)
    await storage.write("c", stream(data))
    chunks = [chunk async for chunk in storage.read("c", chunk_size=4096)]
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 4096
    assert len(chunks) >= 50_000 // 4096


async def test_missing_object_is_not_found(storage: Storage) -> None:
    assert not await storage.exists("nothing/here")
    with pytest.raises(NotFound):
        await storage.size("nothing/here")
    with pytest.raises(NotFound):
        await read_all(storage, "nothing/here")


async def test_delete_removes_and_is_idempotent(storage: Storage) -> None:
    await storage.write("d", stream(b"x"))
    await storage.delete("d")
    assert not await storage.exists("d")
    await storage.delete("d")


async def test_too_large_a_write_stores_nothing(storage: Storage) -> None:
    with pytest.raises(PayloadTooLarge):
        await storage.write("big", stream(b"a" * 600, b"b" * 600), max_size=1000)
    assert not await storage.exists("big")


async def test_too_large_a_write_keeps_the_previous_object(storage: Storage) -> None:
    await storage.write("keep", stream(b"previous"))
    with pytest.raises(PayloadTooLarge):
        await storage.write("keep", stream(b"a" * 2000), max_size=1000)
    assert await read_all(storage, "keep") == b"previous"


async def test_a_failing_stream_stores_nothing(storage: Storage) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"some bytes"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await storage.write("broken", broken())
    assert not await storage.exists("broken")


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/passwd", ""])
async def test_keys_escaping_the_store_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        await storage.write(key, stream(b"x"))
    with pytest.raises(ValueError, match="storage key"):
        await storage.create_multipart(key)


# Multipart uploads.


async def test_parts_in_any_order_join_in_index_order(storage: Storage) -> None:
    sizes = list(part_sizes(storage, 3))
    parts = [os.urandom(size) for size in sizes]
    handle = await storage.create_multipart("inputs/joined")
    for index in (2, 0, 1):
        written = await storage.write_part("inputs/joined", handle, index, stream(parts[index]))
        assert written.size == sizes[index]
        assert written.sha256 == hashlib.sha256(parts[index]).hexdigest()
    assert await storage.list_parts("inputs/joined", handle) == dict(enumerate(sizes))
    assert not await storage.exists("inputs/joined")

    await storage.complete_multipart("inputs/joined", handle, [0, 1, 2])

    whole = b"".join(parts)
    assert await storage.size("inputs/joined") == len(whole)
    assert hashlib.sha256(await read_all(storage, "inputs/joined")).digest() == (
        hashlib.sha256(whole).digest()
    )
    with pytest.raises(NotFound):
        await storage.list_parts("inputs/joined", handle)


async def test_parts_written_in_parallel(storage: Storage) -> None:
    sizes = list(part_sizes(storage, 4))
    parts = [os.urandom(size) for size in sizes]
    handle = await storage.create_multipart("par")
    await asyncio.gather(
        *(storage.write_part("par", handle, i, stream(part)) for i, part in enumerate(parts))
    )
    await storage.complete_multipart("par", handle, list(range(4)))
    assert await read_all(storage, "par") == b"".join(parts)


async def test_a_part_written_again_replaces_itself(storage: Storage) -> None:
    size = max(storage.min_part_size, 1000)
    first, second = os.urandom(size), os.urandom(size)
    handle = await storage.create_multipart("again")
    await storage.write_part("again", handle, 0, stream(first))
    await storage.write_part("again", handle, 0, stream(second))
    await storage.write_part("again", handle, 1, stream(b"tail"))
    assert await storage.list_parts("again", handle) == {0: size, 1: 4}
    await storage.complete_multipart("again", handle, [0, 1])
    assert await read_all(storage, "again") == second + b"tail"


async def test_list_parts_of_a_fresh_upload_is_empty(storage: Storage) -> None:
    handle = await storage.create_multipart("fresh")
    assert await storage.list_parts("fresh", handle) == {}
    await storage.abort_multipart("fresh", handle)


async def test_a_too_large_part_is_not_stored(storage: Storage) -> None:
    handle = await storage.create_multipart("toolarge")
    await storage.write_part("toolarge", handle, 0, stream(b"kept"))
    with pytest.raises(PayloadTooLarge):
        await storage.write_part(
            "toolarge", handle, 1, stream(b"x" * 700, b"y" * 700), max_size=1000
        )
    with pytest.raises(PayloadTooLarge):
        await storage.write_part("toolarge", handle, 0, stream(b"x" * 2000), max_size=1000)
    assert await storage.list_parts("toolarge", handle) == {0: 4}
    await storage.abort_multipart("toolarge", handle)


async def test_complete_with_a_missing_part_is_refused(storage: Storage) -> None:
    handle = await storage.create_multipart("gap")
    await storage.write_part("gap", handle, 0, stream(b"only"))
    with pytest.raises(InvalidInput):
        await storage.complete_multipart("gap", handle, [0, 1])
    assert not await storage.exists("gap")
    # The upload is still there to be finished.
    assert await storage.list_parts("gap", handle) == {0: 4}
    await storage.abort_multipart("gap", handle)


async def test_abort_drops_the_parts_and_is_idempotent(storage: Storage) -> None:
    handle = await storage.create_multipart("aborted")
    await storage.write_part("aborted", handle, 0, stream(b"bytes"))
    await storage.abort_multipart("aborted", handle)
    await storage.abort_multipart("aborted", handle)
    with pytest.raises(NotFound):
        await storage.list_parts("aborted", handle)
    with pytest.raises(NotFound):
        await storage.write_part("aborted", handle, 1, stream(b"late"))
    with pytest.raises(NotFound):
        await storage.complete_multipart("aborted", handle, [0])
    assert not await storage.exists("aborted")


async def test_an_unknown_handle_is_not_found(storage: Storage) -> None:
    await storage.abort_multipart("k", "no-such-upload")
    with pytest.raises(NotFound):
        await storage.list_parts("k", "no-such-upload")
    with pytest.raises(NotFound):
        await storage.write_part("k", "no-such-upload", 0, stream(b"x"))


@pytest.mark.parametrize("index", [-1, 10_000])
async def test_a_part_index_out_of_range_is_refused(storage: Storage, index: int) -> None:
    handle = await storage.create_multipart("idx")
    with pytest.raises(InvalidInput):
        await storage.write_part("idx", handle, index, stream(b"x"))
    assert await storage.list_parts("idx", handle) == {}
    await storage.abort_multipart("idx", handle)


async def test_two_uploads_of_one_key_are_separate(storage: Storage) -> None:
    one = await storage.create_multipart("same")
    two = await storage.create_multipart("same")
    assert one != two
    await storage.write_part("same", one, 0, stream(b"first"))
    await storage.write_part("same", two, 0, stream(b"second"))
    await storage.abort_multipart("same", one)
    await storage.complete_multipart("same", two, [0])
    assert await read_all(storage, "same") == b"second"


async def test_download_url_is_none_or_a_url(storage: Storage) -> None:
    await storage.write("dl", stream(b"x"))
    url = await storage.download_url("dl", filename="x.vcf.gz", expires_seconds=60)
    assert url is None or url.startswith(("http://", "https://"))
