"""One Michigan result file, downloaded at most as often as it must be, kept while it arrives.

Every GET of `/share/results/{hash}/{name}` spends one of the file's few downloads, also when
the transfer then breaks, and a server with a local workspace ignores `Range`. So:
- what arrives is stored in the hub's storage as it arrives (numbered segments, through the
  sink's KeptDownload), and a retry on any worker, after any crash, rebuilds its local copy
  from there; a file that arrived completely is never asked for again;
- a retry asks for the rest with `Range`: a presigned S3 URL (where the server redirects)
  sends only the rest, the server itself all of it again (then the stored bytes are
  replaced);
- a drop while reading a presigned URL resumes against that URL, which costs nothing; a
  drop on the server's own stream ends the attempt, as another GET spends another download;
- an attempt is noted before its GET, and a file's last download is never spent on a retry
  that could fail the same way (`refusal`);
- where the server publishes `X.md5` (TOPMed), X's MD5 is checked before X is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from imputehub.connectors.base import KeptDownload
from imputehub.connectors.michigan.answers import message_of
from imputehub.connectors.michigan.results import OutputFile
from imputehub.connectors.retry_after import retry_after
from imputehub.domain.errors import (
    NotFound,
    PermanentServiceError,
    ServiceError,
    TransientServiceError,
)

logger = logging.getLogger(__name__)

# Bytes per stored segment; the last segment of a file, and one cut short by a drop, are
# smaller. Each segment is one storage object: the unit a crash can lose.
SEGMENT_SIZE = 64 * 1024 * 1024
# Resumes against a presigned URL after drops, within one attempt (they spend nothing).
FREE_RESUMES = 5
MAX_MD5_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024
_MD5 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True, kw_only=True)
class Notes:
    """What the hub keeps about one file's download between attempts (JSON in storage)."""

    attempts: int = 0  # GETs of the file at the server begun, each spending a download
    segments: tuple[int, ...] = ()  # sizes of the stored segments, in order
    complete: bool = False  # the segments hold the whole file
    size: int | None = None  # the whole file's size, once the server said
    md5: str | None = None  # the MD5 the server publishes for the file
    damaged: int = 0  # downloads of it that arrived damaged (MD5 or the zip's CRCs)

    @property
    def stored(self) -> int:
        return sum(self.segments)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "segments": list(self.segments),
            "complete": self.complete,
            "size": self.size,
            "md5": self.md5,
            "damaged": self.damaged,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Notes:
        """Notes from storage; what is missing or malformed reads as not known."""
        if not data:
            return cls()
        segments, size, md5 = data.get("segments"), data.get("size"), data.get("md5")
        return cls(
            attempts=_count(data.get("attempts")),
            segments=tuple(_count(s) for s in segments) if isinstance(segments, list) else (),
            complete=data.get("complete") is True,
            size=_size(size),
            md5=md5.lower() if isinstance(md5, str) and _MD5.fullmatch(md5) else None,
            damaged=_count(data.get("damaged")),
        )

    def restarted(self) -> Notes:
        """The notes once the stored bytes are given up (the attempts stay counted)."""
        return replace(self, segments=(), complete=False, size=None)


def _count(value: Any) -> int:
    """A positive whole number, else 0 (JSON's `true` is no number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _size(value: Any) -> int | None:
    """A size in bytes (0 included), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# ---- rules --------------------------------------------------------------------------------


def refusal(name: str, *, count: int | None, notes: Notes) -> str | None:
    """Why `name` must not be downloaded now, or None.

    `count`: the downloads the server still allows (None: it does not say). The last one
    is not spent on a retry: an earlier download that broke off or arrived damaged could do
    so again, and then the file would be lost for good.
    """
    if count is None:
        return None
    if count <= 0:
        return f"the service will not send {name} again: its downloads are used up"
    if count == 1 and notes.attempts > 0:
        what = "arrived damaged" if notes.damaged else "broke off"
        return (
            f"{name} has 1 download left at the service and an earlier download of it {what}; "
            "imputehub keeps it rather than spend it on a retry that could fail the same way"
        )
    return None


def published_md5(text: str) -> str | None:
    """The digest in an `md5sum` line (`<32 hex>  <name>`), or None."""
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    return first.lower() if _MD5.fullmatch(first) else None


def left_after_one(count: int | None) -> str:
    """How many downloads the server allows after the one just spent, in words."""
    if count is None:
        return "the service did not say how many downloads of it are left"
    left = max(count - 1, 0)
    return f"the service allows {left} more download{'' if left == 1 else 's'} of it"


def damage_verdict(name: str, notes: Notes, detail: str) -> ServiceError:
    """The error for a downloaded zip whose CRC-32s (or AES HMACs) do not match.

    Once, it may have been damaged on the way: worth another download. When it had passed
    the MD5 the server publishes, or an earlier download was damaged too, the file is
    damaged at the service and another download would only spend one.
    """
    if notes.md5 is not None:
        return PermanentServiceError(
            f"{name} is damaged at the service: it matches the MD5 the service publishes, "
            f"but its contents fail their own checks ({detail})"
        )
    if notes.damaged:
        return PermanentServiceError(
            f"{name} arrived damaged twice; it is probably damaged at the service ({detail})"
        )
    return TransientServiceError(f"{name} arrived damaged ({detail}); it will be downloaded again")


# ---- the local copy and the arriving body -------------------------------------------------


class _LocalCopy:
    """The file's local temporary copy (zips need random access) and its running MD5."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    async def append(self, data: bytes) -> None:
        await asyncio.to_thread(self._handle.write, data)
        self.md5.update(data)
        self.size += len(data)

    async def truncate(self, size: int) -> None:
        """Keep the first `size` bytes (and recompute the MD5 over them)."""

        def cut() -> None:
            self._handle.flush()
            self._handle.truncate(size)
            self._handle.seek(0)
            self.md5 = hashlib.md5(usedforsecurity=False)
            while chunk := self._handle.read(READ_CHUNK):
                self.md5.update(chunk)
            self.size = size

        await asyncio.to_thread(cut)

    async def close(self) -> None:
        await asyncio.to_thread(self._handle.close)


class _Arrival:
    """A response body as it arrives, cut into segments; a drop ends it cleanly.

    A transport error ends the segment being read as if the body ended there (so what
    arrived is stored), and is kept in `error` for the caller to act on afterwards.
    """

    def __init__(self, chunks: AsyncIterator[bytes], local: _LocalCopy) -> None:
        self._chunks = chunks
        self._local = local
        self._pending = b""
        self._ended = False
        self.error: httpx.TransportError | None = None

    async def more(self) -> bool:
        while not self._pending and not self._ended:
            try:
                self._pending = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
            except httpx.TransportError as exc:
                self.error = exc
                self._ended = True
        return bool(self._pending)

    async def segment(self, size: int) -> AsyncIterator[bytes]:
        left = size
        while left > 0 and await self.more():
            piece, self._pending = self._pending[:left], self._pending[left:]
            left -= len(piece)
            await self._local.append(piece)
            yield piece


# ---- one file -------------------------------------------------------------------------------


@dataclass
class Download:
    """Bring one service file into `target`, from the hub's storage where it is kept, else
    from the service. `checksum`: the `.md5` file the server publishes for it, if any."""

    client: httpx.AsyncClient
    base_url: str
    file: OutputFile
    kept: KeptDownload
    target: Path
    checksum: OutputFile | None = None
    segment_size: int = SEGMENT_SIZE

    async def run(self) -> Notes:
        """The notes of the complete, checked download now in `target`."""
        notes = Notes.from_json(await self.kept.notes())
        local = _LocalCopy(await asyncio.to_thread(self.target.open, "w+b"))
        try:
            notes = await self._rebuild(notes, local)
            if notes.complete:
                return notes  # stored completely before: no download spent
            if notes.segments and notes.stored == notes.size:
                # All of it arrived, and then the worker stopped before it noted so.
                return await self._finish(notes, local)
            reason = refusal(self.file.name, count=self.file.count, notes=notes)
            if reason is not None:
                raise PermanentServiceError(reason)
            if self.checksum is not None and notes.md5 is None:
                notes = replace(notes, md5=await self._published_md5())
            # Noted before the GET: a crash right after it still counts the download spent.
            notes = replace(notes, attempts=notes.attempts + 1)
            await self.kept.save_notes(notes.to_json())
            return await self._finish(await self._transfer(notes, local), local)
        finally:
            await local.close()

    async def _finish(self, notes: Notes, local: _LocalCopy) -> Notes:
        """Check the arrived file against its published MD5; note it complete."""
        if notes.md5 is not None and local.md5.hexdigest() != notes.md5:
            await self._give_up_stored(replace(notes, damaged=notes.damaged + 1))
            raise TransientServiceError(
                f"{self.file.name} arrived damaged: its MD5 differs from the one the "
                f"service publishes; {left_after_one(self.file.count)}"
            )
        notes = replace(notes, complete=True, size=local.size)
        await self.kept.save_notes(notes.to_json())
        return notes

    async def discard_damaged(self, notes: Notes) -> None:
        """Give up the stored download, which proved damaged; the attempts stay counted."""
        await self._give_up_stored(replace(notes, damaged=notes.damaged + 1))

    async def _give_up_stored(self, notes: Notes) -> Notes:
        # The notes first: a crash between the two leaves segments no notes point to,
        # which the next download overwrites or the job's completion deletes.
        notes = notes.restarted()
        await self.kept.save_notes(notes.to_json())
        await self.kept.drop_segments()
        return notes

    async def _rebuild(self, notes: Notes, local: _LocalCopy) -> Notes:
        """Copy the stored segments into the local copy; keep the notes to what is there."""
        for index, expected in enumerate(notes.segments):
            before = local.size
            try:
                async for chunk in self.kept.read_segment(index):
                    await local.append(chunk)
            except NotFound:
                pass
            if local.size - before != expected:  # lost (or garbled): the rest is unknown
                await local.truncate(before)
                return replace(notes, segments=notes.segments[:index], complete=False)
        if notes.segments:
            logger.info(
                "result download found in storage",
                extra={
                    "action": "result_download_kept",
                    "file": self.file.name,
                    "bytes": local.size,
                    "complete": notes.complete,
                },
            )
        if notes.complete and (
            local.size != notes.size
            or (notes.md5 is not None and local.md5.hexdigest() != notes.md5)
        ):
            await local.truncate(0)  # the kept copy is not what arrived: download again
            return notes.restarted()
        return notes

    async def _published_md5(self) -> str | None:
        """The digest in the file's `.md5` (a small file, fetched once and noted)."""
        assert self.checksum is not None
        url = _share_url(self.base_url, self.checksum)
        async with self.client.stream("GET", url) as response:
            if response.status_code == 400:  # its downloads are used up: the CRCs remain
                await response.aread()
                return None
            await _check_answer(response, self.checksum.name, presigned=bool(response.history))
            text = bytearray()
            async for chunk in response.aiter_bytes():
                text.extend(chunk)
                if len(text) > MAX_MD5_BYTES:
                    break
        return published_md5(text.decode(errors="replace"))

    async def _transfer(self, notes: Notes, local: _LocalCopy) -> Notes:
        """GET the file (the rest of it, where the answer allows) into segments."""
        name = self.file.name
        url = _share_url(self.base_url, self.file)
        presigned = False
        resumes = 0
        while True:
            have = notes.stored
            headers = {"Range": f"bytes={have}-"} if have else {}
            async with self.client.stream("GET", url, headers=headers) as response:
                presigned = presigned or bool(response.history)
                await _check_answer(response, name, presigned=presigned)
                start, total = _span(response)
                if start != have:
                    if start != 0:
                        raise TransientServiceError(
                            f"the download of {name} answered an unexpected range; "
                            f"{left_after_one(self.file.count)}"
                        )
                    if have:  # the whole file again (Range ignored): replace what is stored
                        logger.info(
                            "the service sent the whole file again",
                            extra={"action": "result_download_restarted", "file": name},
                        )
                    notes = notes.restarted()
                    await local.truncate(0)
                    await self.kept.save_notes(notes.to_json())
                notes = replace(notes, size=total)
                arrival = _Arrival(response.aiter_bytes(), local)
                while await arrival.more():
                    index = len(notes.segments)
                    size = await self.kept.write_segment(index, arrival.segment(self.segment_size))
                    notes = replace(notes, segments=(*notes.segments, size))
                    await self.kept.save_notes(notes.to_json())
                final_url = str(response.url)
            if arrival.error is None and (total is None or notes.stored == total):
                return notes
            if not presigned or resumes >= FREE_RESUMES:
                of_total = "" if total is None else f" of {total}"
                raise TransientServiceError(
                    f"the download of {name} broke off after {notes.stored}{of_total} bytes "
                    f"(kept for the next attempt); {left_after_one(self.file.count)}"
                ) from arrival.error
            resumes += 1
            url = final_url  # the presigned URL itself: resuming there spends nothing
            logger.info(
                "result download resumed at its presigned URL",
                extra={"action": "result_download_resumed", "file": name, "at": notes.stored},
            )


def _share_url(base_url: str, file: OutputFile) -> str:
    return f"{base_url}/share/results/{quote(file.hash)}/{quote(file.name)}"


def _span(response: httpx.Response) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's whole size if known."""
    # A body sent compressed (Content-Encoding) arrives longer than it was sent: its
    # length says nothing of the file's.
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    length = None if encoded else _int(response.headers.get("Content-Length"))
    if response.status_code != 206:
        return 0, length
    match = re.fullmatch(
        r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip()
    )
    if match is None:
        return -1, None
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


async def _check_answer(response: httpx.Response, name: str, *, presigned: bool) -> None:
    """Raise what an unsuccessful answer to a result GET means."""
    status = response.status_code
    if status < 400:
        return
    await response.aread()
    if status == 404:
        raise PermanentServiceError(f"the service no longer has the result file {name}")
    if status == 400 and not presigned:
        raise PermanentServiceError(
            f"the service refused to send {name} again "
            f"(its downloads are used up): {message_of(response)[:200]}"
        )
    # An expired presigned link (403) is worth another GET at the server.
    if status >= 500 or status == 429 or (presigned and status == 403):
        raise TransientServiceError(
            f"the download of {name} failed: the service answered HTTP {status}",
            retry_after=retry_after(response, None),
        )
    raise PermanentServiceError(f"the service refused to send {name}: {message_of(response)[:200]}")
