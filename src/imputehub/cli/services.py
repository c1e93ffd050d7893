"""`imputehub services ...`: the imputation services a hub offers (remote, via the API)."""

from __future__ import annotations

import json as jsonlib
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

import typer

from imputehub.cli.client import connect, segment
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import print_json, print_table
from imputehub.cli.prompts import read_stdin_line

app = typer.Typer(help="Imputation services registered at the hub.", no_args_is_help=True)

ApiType = Literal["michigan", "ga4gh_wes", "dnastack", "local"]


class Build(StrEnum):
    HG19 = "hg19"
    HG38 = "hg38"


SERVICE_COLUMNS = (
    ("id", "Id"),
    ("slug", "Slug"),
    ("name", "Name"),
    ("api_type", "API"),
    ("supported_builds", "Builds"),
    ("health_status", "Health"),
    ("response_time_ms", "ms"),
    ("is_active", "Active"),
)
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: str) -> int:
    """Bytes from '52428800', '50M', '10GiB' (binary units)."""
    match = _SIZE_RE.match(value)
    if not match:
        raise typer.BadParameter(f"{value!r} is not a size such as 1073741824, 500M or 10G")
    unit = (match.group(2) or "").upper()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_config(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; a VALUE that is valid JSON (30, true, ["a"]) keeps its JSON type."""
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--config")
        try:
            config[key] = jsonlib.loads(raw)
        except ValueError:
            config[key] = raw
    return config


@app.command("list")
def list_(
    all_: Annotated[
        bool, typer.Option("--all", help="Admins: include inactive and unhealthy services.")
    ] = False,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """List the services you can submit to."""
    with connect(url) as client:
        services = client.get("/services", params={"all": "true" if all_ else None})
    if json:
        print_json(services)
    else:
        print_table(services, SERVICE_COLUMNS)


@app.command("add")
def add(
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    api_type: Annotated[ApiType, typer.Option("--api-type", help="Kind of service.")],
    base_url: Annotated[str, typer.Option("--base-url", help="The service's API base URL.")],
    slug: Annotated[str | None, typer.Option("--slug", help="Short unique name.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    location: Annotated[str | None, typer.Option("--location", help="Where it runs.")] = None,
    build: Annotated[
        list[Build] | None,
        typer.Option("--build", help="A genome build it offers (repeat)."),
    ] = None,
    max_upload_size: Annotated[
        str | None, typer.Option("--max-upload-size", help="Largest upload, e.g. 500M or 10G.")
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", help="Non-secret API setting KEY=VALUE (repeat)."),
    ] = None,
    job_time_limit: Annotated[
        float | None,
        typer.Option("--job-time-limit", min=1, help="Seconds after which a job is given up."),
    ] = None,
    credential_stdin: Annotated[
        bool,
        typer.Option(
            "--credential-stdin", help="Read the platform credential (API token) from stdin."
        ),
    ] = False,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Register a service (admins)."""
    body: dict[str, Any] = {"name": name, "api_type": api_type, "base_url": base_url}
    optional: dict[str, Any] = {
        "slug": slug,
        "description": description,
        "location": location,
        "supported_builds": [b.value for b in build] if build else None,
        "max_upload_size": parse_size(max_upload_size) if max_upload_size else None,
        "api_config": parse_config(config) if config else None,
        "job_time_limit_seconds": job_time_limit,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if credential_stdin:
        body["credential"] = read_stdin_line("credential")
    with connect(url) as client:
        service = client.post("/services", json=body)
    if json:
        print_json(service)
    else:
        typer.echo(f"added service '{service['slug']}' ({service['id']})")


@app.command("check")
def check(
    service: Annotated[str, typer.Argument(help="Service id or slug.")],
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Check a service's health now (admins)."""
    with connect(url) as client:
        result = client.post(f"/services/{segment(service)}/health-check")
    if json:
        print_json(result)
        return
    elapsed = result["response_time_ms"]
    timing = f" in {elapsed:.0f} ms" if elapsed is not None else ""
    message = f": {result['message']}" if result["message"] else ""
    typer.echo(f"{service}: {result['status']}{timing}{message}")
