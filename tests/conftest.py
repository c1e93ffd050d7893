"""Shared fixtures: isolated settings, runtime, app and HTTP client per test.

Database-backed fixtures run once per backend: SQLite always, PostgreSQL too when
IMPUTEHUB_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from imputehub.app import create_app
from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.runtime import Runtime, build_runtime
from tests.support import databases
from tests.support.api import Actor, make_actor
from tests.support.hub_server import reserve_socket, serving
from tests.support.seaweedfs import seaweedfs  # noqa: F401 - session fixture: one S3 server

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


# Where PostgreSQL adds nothing a user could notice, its variant is not run: pages, CLI output,
# the API's docs and error shapes, downloads, service and panel administration and the VCF
# rules call the same application functions that the API, worker, jobs, accounts, notify,
# monitoring and storage tests run on both databases (and the hostile-input tests, where the
# databases differ, stay on both).
SQLITE_ONLY = (
    "tests/integration/web/",
    "tests/integration/cli/",
    "tests/integration/api/test_docs.py",
    "tests/integration/api/test_openapi_errors.py",
    "tests/integration/api/test_downloads.py",
    "tests/integration/api/test_services.py",
    "tests/integration/api/test_panels.py",
    "tests/integration/api/test_jobs_check.py",
    "tests/integration/api/test_jobs_vcf_rules.py",
    "tests/integration/api/test_credentials.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `postgres` runs on PostgreSQL only: its SQLite variant is deselected,
    not skipped (and without IMPUTEHUB_TEST_DATABASE_URL, as on a laptop, so is the test).
    Tests under SQLITE_ONLY run on SQLite only, unless marked `postgres`."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec is not None else None
        marked = item.get_closest_marker("postgres") is not None
        unwanted = (backend == "sqlite" and marked) or (
            backend not in (None, "sqlite") and not marked and item.nodeid.startswith(SQLITE_ONLY)
        )
        (dropped if unwanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def _postgres_url() -> Iterator[str | None]:
    if not databases.postgres_admin_url():
        yield None
        return
    with databases.scratch_postgres() as url:
        yield url


@pytest.fixture(params=databases.backends())
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _postgres_url: str | None
) -> Iterator[str]:
    """An empty database with the schema, on each configured backend."""
    if request.param == "sqlite":
        yield databases.sqlite_with_schema(tmp_path)
    else:
        assert _postgres_url is not None
        databases.truncate_postgres(_postgres_url)
        yield _postgres_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings.from_environ(
        {},
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=TEST_SECRET,
        worker_poll_interval=0.05,
        worker_lease_seconds=5,
        poll_interval_seconds=0.05,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = build_runtime(settings, clock=clock)
    yield rt
    await rt.close()


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture
async def hub_url(app: FastAPI) -> AsyncIterator[str]:
    """The app over real HTTP on loopback (httpx's ASGI transport does not stream)."""
    async with serving(app) as url:
        yield url


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


@pytest.fixture
async def admin(runtime: Runtime, client: httpx.AsyncClient) -> Actor:
    return await make_actor(runtime, client, "admin", role="admin")


@pytest.fixture
async def alice(runtime: Runtime, client: httpx.AsyncClient) -> Actor:
    return await make_actor(runtime, client, "alice")


@pytest.fixture
async def bob(runtime: Runtime, client: httpx.AsyncClient) -> Actor:
    return await make_actor(runtime, client, "bob")


@pytest.fixture
def hub_socket() -> Iterator[socket.socket]:
    """The hub's loopback port, taken before the settings are made so they can name it
    (IMPUTEHUB_PUBLIC_URL); serve the app on it with tests/support/hub_server.serving."""
    sock = reserve_socket()
    yield sock
    sock.close()
