"""The upload client's pieces: sizes on the command line, the resume file, part plans."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from imputehub.cli.errors import CliError
from imputehub.cli.transfer import PartPlan, hash_range
from imputehub.cli.upload import parse_size
from imputehub.cli.upload_state import PendingUpload, UploadStateStore

HUB = "https://hub.example.org"


@pytest.mark.parametrize(
    ("text", "size"),
    [("1", 1), ("8M", 8 << 20), ("8m", 8 << 20), ("8MiB", 8 << 20), ("512k", 512 << 10),
     ("1G", 1 << 30), (" 64 MB ", 64 << 20), ("1048576", 1 << 20)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text, "--part-size") == size


@pytest.mark.parametrize("text", ["", "0", "-1", "1.5M", "8T", "lots"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(CliError, match="--part-size must be a positive size"):
        parse_size(text, "--part-size")


def pending(path: Path, **fields: object) -> PendingUpload:
    info = path.stat()
    values: dict[str, object] = {
        "hub": HUB,
        "upload_id": "u-1",
        "path": str(path),
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "part_size": 1024,
        "sha256": "0" * 64,
    }
    values.update(fields)
    return PendingUpload(**values)  # type: ignore[arg-type]


def test_the_resume_file_remembers_uploads_per_hub_and_file(tmp_path: Path) -> None:
    data = tmp_path / "study.vcf.gz"
    data.write_bytes(b"x" * 100)
    store = UploadStateStore(tmp_path / "config")
    assert store.get(HUB, data) is None

    entry = pending(data)
    store.put(entry)
    assert store.get(HUB, data) == entry
    assert store.get("https://other.example.org", data) is None
    # Owner-only, like the stored login.
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700

    other = tmp_path / "other.vcf.gz"
    other.write_bytes(b"y")
    store.put(pending(other, upload_id="u-2"))
    store.forget(HUB, data)
    assert store.get(HUB, data) is None
    assert store.get(HUB, other) is not None


def test_an_entry_matches_only_an_unchanged_file(tmp_path: Path) -> None:
    data = tmp_path / "study.vcf.gz"
    data.write_bytes(b"x" * 100)
    entry = pending(data)
    assert entry.matches(data, data.stat())
    data.write_bytes(b"y" * 100)
    os.utime(data, ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))
    assert not entry.matches(data, data.stat())
    data.write_bytes(b"x" * 101)
    assert not entry.matches(data, data.stat())


def test_a_damaged_resume_file_is_a_clear_error(tmp_path: Path) -> None:
    store = UploadStateStore(tmp_path)
    store.path.write_text("{not json")
    with pytest.raises(CliError, match="delete it to start afresh"):
        store.get(HUB, tmp_path / "x")


def test_an_entry_from_another_version_is_ignored(tmp_path: Path) -> None:
    store = UploadStateStore(tmp_path)
    store.path.write_text(json.dumps({"uploads": {f"{HUB} {tmp_path / 'x'}": {"upload_id": "u"}}}))
    assert store.get(HUB, tmp_path / "x") is None


def test_part_plan_spans_and_hashes(tmp_path: Path) -> None:
    data = tmp_path / "f"
    content = os.urandom(2500)
    data.write_bytes(content)
    plan = PartPlan(upload_id="u", path=data, size=len(content), part_size=1000)
    assert [plan.span(i) for i in range(3)] == [(0, 1000), (1000, 1000), (2000, 500)]
    seen: list[int] = []
    assert hash_range(data, 2000, 500, seen.append) == hashlib.sha256(content[2000:]).hexdigest()
    assert sum(seen) == 500
    with pytest.raises(OSError, match="shorter"):
        hash_range(data, 2000, 501)
