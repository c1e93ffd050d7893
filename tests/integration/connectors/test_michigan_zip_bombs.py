"""A service is untrusted: a result zip that is a bomb is refused, quickly, storing nothing.

The bombs are real zips of zeros: 1 GiB deflated to about 1 MiB, built block by block (a
full flush makes each MiB's deflate bytes the same), so building one takes a fraction of a
second; an AES-encrypted one made by pyzipper; one whose declared sizes lie; and one with
too many members.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

import pytest
import pyzipper  # type: ignore[import-untyped]

from imputehub.connectors.base import ResultFile
from imputehub.connectors.michigan.results import (
    MAX_MEMBERS,
    RATIO_FLOOR,
    inflate_limit,
    store_zip_members,
)
from imputehub.domain.errors import PermanentServiceError

PASSWORD = "Zq3kV9sLw2Xr7TnB5mHc"
MIB = 1024 * 1024
GIB_OF_ZEROS = 1024  # MiB


class Sink:
    """Keeps the members it is given whole; counts every byte that reached it."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.seen = 0

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        data = bytearray()
        async for chunk in chunks:
            self.seen += len(chunk)
            data.extend(chunk)
        self.files[name] = bytes(data)
        return ResultFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@cache
def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """`mib` MiB of zeros as one raw deflate stream, and their CRC-32."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = 0, bytes(MIB)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return block * mib + b"\x03\x00", crc  # an empty final block ends the stream


def zip_of_zeros(path: Path, *, mib: int, declared: int | None = None) -> Path:
    """A zip with one deflated member of `mib` MiB of zeros, claiming `declared` bytes."""
    data, crc = deflated_zeros(mib)
    size = mib * MIB if declared is None else declared
    name = b"chr20.dose.vcf.gz"
    fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, crc, len(data), size)
    local = b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name
    central = (
        b"PK\x01\x02"
        + struct.pack("<H", 20)
        + fields
        + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    end = b"PK\x05\x06" + struct.pack(
        "<HHHHIIH", 0, 0, 1, 1, len(central), len(local) + len(data), 0
    )
    path.write_bytes(local + data + central + end)
    return path


def aes_zip_of_zeros(path: Path, *, mib: int) -> Path:
    with pyzipper.AESZipFile(
        path, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(PASSWORD.encode())
        with archive.open("chr20.dose.vcf.gz", "w") as member:
            for _ in range(mib):
                member.write(bytes(MIB))
    return path


def test_the_handmade_zip_is_a_zip_of_what_it_says(tmp_path: Path) -> None:
    path = zip_of_zeros(tmp_path / "z.zip", mib=2)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert archive.read("chr20.dose.vcf.gz") == bytes(2 * MIB)


async def test_a_gib_of_zeros_in_a_mib_is_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    path = zip_of_zeros(tmp_path / "chr_20.zip", mib=GIB_OF_ZEROS)
    assert path.stat().st_size < 1.1 * MIB
    sink = Sink()

    with pytest.raises(PermanentServiceError) as raised:
        await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    assert str(raised.value) == (
        "chr_20.zip looks like a zip bomb: chr20.dose.vcf.gz would inflate from "
        f"{len(deflated_zeros(GIB_OF_ZEROS)[0])} to {GIB_OF_ZEROS * MIB} bytes; "
        "nothing more was stored from it"
    )
    assert sink.seen == 0
    assert sink.files == {}


async def test_an_encrypted_bomb_is_refused_too(tmp_path: Path) -> None:
    path = aes_zip_of_zeros(tmp_path / "chr_20.zip", mib=64)
    sink = Sink()

    with pytest.raises(PermanentServiceError, match=r"chr_20\.zip looks like a zip bomb"):
        await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    assert sink.seen == 0
    assert sink.files == {}


async def test_a_bomb_that_lies_about_its_size_stops_at_the_limit(tmp_path: Path) -> None:
    # It claims to inflate 1:1; the bytes that actually inflate give it away.
    data, _ = deflated_zeros(GIB_OF_ZEROS)
    path = zip_of_zeros(tmp_path / "chr_20.zip", mib=GIB_OF_ZEROS, declared=len(data))
    sink = Sink()

    with pytest.raises(PermanentServiceError) as raised:
        await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    limit = inflate_limit(len(data))  # 100:1 of its real compressed size
    assert str(raised.value) == (
        f"chr_20.zip looks like a zip bomb: chr20.dose.vcf.gz inflates to more than "
        f"{limit} bytes; nothing more was stored from it"
    )
    assert sink.files == {}
    assert limit - 2 * MIB < sink.seen <= limit  # stopped at the limit, not at 1 GiB


async def test_a_zip_with_too_many_members_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chr_20.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(MAX_MEMBERS + 1):
            archive.writestr(f"chr{index}.info.gz", b"x")
    sink = Sink()

    with pytest.raises(PermanentServiceError) as raised:
        await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    assert str(raised.value) == (
        f"chr_20.zip looks like a zip bomb: it holds {MAX_MEMBERS + 1} files, "
        f"more than {MAX_MEMBERS}; nothing more was stored from it"
    )
    assert sink.files == {}


async def test_as_many_members_as_allowed_are_all_stored(tmp_path: Path) -> None:
    path = tmp_path / "chr_20.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(MAX_MEMBERS):
            archive.writestr(f"chr{index}.info.gz", b"x")
    sink = Sink()

    stored = await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    assert len(stored) == MAX_MEMBERS


async def test_zeros_within_the_floor_are_no_bomb(tmp_path: Path) -> None:
    path = zip_of_zeros(tmp_path / "chr_20.zip", mib=RATIO_FLOOR // MIB)
    sink = Sink()

    await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    assert sink.files == {"chr20.dose.vcf.gz": bytes(RATIO_FLOOR)}


async def test_a_zip64_claiming_a_million_members_is_refused_before_they_are_read(
    tmp_path: Path,
) -> None:
    count = 1_000_000
    zip64_end = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, count, count, 0, 0)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 1)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 2**32 - 1, 2**32 - 1, 0)
    path = tmp_path / "chr_20.zip"
    path.write_bytes(zip64_end + locator + end)

    with pytest.raises(PermanentServiceError) as raised:
        await store_zip_members(path, "chr_20.zip", PASSWORD, Sink())

    assert str(raised.value) == (
        f"chr_20.zip looks like a zip bomb: it holds {count} files, "
        f"more than {MAX_MEMBERS}; nothing more was stored from it"
    )
