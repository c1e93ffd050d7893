"""`imputehub panels ...`: reference panels of the hub's services (remote, via the API).

`panels import` is the exception: an operator command run on the hub's machine, acting on
its database and engine directory directly (like `imputehub users create`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imputehub.cli.client import connect
from imputehub.cli.errors import run_async
from imputehub.cli.options import DataDirOption, JsonOption, UrlOption
from imputehub.cli.output import print_json, print_table
from imputehub.cli.services import Build
from imputehub.cli.settings import load_settings

if TYPE_CHECKING:
    from imputehub.engine.panel_store import PanelMeta

app = typer.Typer(help="Reference panels offered by the services.", no_args_is_help=True)

PANEL_COLUMNS = (
    ("id", "Id"),
    ("slug", "Slug"),
    ("display_name", "Name"),
    ("build", "Build"),
    ("populations", "Populations"),
    ("sample_count", "Samples"),
    ("panel_id", "Service's panel id"),
)


@app.command("list")
def list_(
    service: Annotated[str | None, typer.Option("--service", help="Service id or slug.")] = None,
    build: Annotated[Build | None, typer.Option("--build", help="Genome build.")] = None,
    population: Annotated[
        str | None, typer.Option("--population", help="Only panels listing this population.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Admins: include inactive panels.")] = False,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """List reference panels."""
    params = {
        "service_id": service,
        "build": build.value if build else None,
        "population": population,
        "all": "true" if all_ else None,
    }
    with connect(url) as client:
        panels = client.get("/reference-panels", params=params)
    if json:
        print_json(panels)
    else:
        print_table(panels, PANEL_COLUMNS)


@app.command("add")
def add(
    service: Annotated[str, typer.Option("--service", help="Service id or slug.")],
    panel_id: Annotated[
        str,
        typer.Option("--panel-id", help="The service's own id, e.g. apps@1000g-phase-3-v5@2.0.0"),
    ],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    build: Annotated[Build, typer.Option("--build", help="Genome build.")],
    population: Annotated[
        list[str] | None, typer.Option("--population", help="A population label (repeat).")
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=0, help="Sample count.")] = None,
    variants: Annotated[
        int | None, typer.Option("--variants", min=0, help="Variant count.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="Short unique name.")] = None,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Add a reference panel to a service (admins)."""
    body: dict[str, Any] = {
        "service_id": service,
        "panel_id": panel_id,
        "display_name": name,
        "build": build.value,
    }
    optional: dict[str, Any] = {
        "populations": population or None,
        "sample_count": samples,
        "variant_count": variants,
        "description": description,
        "slug": slug,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    with connect(url) as client:
        panel = client.post("/reference-panels", json=body)
    if json:
        print_json(panel)
    else:
        typer.echo(f"added panel '{panel['slug']}' ({panel['id']})")


@app.command("import")
def import_(
    vcf: Annotated[
        Path, typer.Option("--vcf", help="The phased, bgzipped panel, indexed (.tbi or .csi).")
    ],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    build: Annotated[Build, typer.Option("--build", help="Genome build of the panel.")],
    service: Annotated[
        str, typer.Option("--service", help="The local engine service (id or slug).")
    ] = "local",
    population: Annotated[
        list[str] | None, typer.Option("--population", help="A population label (repeat).")
    ] = None,
    panel_id: Annotated[
        str | None,
        typer.Option("--id", help="The panel's id in the engine (default: made from the name)."),
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a panel already imported with this id.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Import a reference panel into the hub's local engine (run on the hub's machine).

    Checks the file (bgzipped, indexed, phased, with samples), counts samples, variants and
    contigs, copies it with its index into the engine directory and records the panel in
    the hub's database, ready to be chosen in jobs. Every worker that runs local jobs must
    see the engine directory (IMPUTEHUB_ENGINE_DIR, default DATA_DIR/engine).
    """
    settings = load_settings(data_dir=data_dir)

    async def import_and_record() -> tuple[PanelMeta, str, str, bool]:
        from imputehub.cli.database import operator_session
        from imputehub.clock import SystemClock
        from imputehub.domain.errors import InvalidInput
        from imputehub.engine.panel_import import import_panel
        from imputehub.engine.panel_store import PanelStore
        from imputehub.registry import local_engine, rules

        fields = local_engine.check_panel_fields(
            display_name=name,
            build=build.value,
            populations=population or [],
            description=description,
        )
        chosen_id = panel_id if panel_id is not None else rules.slugify(fields.display_name)
        if not chosen_id:
            raise InvalidInput("cannot make a panel id from the name; give one with --id")
        url = settings.resolved_database_url
        # Short transactions around the (possibly long) copy: the hub keeps running meanwhile.
        async with operator_session(url) as session:
            service_slug = (await local_engine.local_service(session, service)).slug
        import asyncio  # here: `imputehub --help` need not load it

        meta = await asyncio.to_thread(
            import_panel,
            PanelStore.in_engine_dir(settings.resolved_engine_dir),
            vcf,
            panel_id=chosen_id,
            display_name=fields.display_name,
            build=fields.build,
            populations=fields.populations,
            description=fields.description,
            replace=replace,
        )
        async with operator_session(url) as session:
            found = await local_engine.local_service(session, service_slug)
            row, created = await local_engine.record_local_panel(
                session, found, meta, now=SystemClock().now()
            )
            return meta, row.slug, found.slug, created

    meta, slug, service_slug, created = run_async(import_and_record())
    contigs = ", ".join(meta.contigs)
    typer.echo(
        f"imported panel '{meta.panel_id}': {meta.sample_count:,} samples, "
        f"{meta.variant_count:,} variants, contigs {contigs}"
    )
    action = "registered" if created else "updated"
    typer.echo(f"{action} reference panel '{slug}' of service '{service_slug}'")
