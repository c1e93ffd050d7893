"""Importing reference panels into the local engine: real bcftools/tabix, real databases."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.engine.panel_import import (
    PanelExists,
    PanelImportError,
    PanelTools,
    import_panel,
)
from imputehub.engine.panel_store import PanelMeta, PanelStore
from imputehub.engine.tools import check_tools
from imputehub.registry import local_engine
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.panels import write_panel

TOOLS = check_tools()


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    # `make test` installs them (Makefile APT_RUN): a missing tool fails, it does not skip.
    assert TOOLS.healthy, TOOLS.message


@pytest.fixture
def store(tmp_path: Path) -> PanelStore:
    return PanelStore.in_engine_dir(tmp_path / "engine")


def panel_file(tmp_path: Path, name: str = "panel.vcf.gz", **fields: object) -> Path:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    fields.setdefault("records", {"20": 10, "21": 7})
    return write_panel(source / name, **fields)


def stored_records(path: Path, region: str) -> int:
    """Records bcftools finds in `region` through the stored index."""
    out = subprocess.run(
        ["bcftools", "view", "-H", "-r", region, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return len(out.splitlines())


def contents(directory: Path) -> set[str]:
    return {child.name for child in directory.iterdir()} if directory.exists() else set()


def run_import(store: PanelStore, vcf: Path, panel_id: str = "eur", **options: object) -> PanelMeta:
    return import_panel(
        store,
        vcf,
        panel_id=panel_id,
        display_name="Test panel",
        build=str(options.pop("build", "hg19")),
        populations=("eur",),
        description="made for a test",
        **options,  # type: ignore[arg-type]
    )


def test_a_phased_indexed_panel_is_counted_copied_and_offered(
    tmp_path: Path, store: PanelStore
) -> None:
    source = panel_file(tmp_path, samples=8, header_only=("22",))

    meta = run_import(store, source)

    assert (meta.sample_count, meta.variant_count) == (8, 17)
    assert meta.contigs == ("20", "21")  # 22 has a ##contig line but no record
    assert (meta.panel_id, meta.build, meta.populations) == ("eur", "hg19", ("eur",))
    assert store.list() == [meta]
    directory = store.directory("eur")
    assert contents(directory) == {"panel.vcf.gz", "panel.vcf.gz.tbi", "panel.json"}
    assert (directory / "panel.vcf.gz").read_bytes() == source.read_bytes()
    assert stored_records(directory / "panel.vcf.gz", "21") == 7
    assert store.load("eur").extra == {"source": str(source.resolve()), "index": "tbi"}


def test_a_csi_index_is_used_and_kept(tmp_path: Path, store: PanelStore) -> None:
    source = panel_file(tmp_path, index="csi", records={"chr20": 4, "chr22": 9}, build="hg38")

    meta = run_import(store, source, build="hg38")

    assert (meta.variant_count, meta.contigs, meta.chrom_style) == (13, ("chr20", "chr22"), "chr")
    directory = store.directory("eur")
    assert contents(directory) == {"panel.vcf.gz", "panel.vcf.gz.csi", "panel.json"}
    assert stored_records(directory / "panel.vcf.gz", "chr22") == 9


def unindexed(tmp_path: Path) -> Path:
    return panel_file(tmp_path, index="none")


def plain_gzip(tmp_path: Path) -> Path:
    return panel_file(tmp_path, compression="gzip", index="none")


def uncompressed(tmp_path: Path) -> Path:
    return panel_file(tmp_path, compression="none", index="none")


def truncated(tmp_path: Path) -> Path:
    path = panel_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-28])  # the BGZF end block lost, as in a cut-short copy
    return path


def unphased(tmp_path: Path) -> Path:
    return panel_file(tmp_path, separator="/")


def with_missing_genotype(tmp_path: Path) -> Path:
    return panel_file(tmp_path, missing_at=3)


def without_samples(tmp_path: Path) -> Path:
    return panel_file(tmp_path, samples=0)


def without_records(tmp_path: Path) -> Path:
    return panel_file(tmp_path, records={}, header_only=("20",))


def of_the_other_build(tmp_path: Path) -> Path:
    return panel_file(tmp_path, build="hg38")  # imported below as hg19


def missing(tmp_path: Path) -> Path:
    return tmp_path / "nowhere.vcf.gz"


REFUSED = [
    pytest.param(unindexed, "has no index next to it", id="no-index"),
    pytest.param(plain_gzip, "plain gzip, not bgzip", id="plain-gzip"),
    pytest.param(uncompressed, "is not compressed", id="uncompressed"),
    pytest.param(truncated, "cut short", id="truncated"),
    pytest.param(unphased, "is not phased: record 1 (20:60000)", id="unphased"),
    pytest.param(with_missing_genotype, "record 3 (20:60200) has a missing", id="missing-gt"),
    pytest.param(without_samples, "has no samples", id="no-samples"),
    pytest.param(without_records, "has no variant records", id="no-records"),
    pytest.param(of_the_other_build, "is a hg38 panel", id="wrong-build"),
    pytest.param(missing, "no file", id="missing-file"),
]


@pytest.mark.parametrize(("make", "message"), REFUSED)
def test_files_that_cannot_be_panels_are_refused_and_leave_nothing(
    tmp_path: Path, store: PanelStore, make: Callable[[Path], Path], message: str
) -> None:
    source = make(tmp_path)

    with pytest.raises(PanelImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_import(store, source)

    assert store.list() == []
    assert not store.root.exists() or contents(store.root) == set()


def test_the_index_tells_where_to_make_one(tmp_path: Path, store: PanelStore) -> None:
    source = unindexed(tmp_path)

    with pytest.raises(PanelImportError) as refused:
        run_import(store, source)

    assert f"tabix -p vcf {source}" in refused.value.message


def test_a_duplicate_id_is_refused_and_the_panel_kept_until_replaced(
    tmp_path: Path, store: PanelStore
) -> None:
    first = run_import(store, panel_file(tmp_path, "first.vcf.gz"))
    second = panel_file(tmp_path, "second.vcf.gz", records={"20": 30}, samples=4, index="csi")

    with pytest.raises(PanelExists, match="already has a reference panel 'eur'"):
        run_import(store, second)
    assert store.list() == [first]

    replaced = run_import(store, second, replace=True)

    assert (replaced.sample_count, replaced.variant_count, replaced.contigs) == (4, 30, ("20",))
    assert store.list() == [replaced]
    directory = store.directory("eur")
    # The old .tbi is gone: htslib would otherwise read it for the new file.
    assert contents(directory) == {"panel.vcf.gz", "panel.vcf.gz.csi", "panel.json"}
    assert stored_records(directory / "panel.vcf.gz", "20") == 30


def test_a_refused_replacement_leaves_the_old_panel_offered(
    tmp_path: Path, store: PanelStore
) -> None:
    first = run_import(store, panel_file(tmp_path, "first.vcf.gz"))

    with pytest.raises(PanelImportError, match="not phased"):
        run_import(store, panel_file(tmp_path, "bad.vcf.gz", separator="/"), replace=True)

    assert store.list() == [first]
    assert stored_records(store.vcf("eur"), "20") == 10


class FullDiskStore(PanelStore):
    """A store whose disk fills up just as the panel's description is written."""

    def save_meta(self, meta: PanelMeta) -> None:
        raise OSError(28, "No space left on device")


def test_an_import_failing_half_way_offers_nothing_and_cleans_up(tmp_path: Path) -> None:
    store = FullDiskStore(tmp_path / "engine" / "panels")

    with pytest.raises(PanelImportError, match="No space left on device"):
        run_import(store, panel_file(tmp_path))

    assert store.list() == []
    assert contents(store.root) == set()  # no directory, no temporary copy


def test_a_missing_tool_is_named_with_its_package(tmp_path: Path, store: PanelStore) -> None:
    tools = PanelTools(tabix=str(tmp_path / "not-installed" / "tabix"))

    with pytest.raises(PanelImportError, match="install the Debian package tabix"):
        run_import(store, panel_file(tmp_path), tools=tools)

    assert store.list() == []


def test_a_bad_panel_id_is_refused(tmp_path: Path, store: PanelStore) -> None:
    with pytest.raises(PanelImportError, match="not a valid local panel id"):
        run_import(store, panel_file(tmp_path), panel_id="../escape")

    assert not (tmp_path / "engine" / "escape").exists()


# ---- the hub's record of the panel (SQLite, and PostgreSQL when configured) --------------


async def test_the_panel_is_recorded_for_the_local_service_and_shown_with_its_contigs(
    tmp_path: Path, store: PanelStore, runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    service = await factories.make_service(runtime, slug="local", api_type="local")
    meta = run_import(store, panel_file(tmp_path, samples=8))

    async with runtime.db.session() as session:
        found = await local_engine.local_service(session, "local")
        row, created = await local_engine.record_local_panel(
            session, found, meta, now=runtime.clock.now()
        )
    assert created

    response = await client.get(f"/api/v1/reference-panels/{row.id}", headers=admin.headers)
    assert response.status_code == 200
    shown = response.json()
    assert shown["service_id"] == service.id
    assert (shown["slug"], shown["panel_id"], shown["display_name"]) == (
        "eur",
        "eur",
        "Test panel",
    )
    assert (shown["build"], shown["populations"], shown["contigs"]) == (
        "hg19",
        ["eur"],
        ["20", "21"],
    )
    assert (shown["sample_count"], shown["variant_count"]) == (8, 17)
    assert shown["description"] == "made for a test"
    assert shown["is_active"] is True


async def test_a_reimport_updates_the_row_and_offers_it_again(
    tmp_path: Path, store: PanelStore, runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    await factories.make_service(runtime, slug="local", api_type="local")
    first = run_import(store, panel_file(tmp_path, "first.vcf.gz"))
    async with runtime.db.session() as session:
        service = await local_engine.local_service(session, "local")
        row, _ = await local_engine.record_local_panel(
            session, service, first, now=runtime.clock.now()
        )
    deleted = await client.delete(f"/api/v1/reference-panels/{row.id}", headers=admin.headers)
    assert deleted.status_code == 204

    second = run_import(
        store, panel_file(tmp_path, "second.vcf.gz", records={"20": 30}), replace=True
    )
    async with runtime.db.session() as session:
        service = await local_engine.local_service(session, "local")
        again, created = await local_engine.record_local_panel(
            session, service, second, now=runtime.clock.now()
        )

    assert not created
    assert again.id == row.id
    panels = await client.get(
        "/api/v1/reference-panels", params={"service_id": "local"}, headers=admin.headers
    )
    assert [(p["slug"], p["variant_count"], p["contigs"]) for p in panels.json()] == [
        ("eur", 30, ["20"])
    ]


async def test_a_taken_slug_gives_a_numbered_one(
    tmp_path: Path, store: PanelStore, runtime: Runtime
) -> None:
    other = await factories.make_service(runtime, slug="michigan")
    await factories.make_panel(runtime, other, slug="eur")
    await factories.make_panel(runtime, other, slug="local-eur")
    service = await factories.make_service(runtime, slug="local", api_type="local")
    meta = run_import(store, panel_file(tmp_path))

    async with runtime.db.session() as session:
        found = await local_engine.local_service(session, service.id)
        row, _ = await local_engine.record_local_panel(
            session, found, meta, now=runtime.clock.now()
        )

    assert row.slug == "local-eur-2"


async def test_only_a_local_service_takes_imported_panels(runtime: Runtime) -> None:
    await factories.make_service(runtime, slug="michigan", api_type="michigan")

    async with runtime.db.session() as session:
        with pytest.raises(InvalidInput, match="is a michigan service"):
            await local_engine.local_service(session, "michigan")
        with pytest.raises(InvalidInput, match="no service 'nowhere'"):
            await local_engine.local_service(session, "nowhere")
