"""What only S3 storage promises, checked against a real SeaweedFS server."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imputehub.domain.errors import InvalidInput, PayloadTooLarge, StorageUnavailable
from imputehub.files.s3 import (
    MIN_PART_SIZE,
    SPOOL_IN_MEMORY,
    WRITE_PART_SIZE,
    S3Storage,
    parse_storage_url,
)
from tests.support.seaweedfs import S3Server, free_ports

MiB = 1024 * 1024


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def in_chunks(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def prefix_of(storage: S3Storage) -> str:
    return storage.location.prefix


def test_storage_url_parts() -> None:
    location = parse_storage_url(
        "s3://AK%2Fx:se%40cret@my-bucket/some/prefix/?endpoint_url=http%3A%2F%2F127.0.0.1%3A8333"
        "&region=eu-west-1"
    )
    assert location.bucket == "my-bucket"
    assert location.prefix == "some/prefix/"
    assert location.endpoint_url == "http://127.0.0.1:8333"
    assert location.region == "eu-west-1"
    assert (location.access_key, location.secret_key) == ("AK/x", "se@cret")
    assert "se@cret" not in repr(location)


def test_storage_url_without_credentials_or_prefix() -> None:
    location = parse_storage_url("s3://bucket")
    assert (location.bucket, location.prefix, location.access_key, location.endpoint_url) == (
        "bucket",
        "",
        None,
        None,
    )


@pytest.mark.parametrize(
    "url", ["http://bucket", "s3://", "s3://bucket?endpoint=x", "s3://k:secret@bucket?bogus=1"]
)
def test_bad_storage_urls_are_refused_without_echoing_secrets(url: str) -> None:
    with pytest.raises(ValueError, match="storage URL") as caught:
        parse_storage_url(url)
    assert "secret" not in str(caught.value)


def test_s3_parts_are_at_least_5_mib(s3_storage: S3Storage) -> None:
    assert s3_storage.min_part_size == 5 * MiB
    assert s3_storage.max_part_count == 10_000


async def test_a_large_write_goes_up_in_parts(s3_storage: S3Storage, seaweedfs: S3Server) -> None:
    data = os.urandom(WRITE_PART_SIZE * 2 + 12345)
    written = await s3_storage.write("big", in_chunks(data))
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert await s3_storage.size("big") == len(data)
    read = b"".join([c async for c in s3_storage.read("big", start=WRITE_PART_SIZE - 10)])
    assert read == data[WRITE_PART_SIZE - 10 :]
    assert seaweedfs.open_uploads(prefix_of(s3_storage)) == []


async def test_a_large_write_past_the_limit_leaves_nothing(
    s3_storage: S3Storage, seaweedfs: S3Server
) -> None:
    data = os.urandom(WRITE_PART_SIZE + MiB)
    with pytest.raises(PayloadTooLarge):
        await s3_storage.write("big", in_chunks(data), max_size=WRITE_PART_SIZE + 10)
    assert not await s3_storage.exists("big")
    assert seaweedfs.open_uploads(prefix_of(s3_storage)) == []
    assert seaweedfs.keys(prefix_of(s3_storage)) == []


async def test_a_replaced_part_is_still_the_new_one_after_a_restart(
    s3_storage: S3Storage, seaweedfs: S3Server, tmp_path: Path
) -> None:
    old, new = os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE)
    handle = await s3_storage.create_multipart("k")
    await s3_storage.write_part("k", handle, 0, in_chunks(old))
    await s3_storage.write_part("k", handle, 1, stream(b"end"))
    await s3_storage.write_part("k", handle, 0, in_chunks(new))

    restarted = S3Storage(s3_storage.location, spool_dir=tmp_path)
    try:
        assert await restarted.list_parts("k", handle) == {0: MIN_PART_SIZE, 1: 3}
        await restarted.complete_multipart("k", handle, [0, 1])
    finally:
        restarted.close()
    content = b"".join([c async for c in s3_storage.read("k")])
    assert content == new + b"end"
    # The notes of which copy is current went away with the upload.
    assert seaweedfs.keys(prefix_of(s3_storage)) == [prefix_of(s3_storage) + "k"]


async def test_abort_leaves_nothing_behind(s3_storage: S3Storage, seaweedfs: S3Server) -> None:
    handle = await s3_storage.create_multipart("k")
    await s3_storage.write_part("k", handle, 0, stream(b"x" * 100))
    await s3_storage.abort_multipart("k", handle)
    assert seaweedfs.open_uploads(prefix_of(s3_storage)) == []
    assert seaweedfs.keys(prefix_of(s3_storage)) == []


async def test_parts_below_5_mib_cannot_be_joined(s3_storage: S3Storage) -> None:
    handle = await s3_storage.create_multipart("small")
    await s3_storage.write_part("small", handle, 0, stream(b"abc"))
    await s3_storage.write_part("small", handle, 1, stream(b"def"))
    with pytest.raises(InvalidInput, match="at least 5242880 bytes"):
        await s3_storage.complete_multipart("small", handle, [0, 1])
    await s3_storage.abort_multipart("small", handle)


async def test_parts_join_only_in_ascending_order(s3_storage: S3Storage) -> None:
    handle = await s3_storage.create_multipart("order")
    with pytest.raises(InvalidInput, match="ascending"):
        await s3_storage.complete_multipart("order", handle, [1, 0])
    await s3_storage.abort_multipart("order", handle)


async def test_presigned_download_url(s3_storage: S3Storage) -> None:
    await s3_storage.write("inputs/x.vcf.gz", stream(b"variant bytes"))
    url = await s3_storage.download_url(
        "inputs/x.vcf.gz", filename="my file.vcf.gz", expires_seconds=60
    )
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"variant bytes"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="my file.vcf.gz"'
    )
    assert "X-Amz-Signature=" in url


async def test_wrong_credentials_are_storage_unavailable_without_the_secret(
    seaweedfs: S3Server,
) -> None:
    location = parse_storage_url(seaweedfs.storage_url())
    wrong = S3Storage(
        parse_storage_url(
            seaweedfs.storage_url().replace(
                f":{location.secret_key}@", ":not-the-secret-wrong-one@", 1
            )
        )
    )
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await wrong.write("k", stream(b"x"))
    finally:
        wrong.close()
    assert "not-the-secret" not in caught.value.message
    assert caught.value.code == "storage_unavailable"


async def test_an_unreachable_server_is_storage_unavailable() -> None:
    (port,) = free_ports(1)
    storage = S3Storage.from_url(
        f"s3://k:s@bucket?endpoint_url=http://127.0.0.1:{port}&region=us-east-1"
    )
    try:
        with pytest.raises(StorageUnavailable, match="cannot be reached"):
            await storage.size("anything")
        with pytest.raises(StorageUnavailable):
            await storage.exists("anything")
    finally:
        storage.close()


async def test_a_part_larger_than_the_memory_spool(s3_storage: S3Storage) -> None:
    big = os.urandom(SPOOL_IN_MEMORY + MiB)
    handle = await s3_storage.create_multipart("spooled")
    written = await s3_storage.write_part("spooled", handle, 0, in_chunks(big))
    await s3_storage.write_part("spooled", handle, 1, stream(b"end"))
    assert written.sha256 == hashlib.sha256(big).hexdigest()
    await s3_storage.complete_multipart("spooled", handle, [0, 1])
    assert b"".join([c async for c in s3_storage.read("spooled")]) == big + b"end"


async def test_debug_logging_never_shows_the_signed_headers(
    s3_storage: S3Storage, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await s3_storage.write("logged", stream(b"x"))
        await s3_storage.size("logged")
    text = caplog.text
    assert "Authorization" not in text
    assert (s3_storage.location.access_key or "unset") not in text
