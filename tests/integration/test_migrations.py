"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from imputehub.db import migrate
from imputehub.db.models import Base
from tests.support import databases


@pytest.fixture(params=databases.backends())
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
        return
    admin = databases.postgres_admin_url()
    assert admin is not None
    name = f"imputehub_migrate_{uuid.uuid4().hex[:8]}"
    libpq = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(admin)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
