"""The storage contract runs against every backend: local disk and S3 (real SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imputehub.files.s3 import S3Storage
from imputehub.files.storage import LocalStorage, Storage
from tests.support.seaweedfs import S3Server


@pytest.fixture
def s3_storage(seaweedfs: S3Server, tmp_path: Path) -> Iterator[S3Storage]:
    """S3 storage under a key prefix of its own in the session's SeaweedFS bucket."""
    storage = S3Storage.from_url(seaweedfs.storage_url(), spool_dir=tmp_path)
    yield storage
    storage.close()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "s3":
        s3: Storage = request.getfixturevalue("s3_storage")
        return s3
    return LocalStorage(tmp_path / "files")
