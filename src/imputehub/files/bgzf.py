"""BGZF and gzip, block by block: a push-based reader and a small writer.

BGZF (the compression of bgzipped VCFs) is a series of gzip members of at most 64 KiB
each, every one carrying a `BC` extra subfield with its own size, and ending with a fixed
28-byte empty block. `BlockReader` takes the raw bytes in any pieces, tells BGZF from plain
gzip from uncompressed bytes, and hands back the decompressed data as it goes; memory stays
bounded by one block (or one bounded piece of a plain gzip member). BGZF blocks are
inflated by ISA-L (about 2x zlib's speed, same results), plain gzip by zlib; both in C.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from enum import StrEnum
from typing import cast

from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
BGZF_MAX_BLOCK = 65536
# The stub types isal_zlib.error as an instance; it is the exception class.
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)
# The empty block every BGZF file ends with (SAM/BAM specification, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# Largest uncompressed payload per block that always fits with its header and footer.
BGZF_PAYLOAD = 65280
# Cap on decompressed bytes per step of a plain gzip member (guards against gzip bombs).
PLAIN_PIECE = 1024 * 1024

_FEXTRA = 0x04
_FNAME = 0x08
_FCOMMENT = 0x10
_FHCRC = 0x02
_FIXED_HEADER = 10


class Compression(StrEnum):
    BGZF = "bgzf"
    GZIP = "gzip"
    UNCOMPRESSED = "uncompressed"


class CompressionError(ValueError):
    """The compressed stream is cut short (`truncated`) or damaged (`corrupt`).

    Raised by BlockReader only; the VCF checker turns it into a report problem, so it
    never travels past `files/`.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _bgzf_block_size(header: bytes | bytearray, xlen: int) -> int | None:
    """BSIZE + 1 from the `BC` subfield of a gzip extra field, or None (not BGZF)."""
    offset = 12
    end = 12 + xlen
    while offset + 4 <= end:
        si1, si2, slen = header[offset], header[offset + 1], header[offset + 2]
        slen |= header[offset + 3] << 8
        if si1 == 66 and si2 == 67 and slen == 2 and offset + 6 <= end:
            return int(header[offset + 4] | (header[offset + 5] << 8)) + 1
        offset += 4 + slen
    return None


class BlockReader:
    """Feed raw bytes in order; get decompressed bytes back; then `finish()`.

    After the first bytes, `compression` says what the stream is: BGZF only when every
    member is a BGZF block. `eof_block` tells whether the stream ended with the BGZF EOF block.
    """

    def __init__(self) -> None:
        self.compression: Compression | None = None
        self.members = 0
        self.bgzf_members = 0
        self.compressed_bytes = 0
        self.eof_block = False
        self._buffer = bytearray()
        self._plain: zlib._Decompress | None = None  # inside a non-BGZF member

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decompressed pieces of whatever `data` completes; raises CompressionError."""
        if not data:
            return
        self.compressed_bytes += len(data)
        if self.compression is None:
            self._buffer += data
            if len(self._buffer) < 2:
                return
            if self._buffer[:2] == GZIP_MAGIC:
                self.compression = Compression.BGZF
            else:
                self.compression = Compression.UNCOMPRESSED
                head = bytes(self._buffer)
                self._buffer.clear()
                yield head
                return
            data = b""
        if self.compression is Compression.UNCOMPRESSED:
            yield data
            return
        if data:
            self._buffer += data
        yield from self._members()

    def _members(self) -> Iterator[bytes]:
        buffer = self._buffer
        while buffer:
            if self._plain is not None:
                yield from self._plain_member()
                if self._plain is not None:
                    return  # needs more input
                continue
            if len(buffer) < 12:
                return
            if buffer[:2] != GZIP_MAGIC or buffer[2] != 8:
                raise CompressionError(
                    "corrupt",
                    "the file has bytes after the end of its gzip data that are not gzip",
                )
            flags = buffer[3]
            block_size = None
            if flags & _FEXTRA:
                xlen = buffer[10] | (buffer[11] << 8)
                if len(buffer) < 12 + xlen:
                    return
                block_size = _bgzf_block_size(buffer, xlen)
            if block_size is None:
                # A plain gzip member: stream it through one decompressor, bounded pieces.
                self.members += 1
                self.compression = Compression.GZIP
                self._plain = zlib.decompressobj(wbits=31)
                continue
            if block_size < 12 + xlen + 8:  # shorter than its own header and footer
                raise CompressionError("corrupt", "a BGZF block header gives an impossible size")
            if len(buffer) < block_size:
                return
            self.members += 1
            self.bgzf_members += 1
            yield from self._bgzf_block(block_size)

    def _bgzf_block(self, block_size: int) -> Iterator[bytes]:
        buffer = self._buffer
        block = bytes(buffer[:block_size])
        del buffer[:block_size]
        self.eof_block = block == BGZF_EOF
        isize = struct.unpack_from("<I", block, block_size - 4)[0]
        if isize > BGZF_MAX_BLOCK:
            raise CompressionError("corrupt", "a BGZF block claims more than 64 KiB of data")
        try:
            # One call, into a buffer of the block's own size; zlib checks CRC and length.
            out = isal_zlib.decompress(block, 31, max(isize, 1))
        except (_ISAL_ERROR, zlib.error) as exc:
            raise CompressionError("corrupt", f"a compressed block is damaged ({exc})") from None
        if len(out) != isize:
            raise CompressionError("corrupt", "a BGZF block's size does not match its data")
        if out:
            yield out

    def _plain_member(self) -> Iterator[bytes]:
        decompressor = self._plain
        assert decompressor is not None
        data = bytes(self._buffer)
        self._buffer.clear()
        self.eof_block = False
        try:
            while data:
                out = decompressor.decompress(data, PLAIN_PIECE)
                if out:
                    yield out
                if decompressor.eof:
                    self._buffer += decompressor.unused_data
                    self._plain = None
                    return
                data = decompressor.unconsumed_tail
            # All input taken; zlib may still hold output it could not hand out yet.
            while not decompressor.eof:
                out = decompressor.decompress(b"", PLAIN_PIECE)
                if not out:
                    break
                yield out
            if decompressor.eof:
                self._buffer += decompressor.unused_data
                self._plain = None
        except zlib.error as exc:
            raise CompressionError("corrupt", f"the gzip data is damaged ({exc})") from None

    def finish(self) -> bytes:
        """The last bytes of a tiny uncompressed stream; CompressionError if cut mid-member."""
        if self.compression is None:
            # Fewer than two bytes in all: too short to be gzip.
            self.compression = Compression.UNCOMPRESSED
            head = bytes(self._buffer)
            self._buffer.clear()
            return head
        if self.compression is Compression.UNCOMPRESSED:
            return b""
        if self._plain is not None or self._buffer:
            raise CompressionError("truncated", "the compressed data ends in the middle of a block")
        return b""


def _bgzf_block(payload: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    deflated = compressor.compress(payload) + compressor.flush()
    header = struct.pack(
        "<BBBBIBBHBBHH", 0x1F, 0x8B, 8, _FEXTRA, 0, 0, 0xFF, 6, 66, 67, 2, len(deflated) + 25
    )
    footer = struct.pack("<II", zlib.crc32(payload), len(payload))
    return header + deflated + footer


class BgzfWriter:
    """Compress a stream into BGZF blocks: `write()` any pieces, then `close()`.

    Both return the compressed bytes ready so far; `close()` adds the EOF block.
    """

    def __init__(self, level: int = 6) -> None:
        self._level = level
        self._pending = bytearray()

    def write(self, data: bytes) -> bytes:
        self._pending += data
        out = bytearray()
        while len(self._pending) >= BGZF_PAYLOAD:
            out += _bgzf_block(bytes(self._pending[:BGZF_PAYLOAD]), self._level)
            del self._pending[:BGZF_PAYLOAD]
        return bytes(out)

    def close(self) -> bytes:
        out = _bgzf_block(bytes(self._pending), self._level) if self._pending else b""
        self._pending.clear()
        return out + BGZF_EOF


def compress(data: bytes, *, level: int = 6, eof: bool = True) -> bytes:
    """`data` as a whole BGZF file (small inputs: tests and sample data)."""
    writer = BgzfWriter(level)
    out = writer.write(data) + writer.close()
    return out if eof else out[: -len(BGZF_EOF)]
