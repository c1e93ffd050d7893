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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests start whole hubs and CLIs: a longer hang guard than unit tests."""
    for item in items:
        if item.nodeid.startswith("tests/e2e/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(600))
