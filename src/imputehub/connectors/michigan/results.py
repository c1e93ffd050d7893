"""A finished Michigan job's outputs: which files to fetch, and storing them, zips decrypted.

The JobResponse lists the downloadable files with their share hashes and remaining
downloads; `downloads.py` brings each into a local temporary file (never whole in memory).
Zips are opened there with the job's password (ZipCrypto or AES-256, both read by
pyzipper) and their members streamed to the sink in bounded chunks. A member that fails
its CRC-32 (or AES HMAC) is a damaged download (`DamagedZip`), which the connector weighs
against what it knows of earlier downloads; a wrong password is final.
"""

from __future__ import annotations

import asyncio
import zipfile
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pyzipper  # type: ignore[import-untyped]

from imputehub.connectors.base import ResultFile, ResultSink
from imputehub.domain.errors import PermanentServiceError, TransientServiceError

CHUNK_SIZE = 1024 * 1024
CHECKSUM_SUFFIX = ".md5"
# What a damaged zip raises while it is read: a bad CRC-32 or AES HMAC (BadZipFile), or
# garbage where deflated data should be.
_DAMAGE = (zipfile.BadZipFile, pyzipper.BadZipFile, zlib.error, EOFError)


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
    try:
        archive = pyzipper.AESZipFile(path)
    except _DAMAGE as exc:
        raise DamagedZip(zip_name, str(exc) or type(exc).__name__) from exc
    with archive:
        archive.setpassword(secret.encode())
        for member in archive.infolist():
            if member.is_dir():
                continue
            name = PurePosixPath(member.filename).name
            stored.append(await sink.store(name, _read_member(archive, member, zip_name)))
    return stored


async def _read_member(archive: Any, member: Any, zip_name: str) -> AsyncIterator[bytes]:
    try:
        handle: IO[bytes] = archive.open(member)
    except RuntimeError as exc:  # "Bad password for file ..."
        raise PermanentServiceError(
            f"could not decrypt {zip_name} with the job's password: {exc}"
        ) from exc
    except NotImplementedError as exc:  # an encryption or compression pyzipper lacks
        raise PermanentServiceError(f"could not open {zip_name}: {exc}") from exc
    with handle:
        try:
            # Decrypting and inflating are CPU work: off the event loop, a chunk at a time.
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        # A CRC or HMAC error, or garbage to inflate: the download is damaged. (With
        # ZipCrypto, a wrong password passes its one-byte check once in 256 and then fails
        # here too; the hub always sets the password itself.)
        except _DAMAGE as exc:
            raise DamagedZip(zip_name, str(exc) or type(exc).__name__) from exc
