"""Test databases: a fresh SQLite file per test; PostgreSQL when configured.

PostgreSQL runs when IMPUTEHUB_TEST_DATABASE_URL is set (e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/postgres): one scratch database per test
session, created from the models, emptied between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from imputehub.db.models import Base

PG_ENV = "IMPUTEHUB_TEST_DATABASE_URL"


def postgres_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if postgres_admin_url() else ["sqlite"]


def sqlite_with_schema(folder: Path) -> str:
    """A new SQLite database in `folder` with the schema; its URL."""
    url = f"sqlite+aiosqlite:///{folder / 'test.db'}"
    create_sqlite_schema(url)
    return url


def preferring_postgres() -> str:
    """The one backend a slow end-to-end file runs on when testing both would only repeat
    it: PostgreSQL when configured (the README's `make run` walk-through covers SQLite)."""
    return "postgresql" if postgres_admin_url() else "sqlite"


def libpq(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it (no driver name)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def empty_postgres(prefix: str = "imputehub_test", *, server: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database with no tables on `server` (default: the tests' server);
    dropped afterwards, open connections and all."""
    admin = server or postgres_admin_url()
    assert admin, f"{PG_ENV} is not set"
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def empty_database(backend: str, directory: Path) -> Iterator[str]:
    """An empty database (no tables) on `backend`: a SQLite file in `directory`, or PostgreSQL."""
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{directory / 'hub.db'}"
        return
    with empty_postgres() as url:
        yield url


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new PostgreSQL database with the schema built from the models; dropped afterwards."""
    with empty_postgres() as url:
        sync_engine = create_engine(url)
        Base.metadata.create_all(sync_engine)
        sync_engine.dispose()
        yield url


def truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def create_sqlite_schema(url: str) -> None:
    sync_url = url.replace("sqlite+aiosqlite:", "sqlite:")
    engine = create_engine(sync_url)
    Base.metadata.create_all(engine)
    engine.dispose()
