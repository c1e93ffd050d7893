"""Fetching a finished Michigan job's outputs: each file downloaded once, zips decrypted.

Every GET of `/share/results/{hash}/{name}` spends one of the file's limited downloads, so
there is no size probe; a dropped connection resumes with `Range` from the bytes already on
disk. Each file lands in a temporary file first (never whole in memory); zips are opened
there with the job's password (ZipCrypto or AES-256, both read by pyzipper) and their
members streamed to the sink in bounded chunks. Once a file is completely stored, the sink
remembers it, so a fetch retried after a failure (on any worker) skips it instead of
spending another download.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote

import httpx
import pyzipper  # type: ignore[import-untyped]

from imputehub.connectors.base import ResultFile, ResultSink
from imputehub.connectors.michigan.answers import check
from imputehub.domain.errors import PermanentServiceError, TransientServiceError

CHUNK_SIZE = 1024 * 1024
MAX_RESUMES = 5


@dataclass(frozen=True)
class OutputFile:
    name: str
    hash: str
    path: str = ""  # the server's path of the file within the job, e.g. job-…/output/x.zip

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
                found.append(
                    OutputFile(
                        name=str(entry["name"]),
                        hash=str(entry["hash"]),
                        path=str(entry.get("path") or ""),
                    )
                )
    return found


async def download(
    client: httpx.AsyncClient, base_url: str, file: OutputFile, target: Path
) -> None:
    """GET the file once into `target`, resuming with Range after a dropped connection."""
    url = f"{base_url}/share/results/{quote(file.hash)}/{quote(file.name)}"
    with target.open("wb") as out:
        for attempt in range(MAX_RESUMES + 1):
            have = out.tell()
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                async with client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 404:
                        raise PermanentServiceError(
                            f"the service no longer has the result file {file.name}"
                        )
                    if response.status_code == 400:
                        await response.aread()
                        raise PermanentServiceError(
                            f"the service refused to send {file.name} again "
                            f"(its downloads are used up): {response.text.strip()[:200]}"
                        )
                    if response.status_code >= 400:
                        await response.aread()
                        try:
                            check(response)
                        except TransientServiceError as exc:  # say which file, for the job
                            raise TransientServiceError(
                                f"the download of {file.name} failed: {exc.message}",
                                retry_after=exc.retry_after,
                            ) from exc
                    if have and response.status_code != 206:
                        # The server ignored Range: start this file over.
                        out.seek(0)
                        out.truncate()
                    # Written as received (httpx's own bounded reads), not re-chunked: a
                    # buffer would lose what arrived before a drop.
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                return
            except httpx.TransportError as exc:
                if attempt == MAX_RESUMES:
                    raise TransientServiceError(
                        f"the download of {file.name} kept breaking off: {type(exc).__name__}"
                    ) from exc
                out.flush()


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
    except (zipfile.BadZipFile, pyzipper.BadZipFile) as exc:
        raise PermanentServiceError(f"the service sent a damaged zip ({zip_name})") from exc
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
        # A CRC or HMAC error: the file is damaged, or the password is wrong.
        except (zipfile.BadZipFile, pyzipper.BadZipFile) as exc:
            raise PermanentServiceError(f"could not decrypt {zip_name}: {exc}") from exc
