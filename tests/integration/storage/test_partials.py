"""Listing, folder removal and the partial writes a crash leaves: on every backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imputehub.files.s3 import S3Storage
from imputehub.files.storage import LocalStorage, Storage, _temp_name


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def keys(storage: Storage, folder: str) -> set[str]:
    return {key async for key in storage.list_keys(folder)}


async def leave_partial(storage: Storage, key: str) -> str:
    """What a write of `key` killed mid-way leaves: a temporary file or an S3 upload."""
    if isinstance(storage, LocalStorage):
        path = _temp_name(storage._path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half of it")
        return path.name
    assert isinstance(storage, S3Storage)
    handle = await storage.create_multipart(key)
    await storage.write_part(key, handle, 0, stream(b"half of it"))
    return handle


async def partials(storage: Storage) -> int:
    if isinstance(storage, LocalStorage):
        return sum(1 for path in storage.root.rglob("*.tmp"))
    assert isinstance(storage, S3Storage)
    return len([item async for item in storage._uploads(storage._folder(""))])


async def test_list_keys_shows_objects_under_a_folder_and_no_partials(storage: Storage) -> None:
    for key in ("results/j1/a.txt", "results/j1/.fetched/m.json", "results/j2/b", "inputs/c"):
        await storage.write(key, stream(b"x"))
    await leave_partial(storage, "results/j1/half.txt")

    assert await keys(storage, "results/") == {
        "results/j1/a.txt",
        "results/j1/.fetched/m.json",
        "results/j2/b",
    }
    assert await keys(storage, "results/j1/.fetched/") == {"results/j1/.fetched/m.json"}
    assert await keys(storage, "nothing/") == set()
    assert "inputs/c" in await keys(storage, "")


async def test_delete_folder_removes_all_under_it_and_nothing_beside(storage: Storage) -> None:
    await storage.write("results/j1/a.txt", stream(b"result"))
    await storage.write("results/j1/.downloads/d/0", stream(b"segment"))
    await storage.write("results/j1/.downloads/d.json", stream(b"{}"))
    await storage.write("results/j1/.downloadsX", stream(b"not in the folder"))

    assert await storage.delete_folder("results/j1/.downloads/") == 2
    assert await keys(storage, "results/j1/") == {"results/j1/a.txt", "results/j1/.downloadsX"}
    assert await storage.delete_folder("results/j1/.downloads/") == 0  # idempotent
    if isinstance(storage, LocalStorage):  # no empty directory stays behind either
        assert not (storage.root / "results/j1/.downloads").exists()


async def test_empty_local_folders_are_listed_like_folder_markers(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    await storage.write("results/j1/.fetched/m.json", stream(b"{}"))
    await storage.delete("results/j1/.fetched/m.json")
    assert await keys(storage, "results/") == {"results/j1/.fetched/"}
    await storage.delete_folder("results/j1/.fetched/")
    assert await keys(storage, "results/") == {"results/j1/"}


async def test_partials_go_by_age_and_folder(storage: Storage) -> None:
    await storage.write("results/j1/a.txt", stream(b"complete"))
    await leave_partial(storage, "results/j1/a.txt")
    await leave_partial(storage, "inputs/u1")
    now = datetime.now(UTC)
    assert await partials(storage) == 2

    # Written just now: its writer may still be at work.
    assert await storage.discard_partials("", before=now - timedelta(hours=1)) == 0
    # Another folder's partials are not touched.
    assert await storage.discard_partials("results/j2/", before=None) == 0
    assert await partials(storage) == 2

    assert await storage.discard_partials("results/", before=now + timedelta(minutes=1)) == 1
    assert await partials(storage) == 1
    assert await storage.discard_partials("", before=None) == 1
    assert await partials(storage) == 0
    assert await storage.discard_partials("", before=None) == 0
    assert [chunk async for chunk in storage.read("results/j1/a.txt")] == [b"complete"]


async def test_an_old_local_partial_goes_and_a_fresh_one_stays(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    old = storage.root / "results/j1" / await leave_partial(storage, "results/j1/a.txt")
    fresh = storage.root / "results/j1" / await leave_partial(storage, "results/j1/b.txt")
    now = datetime.now(UTC)
    two_days_ago = (now - timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))

    assert await storage.discard_partials("", before=now - timedelta(days=1)) == 1
    assert not old.exists()
    assert fresh.exists()


async def test_s3_keeps_the_uploads_it_is_told_to(s3_storage: S3Storage) -> None:
    resumable = await leave_partial(s3_storage, "uploads/u1/data.vcf.gz")
    await leave_partial(s3_storage, "results/j1/big.bin")
    later = datetime.now(UTC) + timedelta(minutes=1)

    assert await s3_storage.discard_partials("", before=later, keep={resumable}) == 1
    assert await s3_storage.list_parts("uploads/u1/data.vcf.gz", resumable) == {0: 10}
