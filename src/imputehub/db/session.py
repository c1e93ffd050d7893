"""Database engine and sessions (async SQLAlchemy on SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, false, func, select, update
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from imputehub.config import normalise_database_url


class Database:
    """Owns the engine; hands out sessions. Create one per process, dispose on shutdown."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # Writers wait for each other instead of failing with "database is locked".
            kwargs["connect_args"] = {"timeout": 30}
            # Enough kept open for a busy API process: connections past the pool are closed
            # when returned and opened again (a thread and four PRAGMAs each) at the next
            # burst of requests.
            kwargs.update(pool_size=20, max_overflow=20)
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._sqlite_writer: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """On SQLite, this process's writers queue here, one at a time, until released.

        Enter it just before a transaction's first write and leave it after the commit.
        SQLite lets one writer in at a time; the others would wait in its busy handler,
        which sleeps in growing steps (up to 100 ms) and so misses the moment the lock is
        free: with 8 writers at once, a few waited seconds. Here the next one goes at once,
        first come first served. PostgreSQL locks rows, not the database: a no-op there.
        """
        if not self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._sqlite_writer is None or self._sqlite_writer[0] is not loop:
            # A lock belongs to one event loop; a Database may outlive one (tests, the CLI).
            self._sqlite_writer = (loop, asyncio.Lock())
        async with self._sqlite_writer[1]:
            yield

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


async def lock_row(session: AsyncSession, entity: Any, row_id: str) -> None:
    """Hold `entity`'s row `row_id` against other writers until this transaction ends.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has no row locks; a no-op write takes its
    database-wide write lock instead (later writers wait), and reads made after it see
    everything committed before it.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(entity).where(entity.id == row_id).values(id=entity.id))
    else:
        await session.execute(select(entity.id).where(entity.id == row_id).with_for_update())


async def lock_writers(session: AsyncSession, key: int, table: Any) -> None:
    """Serialise the writers that share `key` until this transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write that matches no row of
    `table` still takes the database's write lock, so the reads after it see what earlier
    writers committed (SQLite's SELECTs alone take no lock a second writer would wait for).
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(table).where(false()).values(id=table.id))
    else:
        await session.execute(select(func.pg_advisory_xact_lock(key)))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
