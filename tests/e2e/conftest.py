"""Fresh, empty databases for end-to-end runs: the processes under test migrate them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import databases


@pytest.fixture(params=databases.backends())
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (not the create_all schema of the other tiers)."""
    with databases.empty_database(request.param, tmp_path / "data") as url:
        yield url
