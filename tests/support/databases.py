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

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from imputehub.db.models import Base

PG_ENV = "IMPUTEHUB_TEST_DATABASE_URL"


def postgres_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if postgres_admin_url() else ["sqlite"]


def _libpq(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database with the schema; dropped afterwards."""
    admin = postgres_admin_url()
    assert admin, f"{PG_ENV} is not set"
    name = f"imputehub_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
    async_url = url.render_as_string(hide_password=False)
    sync_engine = create_engine(async_url)
    Base.metadata.create_all(sync_engine)
    sync_engine.dispose()
    try:
        yield async_url
    finally:
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def create_sqlite_schema(url: str) -> None:
    sync_url = url.replace("sqlite+aiosqlite:", "sqlite:")
    engine = create_engine(sync_url)
    Base.metadata.create_all(engine)
    engine.dispose()
