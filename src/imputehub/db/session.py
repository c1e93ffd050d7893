"""Database engine and sessions (async SQLAlchemy on SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, false, func, select, update
from sqlalchemy.exc import OperationalError
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

    def _writer_queue(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._sqlite_writer is None or self._sqlite_writer[0] is not loop:
            # A lock belongs to one event loop; a Database may outlive one (tests, the CLI).
            self._sqlite_writer = (loop, asyncio.Lock())
        return self._sqlite_writer[1]

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        On SQLite the session carries this process's queue of writers: `lock_row` and
        `lock_writers` (where a transaction says it is about to write) join it, and the
        session leaves it after its commit or rollback.
        """
        async with self.sessionmaker() as session:
            turn = _WriteTurn(self._writer_queue()) if self.is_sqlite else None
            session.info[_TURN] = turn
            try:
                async with session.begin():
                    yield session
            finally:
                if turn is not None:
                    turn.leave()

    async def dispose(self) -> None:
        await self.engine.dispose()


async def lock_row(session: AsyncSession, entity: Any, row_id: str) -> None:
    """Hold `entity`'s row `row_id` against other writers until this transaction ends.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has no row locks; a no-op write takes its
    database-wide write lock instead (later writers wait), and reads made after it see
    everything committed before it.
    """
    if session.get_bind().dialect.name == "sqlite":
        await _take_turn(session)
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
        await _take_turn(session)
        await session.execute(update(table).where(false()).values(id=table.id))
    else:
        await session.execute(select(func.pg_advisory_xact_lock(key)))


_TURN = "imputehub_write_turn"
# As long as SQLite's own busy timeout: a writer that waits longer fails the same way.
TURN_TIMEOUT_SECONDS = 30.0


class _WriteTurn:
    """One session's place in its process's queue of SQLite writers.

    SQLite lets one writer in at a time; the others would wait in its busy handler, which
    sleeps in growing steps (up to 100 ms) and so misses the moment the lock is free: with
    8 clients creating jobs at once, a few waited seconds. In this queue the next writer goes
    at once, first come first served. (PostgreSQL locks rows, not the database: no queue.)
    """

    def __init__(self, queue: asyncio.Lock) -> None:
        self._queue = queue
        self._held = False

    async def take(self) -> None:
        if self._held:
            return
        try:
            async with asyncio.timeout(TURN_TIMEOUT_SECONDS):
                await self._queue.acquire()
                # At once, before anything else can raise: the session's end releases it.
                self._held = True
        except TimeoutError:
            if self._held:  # taken just as the time ran out
                return
            raise OperationalError(
                "waiting for this process's other SQLite writers", None, TimeoutError()
            ) from None

    def leave(self) -> None:
        if self._held:
            self._held = False
            self._queue.release()


async def _take_turn(session: AsyncSession) -> None:
    turn: _WriteTurn | None = session.info.get(_TURN)
    if turn is not None:  # None: a session not made by Database.session (tests' own)
        await turn.take()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
