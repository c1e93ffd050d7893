"""A part on its way from the network to storage: joined into blocks, hashed once, checked.

Runs on local disk (which takes the stream's own SHA-256 instead of hashing again) and on
S3 (real SeaweedFS, which hashes for itself).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.files.chunked import CheckedPart
from imputehub.files.storage import LocalStorage, Storage, _copy_all

BATCH = 64 * 1024


async def network(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    """`data` in pieces of the given sizes (cycled), as a request body arrives."""
    offset, turn = 0, 0
    while offset < len(data):
        size = sizes[turn % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        turn += 1


def checked(data: bytes, sizes: list[int], declared: str | None) -> CheckedPart:
    return CheckedPart(network(data, sizes), expected=len(data), declared=declared, batch=BATCH)


async def joined(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key)])


@pytest.mark.parametrize(
    "length",
    [
        5 * BATCH + 12_345,  # a short last block
        4 * BATCH,  # ends exactly on a block boundary: no empty last block is written
        100,  # smaller than one block
    ],
)
async def test_a_part_is_stored_whole_with_its_sha256(storage: Storage, length: int) -> None:
    data = random.Random(length).randbytes(length)
    sha256 = hashlib.sha256(data).hexdigest()
    key = f"inputs/part-{length}.bin"
    handle = await storage.create_multipart(key)

    written = await storage.write_part(key, handle, 0, checked(data, [1000, 65_536, 7], sha256))

    assert (written.size, written.sha256) == (length, sha256)
    await storage.complete_multipart(key, handle, [0])
    assert await joined(storage, key) == data


async def test_a_part_sent_without_a_checksum_gets_the_right_one(storage: Storage) -> None:
    data = os.urandom(3 * BATCH + 1)
    handle = await storage.create_multipart("inputs/x.bin")
    written = await storage.write_part("inputs/x.bin", handle, 0, checked(data, [4096], None))
    assert written.sha256 == hashlib.sha256(data).hexdigest()


async def test_a_damaged_resend_keeps_the_good_copy(storage: Storage) -> None:
    good = os.urandom(2 * BATCH + 10)
    damaged = bytes([good[0] ^ 1]) + good[1:]
    declared = hashlib.sha256(good).hexdigest()
    handle = await storage.create_multipart("inputs/y.bin")
    await storage.write_part("inputs/y.bin", handle, 0, checked(good, [5000], declared))

    with pytest.raises(InvalidInput) as refused:
        await storage.write_part("inputs/y.bin", handle, 0, checked(damaged, [5000], declared))

    assert refused.value.code == "part_checksum_mismatch"
    await storage.complete_multipart("inputs/y.bin", handle, [0])
    assert await joined(storage, "inputs/y.bin") == good


async def test_many_parts_join_byte_for_byte_on_local_disk(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    parts = [os.urandom(size) for size in (BATCH, 1, 3 * BATCH + 17, 0x10000, 999)]
    handle = await storage.create_multipart("inputs/z.bin")
    for index in reversed(range(len(parts))):  # any order
        await storage.write_part("inputs/z.bin", handle, index, network(parts[index], [8192]))
    await storage.complete_multipart("inputs/z.bin", handle, list(range(len(parts))))
    assert (tmp_path / "inputs" / "z.bin").read_bytes() == b"".join(parts)


def test_joining_falls_back_to_plain_copies_where_the_kernel_cannot(tmp_path: Path) -> None:
    # copy_file_range refuses a pipe (EINVAL): the bytes must still all arrive, in order.
    data = os.urandom(300_000)
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT)
    try:
        os.write(out, b"head:")
        _copy_all(read_end, out)
    finally:
        os.close(out)
        os.close(read_end)
        feeder.join()
    assert (tmp_path / "out.bin").read_bytes() == b"head:" + data
