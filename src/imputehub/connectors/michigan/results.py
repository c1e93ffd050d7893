"""A finished Michigan job's outputs: which files to fetch, and storing them, zips decrypted.

The JobResponse lists the downloadable files with their share hashes and remaining
downloads; `downloads.py` brings each into a local temporary file (never whole in memory).
Zips are opened there with the job's password (ZipCrypto or AES-256) and their members
streamed to the sink in bounded chunks. They are read with libarchive (the C library, through
libarchive-c): pure-Python ZipCrypto (zipfile, pyzipper) decrypts about 1 MB/s, libarchive
about 40 (bench/michigan_fetch.py). A member that fails its CRC-32 (or AES HMAC), or a zip
that is not one, is a damaged download (`DamagedZip`), which the connector weighs against
what it knows of earlier downloads; a wrong password is final.

A service is untrusted, and a zip can be a bomb: a zip with more than MAX_MEMBERS members,
or a member that inflates to more than MAX_RATIO times its compressed size (and past
RATIO_FLOOR), fails the job for good. The sizes the zip's central directory declares
(read with the standard library's zipfile, which needs no password for that) are checked
before anything of it is stored; as they can lie, the bytes that actually inflate are
counted too, against the member's declared compressed size and the zip's own size.
"""

from __future__ import annotations

import asyncio
import re
import struct
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from ctypes import byref, c_longlong, c_size_t, c_void_p, string_at
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import libarchive  # type: ignore[import-untyped]
from libarchive import ffi
from libarchive.exception import ArchiveError  # type: ignore[import-untyped]

from imputehub.connectors.base import ResultFile, ResultSink
from imputehub.domain.errors import PermanentServiceError, TransientServiceError

CHUNK_SIZE = 1024 * 1024
# Zip bombs. Dose files are bgzipped and compress about 1:1; text files are small.
MAX_MEMBERS = 1000
MAX_RATIO = 100  # inflated bytes per compressed byte
RATIO_FLOOR = 16 * 1024 * 1024  # a member may inflate this far whatever its ratio
_EOCD_SEARCH = 22 + 65535 + 20  # the end record, its longest comment, the zip64 locator
CHECKSUM_SUFFIX = ".md5"
# libarchive's words for a wrong password, and for what it cannot read at all.
_PASSWORD = re.compile(r"passphrase", re.IGNORECASE)
_UNSUPPORTED = re.compile(r"not supported|unsupported", re.IGNORECASE)


class DamagedZip(TransientServiceError):
    """A zip that fails its own checks: damaged on the way, or at the service."""

    def __init__(self, zip_name: str, detail: str) -> None:
        super().__init__(f"{zip_name} arrived damaged ({detail})")
        self.detail = detail


@dataclass(frozen=True)
class OutputFile:
    name: str
    hash: str = field(repr=False)  # the share secret: never in logs or messages
    path: str = ""  # the server's path of the file within the job, e.g. job-…/output/x.zip
    count: int | None = None  # downloads the server still allows (None: it does not say)

    @property
    def source(self) -> str:
        """What the sink remembers this file by: unique within the job, and not the hash,
        which is as good as a password for the download."""
        return self.path or self.name


def output_files(response: Mapping[str, Any]) -> list[OutputFile]:
    """The downloadable files a JobResponse lists (log outputs are not downloads)."""
    found: list[OutputFile] = []
    for param in response.get("outputParams") or []:
        if not isinstance(param, Mapping) or not param.get("download", False):
            continue
        for entry in param.get("files") or []:
            if isinstance(entry, Mapping) and entry.get("name") and entry.get("hash"):
                count = entry.get("count")
                found.append(
                    OutputFile(
                        name=str(entry["name"]),
                        hash=str(entry["hash"]),
                        path=str(entry.get("path") or ""),
                        count=count
                        if isinstance(count, int) and not isinstance(count, bool)
                        else None,
                    )
                )
    return found


def with_checksums(files: list[OutputFile]) -> list[tuple[OutputFile, OutputFile | None]]:
    """The files to fetch, each with the `.md5` file the server publishes next to it, if any.

    An `X.md5` next to `X` (TOPMed) is no result of its own: it checks the encrypted zip,
    which the user never sees (the hub stores the zip's members), so it is only used to
    check `X` and is not stored.
    """
    sources = {file.source for file in files}
    checksums = {
        file.source.removesuffix(CHECKSUM_SUFFIX): file
        for file in files
        if file.source.endswith(CHECKSUM_SUFFIX)
        and file.source.removesuffix(CHECKSUM_SUFFIX) in sources
    }
    checking = {file.source for file in checksums.values()}
    return [(file, checksums.get(file.source)) for file in files if file.source not in checking]


async def store(path: Path, name: str, sink: ResultSink) -> ResultFile:
    return await sink.store(name, _read_file(path))


async def _read_file(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
            yield chunk


async def store_zip_members(
    path: Path, zip_name: str, secret: str, sink: ResultSink
) -> list[ResultFile]:
    """Decrypt the zip (ZipCrypto or AES-256) with the job's password; store each member."""
    stored: list[ResultFile] = []
    declared = await asyncio.to_thread(_declared_sizes, path, zip_name)
    reader = _ZipReader(path, zip_name, secret, declared)
    try:
        while (name := await reader.next_member()) is not None:
            stored.append(await sink.store(name, reader.member_chunks()))
    finally:
        await reader.close()
    return stored


def inflate_limit(compressed: int) -> int:
    """The most bytes a member of `compressed` bytes may inflate to."""
    return max(RATIO_FLOOR, MAX_RATIO * compressed)


def _bomb(zip_name: str, reason: str) -> PermanentServiceError:
    return PermanentServiceError(
        f"{zip_name} looks like a zip bomb: {reason}; nothing more was stored from it"
    )


def _declared_sizes(path: Path, zip_name: str) -> dict[str, int]:
    """Each member's compressed size, as the zip's central directory declares it.

    Refuses a zip with too many members, or a member declared to inflate too far. A zip
    whose directory the standard library cannot read gives {}: libarchive, which reads
    the zip from its start, judges it.
    """
    count = _declared_count(path)
    if count is not None and count > MAX_MEMBERS:  # before zipfile reads them all
        raise _bomb(zip_name, f"it holds {count} files, more than {MAX_MEMBERS}")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return {}
    if len(infos) > MAX_MEMBERS:
        raise _bomb(zip_name, f"it holds {len(infos)} files, more than {MAX_MEMBERS}")
    for info in infos:
        if info.file_size > inflate_limit(info.compress_size):
            raise _bomb(
                zip_name,
                f"{PurePosixPath(info.filename).name} would inflate from "
                f"{info.compress_size} to {info.file_size} bytes",
            )
    return {info.filename: info.compress_size for info in infos}


def _declared_count(path: Path) -> int | None:
    """The number of members the zip's end records declare (zip64 too), if found."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        start = max(size - _EOCD_SEARCH, 0)
        handle.seek(start)
        tail = handle.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        (count,) = struct.unpack_from("<H", tail, at + 10)
        if count != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != b"PK\x06\x07":
            return int(count)
        (offset,) = struct.unpack_from("<Q", tail, at - 12)  # the zip64 end record's
        handle.seek(offset)
        record = handle.read(56)
    if len(record) < 56 or record[:4] != b"PK\x06\x06":
        return None
    return int(struct.unpack_from("<Q", record, 32)[0])


def _blocks(archive_p: Any) -> Iterator[bytes]:
    """The current member's bytes, block by block (libarchive's own buffers, bounded).

    Not libarchive-c's `get_blocks`: libarchive reports a bad CRC-32 or HMAC, and data of
    the wrong size, as a *warning* (ARCHIVE_WARN), which `get_blocks` logs and then reads
    past as if it were data. Here a warning is damage.
    """
    buffer, size, offset = c_void_p(), c_size_t(), c_longlong()
    expected = 0
    while True:
        code = ffi.read_data_block(archive_p, byref(buffer), byref(size), byref(offset))
        if code == ffi.ARCHIVE_EOF:
            return
        if code == ffi.ARCHIVE_WARN:
            raise ArchiveError((ffi.error_string(archive_p) or b"damaged data").decode())
        if offset.value != expected:  # zip members are never sparse
            raise ArchiveError(f"data out of order at byte {offset.value}")
        expected += size.value
        if size.value:
            yield string_at(buffer, size.value)


class _ZipReader:
    """One pass over a zip's members, each blocking libarchive call in a thread (decrypting
    and inflating are CPU work), and libarchive's errors in the hub's terms."""

    def __init__(self, path: Path, zip_name: str, secret: str, declared: dict[str, int]) -> None:
        self._zip_name = zip_name
        self._declared = declared
        self._zip_size = path.stat().st_size
        self._members = 0
        self._inflated = 0  # bytes of all members so far
        self._opened = libarchive.file_reader(
            str(path), format_name="zip", passphrase=secret, block_size=CHUNK_SIZE
        )
        self._entries: Iterator[Any] | None = None
        self._entry: Any = None

    async def next_member(self) -> str | None:
        """The next member's file name (directories skipped), or None after the last."""
        while True:
            entry = await self._call(self._next_entry)
            if entry is None:
                return None
            self._members += 1
            if self._members > MAX_MEMBERS:
                raise _bomb(self._zip_name, f"it holds more than {MAX_MEMBERS} files")
            if not entry.isdir:
                self._entry = entry
                return PurePosixPath(entry.pathname).name

    async def member_chunks(self) -> AsyncIterator[bytes]:
        pathname = self._entry.pathname
        compressed = min(self._declared.get(pathname, self._zip_size), self._zip_size)
        limit, total_limit = inflate_limit(compressed), inflate_limit(self._zip_size)
        name, size = PurePosixPath(pathname).name, 0
        blocks = _blocks(self._entry._archive_p)
        while (block := await self._call(next, blocks, None)) is not None:
            size += len(block)
            self._inflated += len(block)
            if size > limit:
                raise _bomb(self._zip_name, f"{name} inflates to more than {limit} bytes")
            if self._inflated > total_limit:
                raise _bomb(
                    self._zip_name,
                    f"its files inflate to more than {total_limit} bytes from {self._zip_size}",
                )
            yield block

    async def close(self) -> None:
        if self._entries is not None:
            await asyncio.to_thread(self._opened.__exit__, None, None, None)

    def _next_entry(self) -> Any:
        if self._entries is None:
            self._entries = iter(self._opened.__enter__())
        return next(self._entries, None)

    async def _call(self, function: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except ArchiveError as exc:
            detail = str(exc.msg)
            if _PASSWORD.search(detail):
                raise PermanentServiceError(
                    f"could not decrypt {self._zip_name} with the job's password: {detail}"
                ) from exc
            if _UNSUPPORTED.search(detail):
                raise PermanentServiceError(f"could not open {self._zip_name}: {detail}") from exc
            # A bad CRC-32 or AES HMAC, garbage to inflate, a truncated or unreadable zip.
            # (With ZipCrypto, a wrong password passes its one-byte check once in 256 and
            # then fails here too; the hub always sets the password itself.)
            raise DamagedZip(self._zip_name, detail) from exc
