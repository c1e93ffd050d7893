"""What only local disk storage promises: where parts live, and that they outlive the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imputehub.domain.errors import NotFound, PayloadTooLarge
from imputehub.files.storage import LocalStorage


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_parts_survive_a_restart(tmp_path: Path) -> None:
    before = LocalStorage(tmp_path)
    handle = await before.create_multipart("inputs/x.vcf.gz")
    await before.write_part("inputs/x.vcf.gz", handle, 1, stream(b"world"))
    await before.write_part("inputs/x.vcf.gz", handle, 0, stream(b"hello "))

    after = LocalStorage(tmp_path)
    assert await after.list_parts("inputs/x.vcf.gz", handle) == {0: 6, 1: 5}
    await after.complete_multipart("inputs/x.vcf.gz", handle, [0, 1])
    assert (tmp_path / "inputs" / "x.vcf.gz").read_bytes() == b"hello world"
    assert leftovers(tmp_path) == ["inputs/x.vcf.gz"]
    assert not (tmp_path / ".multipart" / handle).exists()


async def test_parts_are_files_in_a_staging_directory(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    handle = await storage.create_multipart("k")
    await storage.write_part("k", handle, 7, stream(b"abc"))
    assert (tmp_path / ".multipart" / handle / "7.part").read_bytes() == b"abc"


async def test_a_part_being_written_is_not_listed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    handle = await storage.create_multipart("k")
    halfway = asyncio.Event()
    finish = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first half "
        halfway.set()
        await finish.wait()
        yield b"second half"

    writing = asyncio.create_task(storage.write_part("k", handle, 0, slow()))
    await asyncio.wait_for(halfway.wait(), 5)
    assert await storage.list_parts("k", handle) == {}
    finish.set()
    await asyncio.wait_for(writing, 5)
    assert await storage.list_parts("k", handle) == {0: 22}


async def test_failed_part_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    handle = await storage.create_multipart("k")
    await storage.write_part("k", handle, 0, stream(b"ok"))
    with pytest.raises(PayloadTooLarge):
        await storage.write_part("k", handle, 0, stream(b"x" * 100), max_size=10)
    assert leftovers(tmp_path) == [f".multipart/{handle}/0.part"]


async def test_abort_frees_the_space(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    handle = await storage.create_multipart("k")
    await storage.write_part("k", handle, 0, stream(b"x" * 1000))
    await storage.abort_multipart("k", handle)
    assert leftovers(tmp_path) == []


async def test_download_url_is_none(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.write("k", stream(b"x"))
    assert await storage.download_url("k", filename="k.vcf", expires_seconds=60) is None


@pytest.mark.parametrize("handle", ["../../etc", "..", "", "ABC", "0" * 31 + "/"])
async def test_a_handle_never_reaches_a_path(tmp_path: Path, handle: str) -> None:
    storage = LocalStorage(tmp_path / "files")
    with pytest.raises(NotFound):
        await storage.write_part("k", handle, 0, stream(b"x"))
    with pytest.raises(NotFound):
        await storage.list_parts("k", handle)
    await storage.abort_multipart("k", handle)
    assert leftovers(tmp_path) == []
