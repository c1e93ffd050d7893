"""`imputehub panels import`: an operator command on the hub's database and engine dir."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from imputehub.cli import database
from imputehub.cli.main import run
from imputehub.db.models import ReferencePanel, Service
from imputehub.db.session import Database
from imputehub.engine.panel_store import PanelStore
from imputehub.registry import local_engine
from tests.support.panels import write_panel

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def hub(tmp_path: Path, empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated hub database with a local service (slug 'local') and a Michigan one;
    the hub's data dir."""
    monkeypatch.chdir(tmp_path)
    for name in ("IMPUTEHUB_DATA_DIR", "IMPUTEHUB_ENGINE_DIR", "IMPUTEHUB_URL", "IMPUTEHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPUTEHUB_DATABASE_URL", empty_database_url)
    database.upgrade(empty_database_url)

    async def services() -> None:
        db = Database(empty_database_url)
        try:
            async with db.session() as session:
                await local_engine.create_local_service(
                    session,
                    name="Local engine",
                    slug="local",
                    base_url="http://localhost",
                    now=NOW,
                )
                session.add(
                    Service(
                        name="Michigan",
                        slug="michigan",
                        api_type="michigan",
                        base_url="https://imputationserver.sph.umich.edu",
                        supported_builds=[],
                        api_config={},
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(services())
    return tmp_path / "hub-data"


def stored_panels(url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        db = Database(url)
        try:
            async with db.session() as session:
                rows = await session.scalars(select(ReferencePanel).order_by(ReferencePanel.slug))
                return [
                    {
                        "slug": row.slug,
                        "panel_id": row.panel_id,
                        "display_name": row.display_name,
                        "build": row.build,
                        "populations": row.populations,
                        "samples": row.sample_count,
                        "variants": row.variant_count,
                        "contigs": row.contigs,
                    }
                    for row in rows
                ]
        finally:
            await db.dispose()

    return asyncio.run(read())


def import_args(vcf: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        "panels",
        "import",
        "--service",
        "local",
        "--vcf",
        str(vcf),
        "--name",
        "My EUR panel",
        "--build",
        "hg19",
        "--population",
        "EUR",
        "--population",
        "fin",
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def test_import_records_the_panel_and_puts_it_in_the_engine_dir(
    hub: Path, empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vcf = write_panel(tmp_path / "eur.vcf.gz", records={"20": 10, "21": 7}, samples=9)

    assert run(import_args(vcf, hub)) == 0

    assert capsys.readouterr().out == (
        "imported panel 'my-eur-panel': 9 samples, 17 variants, contigs 20, 21\n"
        "registered reference panel 'my-eur-panel' of service 'local'\n"
    )
    assert stored_panels(empty_database_url) == [
        {
            "slug": "my-eur-panel",
            "panel_id": "my-eur-panel",
            "display_name": "My EUR panel",
            "build": "hg19",
            "populations": ["eur", "fin"],
            "samples": 9,
            "variants": 17,
            "contigs": ["20", "21"],
        }
    ]
    (meta,) = PanelStore.in_engine_dir(hub / "engine").list()
    assert (meta.panel_id, meta.populations, meta.variant_count) == (
        "my-eur-panel",
        ("eur", "fin"),
        17,
    )


def test_a_second_import_needs_replace_and_then_updates_the_record(
    hub: Path, empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_panel(tmp_path / "first.vcf.gz", records={"20": 10})
    second = write_panel(tmp_path / "second.vcf.gz", records={"20": 25}, samples=4)
    assert run(import_args(first, hub, "--id", "eur")) == 0
    capsys.readouterr()

    assert run(import_args(second, hub, "--id", "eur")) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: the local engine already has a reference panel 'eur'; "
        "choose another id, or replace it (imputehub panels import --replace)\n"
    )
    assert [p["variants"] for p in stored_panels(empty_database_url)] == [10]

    assert run(import_args(second, hub, "--id", "eur", "--replace")) == 0

    assert capsys.readouterr().out == (
        "imported panel 'eur': 4 samples, 25 variants, contigs 20\n"
        "updated reference panel 'eur' of service 'local'\n"
    )
    assert [
        (p["slug"], p["samples"], p["variants"]) for p in stored_panels(empty_database_url)
    ] == [("eur", 4, 25)]


def test_mistakes_are_one_error_line_and_record_nothing(
    hub: Path, empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_panel(tmp_path / "good.vcf.gz", records={"20": 10})
    unphased = write_panel(tmp_path / "unphased.vcf.gz", records={"20": 10}, separator="/")
    unindexed = write_panel(tmp_path / "unindexed.vcf.gz", records={"20": 10}, index="none")
    mistakes = [
        (import_args(unphased, hub), "is not phased"),
        (import_args(unindexed, hub), "has no index next to it"),
        (import_args(tmp_path / "missing.vcf.gz", hub), "no file"),
        (
            [*import_args(good, hub)[:3], "michigan", *import_args(good, hub)[4:]],
            "service 'michigan' is a michigan service",
        ),
        ([*import_args(good, hub)[:3], "nope", *import_args(good, hub)[4:]], "no service 'nope'"),
        (import_args(good, hub, "--population", "not a label"), "each population must be"),
        (import_args(good, hub, "--id", "Bad/Id"), "is not a valid local panel id"),
    ]
    for args, message in mistakes:
        assert run(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("error: "), (args, err)
        assert message in err, (args, err)
        assert err.count("\n") == 1, err

    assert stored_panels(empty_database_url) == []
    assert PanelStore.in_engine_dir(hub / "engine").list() == []


def test_import_help_says_it_runs_on_the_hubs_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per sentence in the rendered help

    assert run(["panels", "import", "--help"]) == 0

    assert "run on the hub's machine" in capsys.readouterr().out
