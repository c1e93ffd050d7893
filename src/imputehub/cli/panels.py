"""`imputehub panels ...`: reference panels of the hub's services (remote, via the API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from imputehub.cli.client import connect
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import print_json, print_table
from imputehub.cli.services import Build

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
