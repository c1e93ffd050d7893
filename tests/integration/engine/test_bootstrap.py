"""First start: the local engine and its demo panel, registered once and only once."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import ReferencePanel, Service
from imputehub.engine.bootstrap import Bootstrapped, bootstrap_local_engine
from imputehub.engine.panel_import import import_panel
from imputehub.engine.panel_store import PanelStore
from imputehub.engine.tools import check_tools
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.panels import write_panel

TOOLS = check_tools()


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    assert TOOLS.healthy, TOOLS.message


async def start(runtime: Runtime, settings: Settings | None = None) -> Bootstrapped | None:
    """What `imputehub serve` does on start, against the test's database."""
    return await bootstrap_local_engine(
        settings or runtime.settings, now=runtime.clock.now(), db=runtime.db
    )


async def local_services(runtime: Runtime) -> list[Service]:
    async with runtime.db.session() as session:
        return list(await session.scalars(select(Service).where(Service.api_type == "local")))


async def panel_count(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ReferencePanel)) or 0)


def records_in(path: Path) -> int:
    out = subprocess.run(
        ["bcftools", "view", "-H", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return len(out.splitlines())


async def test_the_first_start_registers_the_engine_and_a_demo_panel_jobs_can_use(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    engine_dir = runtime.settings.resolved_engine_dir

    done = await start(runtime)

    assert done is not None
    assert (done.service_slug, done.panel_slug) == ("local", "demo")
    service = (await client.get("/api/v1/services/local", headers=admin.headers)).json()
    assert (service["name"], service["api_type"], service["is_active"]) == (
        "Local engine (Beagle 5.4)",
        "local",
        True,
    )
    panel = (await client.get("/api/v1/reference-panels/demo", headers=admin.headers)).json()
    assert panel["service_id"] == service["id"]
    assert (panel["panel_id"], panel["display_name"]) == (
        "demo",
        "Demo panel (simulated, chr20, hg19)",
    )
    assert (panel["build"], panel["populations"], panel["contigs"]) == ("hg19", ["demo"], ["20"])
    # The counts are those of the panel file the engine will read.
    store = PanelStore.in_engine_dir(engine_dir)
    assert panel["sample_count"] == 500
    assert panel["variant_count"] == records_in(store.vcf("demo")) > 1000
    assert [meta.panel_id for meta in store.list()] == ["demo"]
    # What is left in the engine dir: the store and the marker; no scratch directory.
    assert {child.name for child in engine_dir.iterdir()} == {"panels", ".bootstrapped"}


async def test_a_second_start_does_nothing(runtime: Runtime, clock: FakeClock) -> None:
    await start(runtime)
    (service,) = await local_services(runtime)
    clock.advance(60)

    assert await start(runtime) is None

    (again,) = await local_services(runtime)
    assert (again.id, again.updated_at) == (service.id, service.updated_at)
    assert await panel_count(runtime) == 1


async def test_a_deactivated_local_service_is_not_brought_back(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    await start(runtime)
    deleted = await client.delete("/api/v1/services/local", headers=admin.headers)
    assert deleted.status_code == 204

    assert await start(runtime) is None

    (service,) = await local_services(runtime)
    assert service.is_active is False


async def test_a_service_removed_from_the_database_is_not_recreated(runtime: Runtime) -> None:
    await start(runtime)
    async with runtime.db.session() as session:
        await session.execute(delete(ReferencePanel))
        await session.execute(delete(Service))

    assert await start(runtime) is None

    assert await local_services(runtime) == []  # the marker remembers the first start
    assert await panel_count(runtime) == 0


async def test_a_local_service_an_admin_registered_is_left_alone(runtime: Runtime) -> None:
    await factories.make_service(runtime, slug="my-engine", api_type="local")

    assert await start(runtime) is None

    assert [s.slug for s in await local_services(runtime)] == ["my-engine"]
    assert await panel_count(runtime) == 0
    engine_dir = runtime.settings.resolved_engine_dir
    assert (engine_dir / ".bootstrapped").exists()
    assert PanelStore.in_engine_dir(engine_dir).list() == []  # nothing simulated


async def test_switched_off_it_does_nothing(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"engine_bootstrap": False})

    assert await start(runtime, settings) is None

    assert await local_services(runtime) == []
    assert not settings.resolved_engine_dir.exists()


async def test_a_demo_panel_imported_before_a_crash_is_reused(
    runtime: Runtime, tmp_path: Path
) -> None:
    # A start that died after importing the panel, before the rows were written.
    store = PanelStore.in_engine_dir(runtime.settings.resolved_engine_dir)
    source = write_panel(tmp_path / "small.vcf.gz", records={"20": 12}, samples=7)
    import_panel(store, source, panel_id="demo", display_name="Demo panel", build="hg19")

    done = await start(runtime)

    assert done is not None
    assert (done.panel.sample_count, done.panel.variant_count) == (7, 12)
    assert await panel_count(runtime) == 1


async def test_the_slug_local_taken_by_another_service_gives_a_numbered_one(
    runtime: Runtime,
) -> None:
    await factories.make_service(runtime, slug="local", api_type="michigan")

    done = await start(runtime)

    assert done is not None
    assert done.service_slug == "local-2"


async def test_two_first_starts_at_once_register_one_local_engine(
    runtime: Runtime, tmp_path: Path
) -> None:
    # Two `serve` processes on one new database, each with an engine directory of its own.
    first = runtime.settings.model_copy(update={"engine_dir": tmp_path / "engine-a"})
    second = runtime.settings.model_copy(update={"engine_dir": tmp_path / "engine-b"})

    outcomes = await asyncio.gather(start(runtime, first), start(runtime, second))

    assert sorted(o is None for o in outcomes) == [False, True]
    (service,) = await local_services(runtime)
    assert service.slug == "local"
    assert await panel_count(runtime) == 1
