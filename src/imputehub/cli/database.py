"""The hub's database as operator commands see it: migrations and plain error messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from imputehub.cli.errors import CliError
from imputehub.db import revision
from imputehub.db.session import Database

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

UPGRADE_HINT = "run `imputehub db upgrade` first"
VERSION_TABLE = "alembic_version"


def display_url(url: str) -> str:
    """The database URL without its password, fit for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Driver errors become one line naming the database (never its password)."""
    try:
        yield
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CliError(f"database {display_url(url)}: {reason}") from exc
    except OSError as exc:
        raise CliError(f"database {display_url(url)}: {exc}") from exc


def _script_directory(url: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    from imputehub.db.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config(url))


async def current_revisions(url: str) -> set[str]:
    """The revisions in alembic's version table (none: the database has no schema yet).

    Read with a plain query: loading alembic for it would cost every worker's start-up.
    """

    def read(connection: Connection) -> set[str]:
        if not inspect(connection).has_table(VERSION_TABLE):
            return set()
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
        return {str(row[0]) for row in rows}

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def require_current_schema(url: str) -> None:
    """Refuse to run against a database that is not at the latest migration."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise CliError(f"the database {path} does not exist yet; {UPGRADE_HINT}")
    with database_errors(url):
        current = await current_revisions(url)
    if current == {revision.HEAD}:
        return  # the usual case, decided without loading alembic
    from alembic.util import CommandError

    script = _script_directory(url)
    heads = set(script.get_heads())
    if current == heads:
        return
    where = f"the database {display_url(url)}"
    if not current:
        raise CliError(f"{where} has no schema yet; {UPGRADE_HINT}")
    revisions = ", ".join(sorted(current))
    for known in current:
        try:
            script.get_revision(known)
        except CommandError as exc:
            raise CliError(
                f"{where} is at revision {revisions}, which this version of imputehub does "
                "not know (is the database newer than the code?)"
            ) from exc
    raise CliError(
        f"{where} is at revision {revisions}, not the latest "
        f"({', '.join(sorted(heads))}); {UPGRADE_HINT}"
    )


def upgrade(url: str) -> None:
    """Apply all migrations. Alembic runs its own event loop: call outside any loop."""
    from alembic.util import CommandError

    from imputehub.db import migrate

    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    with database_errors(url):
        try:
            migrate.upgrade(url)
        except CommandError as exc:
            raise CliError(f"cannot migrate {display_url(url)}: {exc}") from exc


@asynccontextmanager
async def operator_session(url: str) -> AsyncIterator[AsyncSession]:
    """One transaction on a migrated database, for operator commands run on the server."""
    await require_current_schema(url)
    db = Database(url)
    try:
        with database_errors(url):
            async with db.session() as session:
                yield session
    finally:
        await db.dispose()
