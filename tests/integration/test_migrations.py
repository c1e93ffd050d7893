"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from imputehub.db import migrate, revision
from imputehub.db.models import Base
from tests.support import databases


@pytest.fixture(params=databases.backends())
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with databases.empty_database(request.param, tmp_path) as url:
        yield url


def _sync_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite:", "sqlite:")


def test_upgrade_head_matches_the_models(empty_database: str) -> None:
    # alembic runs its own event loop; make sure none is running here.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    migrate.upgrade(empty_database)
    engine = create_engine(_sync_url(empty_database))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == [], "models changed without a migration: run `make migration`"


def test_upgrade_is_idempotent(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    migrate.upgrade(empty_database)
    engine = create_engine(_sync_url(empty_database))
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is not None
    engine.dispose()


def test_the_head_revision_known_without_alembic_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite+aiosqlite://"))
    assert script.get_heads() == [revision.HEAD], "update db/revision.py (make migration does)"
