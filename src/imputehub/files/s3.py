"""S3-compatible object storage (AWS S3, SeaweedFS, MinIO, ...) behind the `Storage` interface.

boto3 is synchronous: every call runs in a worker thread. Requests are signed with
signature v4 and use path-style addressing (`endpoint/bucket/key`), which every
S3-compatible server understands. Every boto3/botocore exception is translated into our
own errors (NotFound, InvalidInput or StorageUnavailable: see s3_errors.py).

Multipart uploads map onto S3 multipart uploads (part index i is S3 part number i + 1).
S3 needs every part but the last to be at least 5 MiB, so that is `min_part_size`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imputehub.domain.errors import ImputehubError, InvalidInput, NotFound, PayloadTooLarge
from imputehub.files import names
from imputehub.files.s3_errors import MIN_PART_SIZE, error_code, translate
from imputehub.files.s3_url import S3Location, parse_storage_url
from imputehub.files.storage import CHUNK_SIZE, MAX_PART_COUNT, Written, check_index, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# `write` buffers one part of this size in memory (more only when the size limit needs
# bigger parts to stay within S3's 10,000 parts).
WRITE_PART_SIZE = 8 * 1024 * 1024
# A part of a resumable upload is spooled before it is sent (S3 wants its length up
# front); this much stays in memory, the rest goes to a temporary file.
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# Where the current ETag of each part of an open upload is noted (see `_note_part`).
MARKER_DIR = ".multipart"


@dataclass(frozen=True)
class _Part:
    size: int
    etag: str


class S3Storage:
    """Objects in one bucket, under an optional key prefix."""

    min_part_size = MIN_PART_SIZE
    max_part_count = MAX_PART_COUNT

    def __init__(self, location: S3Location, *, spool_dir: Path | None = None) -> None:
        self.location = location
        self._bucket = location.bucket
        self._prefix = location.prefix
        self._spool_dir = spool_dir
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True)
        # botocore's debug logs show signed request headers (the access key id among
        # them); even with IMPUTEHUB_LOG_LEVEL=DEBUG they stay out of our logs.
        for name in ("botocore", "boto3", "s3transfer"):
            logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.INFO))
        session = boto3.session.Session(
            aws_access_key_id=location.access_key,
            aws_secret_access_key=location.secret_key,
            region_name=location.region,
        )
        # Creating the client opens no connection; the first request does.
        self._client: S3Client = session.client(
            "s3",
            endpoint_url=location.endpoint_url,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                max_pool_connections=32,
                connect_timeout=10,
                read_timeout=120,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    @classmethod
    def from_url(cls, url: str, *, spool_dir: Path | None = None) -> S3Storage:
        return cls(parse_storage_url(url), spool_dir=spool_dir)

    def close(self) -> None:
        self._client.close()

    def _key(self, key: str) -> str:
        return self._prefix + check_key(key)

    def _marker_prefix(self, handle: str) -> str:
        # Upload ids are opaque strings from the server; hashed, they are safe in a key.
        return f"{self._prefix}{MARKER_DIR}/{hashlib.sha256(handle.encode()).hexdigest()[:40]}/"

    async def _run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise translate(exc) from exc

    # Whole objects.

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> Written:
        full = self._key(key)
        part_size = WRITE_PART_SIZE
        if max_size is not None:
            part_size = max(part_size, -(-max_size // MAX_PART_COUNT))
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload_id: str | None = None
        done: list[CompletedPartTypeDef] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise PayloadTooLarge(
                        f"file is larger than the limit of {max_size} bytes", limit=max_size
                    )
                digest.update(chunk)
                buffer += chunk
                # Small objects go in one PUT; past one part, a multipart upload.
                while len(buffer) >= part_size:
                    if upload_id is None:
                        upload_id = await self._create(full)
                    piece = bytes(buffer[:part_size])
                    del buffer[:part_size]
                    done.append(await self._send_part(full, upload_id, len(done) + 1, piece))
            if upload_id is None:
                await self._run(
                    self._client.put_object, Bucket=self._bucket, Key=full, Body=bytes(buffer)
                )
            else:
                if buffer:
                    done.append(
                        await self._send_part(full, upload_id, len(done) + 1, bytes(buffer))
                    )
                await self._run(
                    self._client.complete_multipart_upload,
                    Bucket=self._bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": done},
                )
        except BaseException:
            if upload_id is not None:
                await self._abort_quietly(full, upload_id)
            raise
        return Written(size=size, sha256=digest.hexdigest())

    async def _create(self, full: str) -> str:
        response = await self._run(
            self._client.create_multipart_upload, Bucket=self._bucket, Key=full
        )
        return response["UploadId"]

    async def _send_part(
        self, full: str, upload_id: str, number: int, body: bytes
    ) -> CompletedPartTypeDef:
        response = await self._run(
            self._client.upload_part,
            Bucket=self._bucket,
            Key=full,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def _abort_quietly(self, full: str, upload_id: str) -> None:
        """Best effort: a failure here must not hide the error that made us abort."""
        try:
            await self._run(
                self._client.abort_multipart_upload,
                Bucket=self._bucket,
                Key=full,
                UploadId=upload_id,
            )
        except ImputehubError:
            log.warning(
                "could not abort an unfinished S3 upload",
                extra={"action": "storage_abort_failed", "storage_key": full},
            )

    async def read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        full = self._key(key)
        if end is not None and end <= start:
            await self.size(key)  # still NotFound for a missing object
            return
        byte_range = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            if start == 0 and end is None:
                response = await asyncio.to_thread(
                    self._client.get_object, Bucket=self._bucket, Key=full
                )
            else:
                response = await asyncio.to_thread(
                    self._client.get_object, Bucket=self._bucket, Key=full, Range=byte_range
                )
        except ClientError as exc:
            if error_code(exc) == "InvalidRange":
                return  # starts at or past the end: nothing to read, as on local disk
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        body = response["Body"]
        try:
            while True:
                chunk = await self._run(body.read, chunk_size)
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def size(self, key: str) -> int:
        response = await self._run(
            self._client.head_object, Bucket=self._bucket, Key=self._key(key)
        )
        return response["ContentLength"]

    async def delete(self, key: str) -> None:
        await self._run(self._client.delete_object, Bucket=self._bucket, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except NotFound:
            return False
        return True

    # Multipart uploads.

    async def create_multipart(self, key: str) -> str:
        return await self._create(self._key(key))

    async def write_part(
        self,
        key: str,
        handle: str,
        index: int,
        chunks: AsyncIterable[bytes],
        *,
        max_size: int | None = None,
    ) -> Written:
        full = self._key(key)
        check_index(index)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed below
            max_size=SPOOL_IN_MEMORY, dir=None if self._spool_dir is None else str(self._spool_dir)
        )
        try:
            written = await _spool(chunks, spool, max_size=max_size)
            await asyncio.to_thread(spool.seek, 0)
            response = await self._run(
                self._client.upload_part,
                Bucket=self._bucket,
                Key=full,
                UploadId=handle,
                PartNumber=index + 1,
                Body=spool,
                ContentLength=written.size,
            )
        finally:
            spool.close()
        await self._note_part(handle, index, _Part(size=written.size, etag=response["ETag"]))
        return written

    async def _note_part(self, handle: str, index: int, part: _Part) -> None:
        """Remember which copy of a part is the current one.

        S3 replaces a part uploaded again, but some S3-compatible servers (SeaweedFS)
        keep every copy and list them all under one part number, in no useful order.
        The note names the copy written last, so list_parts and complete pick it.
        """
        await self._run(
            self._client.put_object,
            Bucket=self._bucket,
            Key=f"{self._marker_prefix(handle)}{index}",
            Body=f"{part.etag} {part.size}".encode(),
        )

    async def _noted_part(self, handle: str, index: int) -> _Part | None:
        try:
            response = await self._run(
                self._client.get_object,
                Bucket=self._bucket,
                Key=f"{self._marker_prefix(handle)}{index}",
            )
            body = response["Body"]
            try:
                text = (await self._run(body.read)).decode()
            finally:
                body.close()
        except NotFound:
            return None
        etag, _, size = text.rpartition(" ")
        return _Part(size=int(size), etag=etag)

    async def _current_parts(self, key: str, handle: str) -> dict[int, _Part]:
        full = self._key(key)
        listed: dict[int, list[_Part]] = {}
        doubtful: set[int] = set()
        marker = 0
        while True:
            response = await self._run(
                self._client.list_parts,
                Bucket=self._bucket,
                Key=full,
                UploadId=handle,
                MaxParts=1000,
                PartNumberMarker=marker,
            )
            numbers = []
            for item in response.get("Parts", []):
                number = item["PartNumber"]
                numbers.append(number)
                listed.setdefault(number - 1, []).append(
                    _Part(size=item["Size"], etag=item["ETag"])
                )
            if not response.get("IsTruncated") or not numbers:
                break
            # A page may end between two copies of its last part number.
            doubtful.add(numbers[-1] - 1)
            marker = response.get("NextPartNumberMarker", numbers[-1])
        current: dict[int, _Part] = {}
        for index, copies in sorted(listed.items()):
            if len(copies) > 1 or index in doubtful:
                noted = await self._noted_part(handle, index)
                current[index] = noted or copies[-1]
            else:
                current[index] = copies[0]
        return current

    async def list_parts(self, key: str, handle: str) -> dict[int, int]:
        return {
            index: part.size for index, part in (await self._current_parts(key, handle)).items()
        }

    async def complete_multipart(self, key: str, handle: str, indexes: list[int]) -> None:
        if not indexes:
            raise InvalidInput("an upload needs at least one part")
        if indexes != sorted(set(indexes)):
            raise InvalidInput("on S3 storage the parts join in ascending index order")
        current = await self._current_parts(key, handle)
        missing = [index for index in indexes if index not in current]
        if missing:
            raise InvalidInput(f"parts are missing: {missing}", missing=missing)
        await self._run(
            self._client.complete_multipart_upload,
            Bucket=self._bucket,
            Key=self._key(key),
            UploadId=handle,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": index + 1, "ETag": current[index].etag} for index in indexes
                ]
            },
        )
        await self._drop_notes(handle)

    async def abort_multipart(self, key: str, handle: str) -> None:
        # Already completed, aborted or expired is fine: aborting is idempotent.
        with contextlib.suppress(NotFound):
            await self._run(
                self._client.abort_multipart_upload,
                Bucket=self._bucket,
                Key=self._key(key),
                UploadId=handle,
            )
        await self._drop_notes(handle)

    async def _drop_notes(self, handle: str) -> None:
        async for keys in self._object_pages(self._marker_prefix(handle)):
            await self._delete_full(keys)

    async def _object_pages(self, prefix: str) -> AsyncIterator[list[str]]:
        """The full keys of the objects under `prefix`, a page (up to 1000) at a time."""
        token: str | None = None
        while True:
            if token is None:
                page = await self._run(
                    self._client.list_objects_v2, Bucket=self._bucket, Prefix=prefix
                )
            else:
                page = await self._run(
                    self._client.list_objects_v2,
                    Bucket=self._bucket,
                    Prefix=prefix,
                    ContinuationToken=token,
                )
            keys = [item["Key"] for item in page.get("Contents", [])]
            if keys:
                yield keys
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def _delete_full(self, keys: list[str]) -> None:
        objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        for start in range(0, len(objects), 1000):  # the most one request may delete
            await self._run(
                self._client.delete_objects,
                Bucket=self._bucket,
                Delete={"Objects": objects[start : start + 1000], "Quiet": True},
            )

    # Listing, and what crashes leave behind.

    def _folder(self, folder: str) -> str:
        if folder and not folder.endswith("/"):
            raise ValueError(f"a storage folder ends with '/': {folder!r}")
        return self._prefix + (check_key(folder[:-1]) + "/" if folder else "")

    async def list_keys(self, folder: str) -> AsyncIterator[str]:
        async for keys in self._object_pages(self._folder(folder)):
            for key in keys:
                yield key[len(self._prefix) :]

    async def delete_folder(self, folder: str) -> int:
        if not folder:
            raise ValueError("refusing to delete the whole storage")
        count = 0
        async for keys in self._object_pages(self._folder(folder)):
            await self._delete_full(keys)
            count += len(keys)
        await self.discard_partials(folder, before=None)
        return count

    async def discard_partials(
        self, folder: str, *, before: datetime | None, keep: Collection[str] = ()
    ) -> int:
        """Abort the multipart uploads under `folder` begun before `before` (not in `keep`):
        a `write` of a large object cut short leaves one, invisible but stored."""
        stale = [
            (key, upload_id)
            async for key, upload_id, initiated in self._uploads(self._folder(folder))
            if upload_id not in keep and (before is None or initiated < before)
        ]
        for key, upload_id in stale:
            await self.abort_multipart(key[len(self._prefix) :], upload_id)
        if stale:
            log.info(
                "unfinished S3 uploads aborted",
                extra={"action": "storage_partials_aborted", "count": len(stale)},
            )
        return len(stale)

    async def _uploads(self, prefix: str) -> AsyncIterator[tuple[str, str, datetime]]:
        """(full key, upload id, when begun) of every multipart upload under `prefix`."""
        key_marker, id_marker = "", ""
        while True:
            page = await self._run(
                self._client.list_multipart_uploads,
                Bucket=self._bucket,
                Prefix=prefix,
                KeyMarker=key_marker,
                UploadIdMarker=id_marker,
            )
            for item in page.get("Uploads", []):
                yield item["Key"], item["UploadId"], item["Initiated"]
            key_marker = page.get("NextKeyMarker", "")
            id_marker = page.get("NextUploadIdMarker", "")
            if not page.get("IsTruncated") or not (key_marker or id_marker):
                return

    async def download_url(self, key: str, *, filename: str, expires_seconds: int) -> str | None:
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self._key(key),
            "ResponseContentDisposition": names.content_disposition(filename),
            "ResponseContentType": "application/octet-stream",
        }
        # Signing is local computation: no request is made.
        try:
            return self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_seconds
            )
        except (BotoCoreError, ClientError) as exc:
            raise translate(exc) from exc


async def _spool(
    chunks: AsyncIterable[bytes], spool: IO[bytes], *, max_size: int | None
) -> Written:
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise PayloadTooLarge(
                f"part is larger than the limit of {max_size} bytes", limit=max_size
            )
        digest.update(chunk)
        await asyncio.to_thread(spool.write, chunk)
    return Written(size=size, sha256=digest.hexdigest())
