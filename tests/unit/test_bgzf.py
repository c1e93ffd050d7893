"""The BGZF/gzip block reader on crafted streams, and the BGZF writer against `bgzip`."""

from __future__ import annotations

import gzip
import random
import subprocess
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from imputehub.files.bgzf import (
    BGZF_EOF,
    BGZF_MAX_BLOCK,
    PLAIN_PIECE,
    BgzfWriter,
    BlockReader,
    Compression,
    CompressionError,
    compress,
)

TEXT = b"".join(f"line {i}\t{'x' * (i % 50)}\n".encode() for i in range(20_000))


def read_all(chunks: Iterable[bytes]) -> tuple[bytes, BlockReader]:
    reader = BlockReader()
    out = bytearray()
    for chunk in chunks:
        for piece in reader.feed(chunk):
            out += piece
    out += reader.finish()
    return bytes(out), reader


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def random_pieces(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    start = 0
    while start < len(data):
        step = rng.choice([1, 2, 7, 28, 300, 65_536, 200_000])
        out.append(data[start : start + step])
        start += step
    return out


def blocks_of(data: bytes) -> list[bytes]:
    """Split a BGZF stream at its block boundaries (from each block's BSIZE)."""
    out = []
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset + 16 : offset + 18], "little") + 1
        out.append(data[offset : offset + size])
        offset += size
    return out


# --- what the reader recognises ------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 3, 18, 1000, 65_536, 10**9])
def test_bgzf_round_trip_whatever_the_pieces(piece: int) -> None:
    data = compress(TEXT)
    out, reader = read_all(pieces(data, piece))
    assert out == TEXT
    assert reader.compression is Compression.BGZF
    assert reader.eof_block
    assert reader.members == reader.bgzf_members == len(blocks_of(data))
    assert reader.compressed_bytes == len(data)


@pytest.mark.parametrize("seed", range(5))
def test_random_piece_sizes_change_nothing(seed: int) -> None:
    data = compress(TEXT) + gzip.compress(b"tail\n")
    out, reader = read_all(random_pieces(data, seed))
    assert out == TEXT + b"tail\n"
    assert reader.compression is Compression.GZIP


def test_missing_eof_block_is_noticed_but_readable() -> None:
    out, reader = read_all([compress(TEXT, eof=False)])
    assert out == TEXT
    assert reader.compression is Compression.BGZF
    assert not reader.eof_block


def test_plain_gzip_is_not_bgzf() -> None:
    out, reader = read_all(pieces(gzip.compress(TEXT), 4096))
    assert out == TEXT
    assert reader.compression is Compression.GZIP
    assert not reader.eof_block


def test_multi_member_plain_gzip_reads_every_member() -> None:
    data = gzip.compress(b"first\n") + gzip.compress(b"second\n") + gzip.compress(b"")
    out, reader = read_all(pieces(data, 5))
    assert out == b"first\nsecond\n"
    assert reader.members == 3
    assert reader.compression is Compression.GZIP


def test_bgzf_blocks_then_a_plain_member_count_as_plain_gzip() -> None:
    data = compress(b"bgzf part\n", eof=False) + gzip.compress(b"plain part\n") + BGZF_EOF
    out, reader = read_all([data])
    assert out == b"bgzf part\nplain part\n"
    assert reader.compression is Compression.GZIP


@pytest.mark.parametrize(
    "data", [b"##fileformat=VCFv4.2\n", b"x", b"\x1f", b"\x00\x01\x02"], ids=repr
)
def test_uncompressed_bytes_pass_through(data: bytes) -> None:
    out, reader = read_all(pieces(data, 1))
    assert out == data
    assert reader.compression is Compression.UNCOMPRESSED


def test_nothing_at_all() -> None:
    out, reader = read_all([])
    assert out == b""
    assert reader.compression is Compression.UNCOMPRESSED


# --- damage -------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 10, 17, 100, 5000])
def test_truncated_bgzf_block_is_reported_at_the_end(cut: int) -> None:
    data = compress(TEXT, eof=False)
    with pytest.raises(CompressionError) as caught:
        read_all([data[:-cut]])
    assert caught.value.kind == "truncated"


@pytest.mark.parametrize("cut", [1, 8, 500])
def test_truncated_plain_gzip_is_reported(cut: int) -> None:
    with pytest.raises(CompressionError) as caught:
        read_all([gzip.compress(TEXT)[:-cut]])
    assert caught.value.kind == "truncated"


def test_cut_inside_the_gzip_header_is_truncated() -> None:
    with pytest.raises(CompressionError) as caught:
        read_all([compress(TEXT)[:5]])
    assert caught.value.kind == "truncated"


def test_damaged_deflate_data_is_corrupt() -> None:
    first, *rest = blocks_of(compress(TEXT))
    broken = bytearray(first)
    for i in range(30, 60):
        broken[i] ^= 0xFF
    with pytest.raises(CompressionError) as caught:
        read_all([bytes(broken), *rest])
    assert caught.value.kind == "corrupt"


def test_wrong_crc_is_corrupt() -> None:
    first, *rest = blocks_of(compress(TEXT))
    broken = bytearray(first)
    broken[-8] ^= 0x01  # CRC32 of the block
    with pytest.raises(CompressionError) as caught:
        read_all([bytes(broken), *rest])
    assert caught.value.kind == "corrupt"


def test_block_size_that_does_not_match_its_data_is_corrupt() -> None:
    block = blocks_of(compress(b"abc\n"))[0]
    padded = bytearray(block[:-8] + b"\x00\x00\x00" + block[-8:])
    padded[16:18] = (len(padded) - 1).to_bytes(2, "little")
    with pytest.raises(CompressionError) as caught:
        read_all([bytes(padded)])
    assert caught.value.kind == "corrupt"


@pytest.mark.parametrize("bsize", [0, 5, 24])
def test_impossible_block_size_is_corrupt(bsize: int) -> None:
    block = bytearray(blocks_of(compress(b"abc\n"))[0])
    block[16:18] = bsize.to_bytes(2, "little")
    with pytest.raises(CompressionError) as caught:
        read_all([bytes(block)])
    assert caught.value.kind == "corrupt"


def test_trailing_garbage_after_gzip_is_corrupt() -> None:
    with pytest.raises(CompressionError) as caught:
        read_all([compress(b"abc\n") + b"this is not gzip at all"])
    assert caught.value.kind == "corrupt"


def test_a_gzip_bomb_comes_out_in_bounded_pieces() -> None:
    bomb = gzip.compress(b"\0" * (40 * PLAIN_PIECE), compresslevel=9)
    reader = BlockReader()
    total = 0
    for piece in reader.feed(bomb):
        assert len(piece) <= PLAIN_PIECE
        total += len(piece)
    reader.finish()
    assert total == 40 * PLAIN_PIECE


# --- the writer -----------------------------------------------------------------------------


def test_writer_blocks_are_bounded_and_end_with_eof() -> None:
    writer = BgzfWriter()
    data = bytearray()
    for piece in pieces(TEXT * 3, 10_000):
        data += writer.write(piece)
    data += writer.close()
    blocks = blocks_of(bytes(data))
    assert blocks[-1] == BGZF_EOF
    for block in blocks:
        assert len(block) <= BGZF_MAX_BLOCK
        assert zlib.decompressobj(wbits=31).decompress(block) is not None
    assert read_all([bytes(data)])[0] == TEXT * 3


def test_bgzip_accepts_our_bgzf(tmp_path: Path) -> None:
    path = tmp_path / "ours.gz"
    path.write_bytes(compress(TEXT))
    subprocess.run(["bgzip", "-t", str(path)], check=True)
    assert subprocess.run(["bgzip", "-dc", str(path)], capture_output=True).stdout == TEXT


def test_we_read_bgzip_output(tmp_path: Path) -> None:
    path = tmp_path / "theirs.txt"
    path.write_bytes(TEXT)
    subprocess.run(["bgzip", "-f", str(path)], check=True)
    out, reader = read_all(pieces((tmp_path / "theirs.txt.gz").read_bytes(), 65_536))
    assert out == TEXT
    assert reader.compression is Compression.BGZF
    assert reader.eof_block
