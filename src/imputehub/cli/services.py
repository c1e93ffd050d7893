"""`imputehub services ...`: the imputation services a hub offers (remote, via the API)."""

from __future__ import annotations

import json as jsonlib
import re
import sys
import time
from enum import StrEnum
from typing import Annotated, Any, Literal

import typer

from imputehub.cli.client import HubClient, HubUnreachable, connect, segment
from imputehub.cli.errors import CliError
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import human_size, print_json, print_table, short_time, warn
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
    ("queue_size", "Queue"),
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
    api_type: Annotated[ApiType, typer.Option("--api-type", "--type", help="Kind of service.")],
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
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The platform credential as an argument (visible in shell history and to "
            "other users in `ps`: prefer --credential-stdin).",
        ),
    ] = None,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Register a service (admins).

    `--url` is the hub's address, as in every command; the service's is `--base-url`.
    """
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
    if token is not None and credential_stdin:
        raise CliError("give the credential once: --token or --credential-stdin, not both")
    if token is not None:
        # Accepted as `docker login --password` does, for scripts that already hold it.
        warn("a credential given with --token is visible in shell history and to `ps`")
        if not token.strip():
            raise CliError("the credential must not be empty")
        body["credential"] = token
    elif credential_stdin:
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


@app.command("sync-panels")
def sync_panels(
    service: Annotated[str, typer.Argument(help="Service id or slug.")],
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Ask the service which reference panels it offers and mirror them (admins)."""
    with connect(url) as client:
        result = client.post(f"/services/{segment(service)}/sync-panels")
    if json:
        print_json(result)
        return
    for key, verb in (("added", "added"), ("updated", "updated"), ("deactivated", "withdrawn")):
        if result[key]:
            typer.echo(f"{verb}: {', '.join(result[key])}")
    for line in result["skipped"]:
        typer.echo(f"skipped: {line}")
    if not any(result[key] for key in ("added", "updated", "deactivated", "skipped")):
        typer.echo(f"{service}: the panels are up to date")


# --- the end-to-end self-test ------------------------------------------------------------------

TEST_TIMEOUT = 3600.0
TEST_INTERVAL = 5.0


@app.command("test")
def run_self_test(
    service: Annotated[str, typer.Argument(help="Service id or slug.")],
    panel: Annotated[
        str | None,
        typer.Option("--panel", help="Panel to test with (default: the service's first)."),
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input-file",
            help="Id of one of your uploaded files to test with instead of the bundled input "
            "(a remote server's QC wants its panel's real sites).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for the verdict before failing."),
    ] = TEST_TIMEOUT,
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="Seconds between looks at the job.")
    ] = TEST_INTERVAL,
    json: Annotated[bool, typer.Option("--json", help="Print the final report as JSON.")] = False,
    url: UrlOption = None,
) -> None:
    """Run the end-to-end self-test of SERVICE (admins) and wait for its verdict.

    Submits a tiny bundled VCF with the hub's platform credential, follows the job, checks
    its results and prints the time of each step. Exit status 0 when the test passed, 1
    when it failed or did not end within --timeout (the job then goes on at the hub), so
    the command suits cron jobs and monitoring checks.
    """
    path = f"/services/{segment(service)}/self-test"
    with connect(url) as client:
        body = {
            key: value for key, value in (("panel", panel), ("input_file", input_file)) if value
        }
        report = client.post(path, json=body or None)
        job_id = str(report["job_id"])
        if not json:
            typer.echo(
                f"self-test of {report['service_name']} on panel {report['panel']}: job {job_id}"
            )
        report, timed_out = _await_verdict(
            client, f"{path}/{segment(job_id)}", report, timeout, interval, quiet=json
        )
    if json:
        print_json({**report, "timed_out": timed_out})
    else:
        _print_report(report, timed_out=timed_out, timeout=timeout)
    if timed_out or report["verdict"] != "passed":
        raise typer.Exit(1)


def _await_verdict(
    client: HubClient,
    path: str,
    report: dict[str, Any],
    timeout: float,
    interval: float,
    *,
    quiet: bool,
) -> tuple[dict[str, Any], bool]:
    """Poll the report until it has a verdict; the last report, and whether time ran out."""
    deadline = time.monotonic() + timeout
    shown: str | None = None
    while True:
        if not quiet and report["status"] != shown:
            shown = report["status"]
            typer.echo(f"  {shown} ({float(report['progress']):.0f} %)")
        if report["verdict"] != "running":
            return report, False
        left = deadline - time.monotonic()
        if left <= 0:
            return report, True
        time.sleep(min(interval, left))
        try:
            report = client.get(path)
        except HubUnreachable as exc:
            # A hub restart must not end a watch: the deadline still bounds it.
            warn(f"{exc.message}; trying again")


def _print_report(report: dict[str, Any], *, timed_out: bool, timeout: float) -> None:
    typer.echo("step        at                        after     total")
    for step in report["steps"]:
        at = short_time(step["at"]) if step["at"] else "-"
        after = _seconds(step["seconds_from_previous"])
        total = _seconds(step["seconds_from_start"])
        typer.echo(f"{step['name']:<11} {at:<25} {after:>8}  {total:>8}")
    results = report["results"]
    if results["count"]:
        typer.echo(f"results: {results['count']} file(s), {human_size(results['total_bytes'])}")
        for item in results["files"]:
            state = "ok" if item["ok"] else f"FAILED: {item['problem']}"
            kind = "VCF, " if item["vcf"] else ""
            typer.echo(f"  {item['filename']} ({kind}{human_size(item['size'])}): {state}")
    typer.echo(f"total time: {_seconds(report['total_seconds'])}")
    if timed_out:
        typer.echo(
            f"FAILED: no verdict within {timeout:g} s (the job is {report['status']}; "
            f"it goes on at the hub as job {report['job_id']})"
        )
        return
    typer.echo(f"{str(report['verdict']).upper()}: {report['message']}")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# --- credentials ------------------------------------------------------------------------------

credential_app = typer.Typer(
    help="Your own credential (API token) for a service; --platform: the hub's (admins).",
    no_args_is_help=True,
)
app.add_typer(credential_app, name="credential")

ServiceArgument = Annotated[str, typer.Argument(help="Service id or slug.")]
PlatformOption = Annotated[
    bool,
    typer.Option("--platform", help="The hub's platform credential instead of your own (admins)."),
]


def _credential_path(service: str) -> str:
    return f"/services/{segment(service)}/credential"


def _scope(platform: bool) -> dict[str, Any]:
    return {"scope": "platform" if platform else None}


def _read_credential(from_stdin: bool) -> str:
    # Never from argv: it would land in shell history and `ps` output.
    if from_stdin:
        return read_stdin_line("credential")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the credential on; use --credential-stdin")
    credential: str = typer.prompt("Credential (API token)", hide_input=True)
    if not credential.strip():
        raise CliError("the credential must not be empty")
    return credential


def _describe(status: dict[str, Any]) -> str:
    if not status["set"]:
        return "no credential set"
    parts = ["set" + (f" (ends in {status['last_four']})" if status.get("last_four") else "")]
    verified = status.get("verified")
    parts.append(
        "not verified" if verified is None else ("verified: valid" if verified else "REJECTED")
    )
    if status.get("verified_at"):
        parts.append(f"checked {short_time(status['verified_at'])}")
    if status.get("expires_at"):
        parts.append(f"expires {short_time(status['expires_at'])}")
    line = ", ".join(parts)
    for note in ("message", "panels_message"):
        if status.get(note):
            line += f"\n  {status[note]}"
    return line


def _show_status(service: str, status: dict[str, Any], json: bool) -> None:
    if json:
        print_json(status)
        return
    typer.echo(f"{service} ({status['scope']}): {_describe(status)}")
    if status.get("expires_soon"):
        warn("the credential expires within 7 days (or has expired); renew it")


@credential_app.command("set")
def credential_set(
    service: ServiceArgument,
    platform: PlatformOption = False,
    credential_stdin: Annotated[
        bool, typer.Option("--credential-stdin", help="Read the credential from stdin.")
    ] = False,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Store a credential for SERVICE (asked for hidden, or read from stdin)."""
    credential = _read_credential(credential_stdin)
    with connect(url) as client:
        status = client.request(
            "PUT",
            _credential_path(service),
            json={"credential": credential},
            params=_scope(platform),
        )
    _show_status(service, status, json)


@credential_app.command("show")
def credential_show(
    service: ServiceArgument,
    platform: PlatformOption = False,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Whether a credential is set for SERVICE, and its last verification (never the secret)."""
    with connect(url) as client:
        status = client.get(_credential_path(service), params=_scope(platform))
    _show_status(service, status, json)


@credential_app.command("delete")
def credential_delete(
    service: ServiceArgument,
    platform: PlatformOption = False,
    url: UrlOption = None,
) -> None:
    """Forget the credential for SERVICE."""
    with connect(url) as client:
        client.request("DELETE", _credential_path(service), params=_scope(platform))
    typer.echo(f"{service}: credential deleted")


@credential_app.command("verify")
def credential_verify(
    service: ServiceArgument,
    platform: PlatformOption = False,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Ask SERVICE whether the credential is valid (and until when)."""
    with connect(url) as client:
        status = client.post(
            _credential_path(service) + ("/verify?scope=platform" if platform else "/verify")
        )
    _show_status(service, status, json)
    if status.get("verified") is False:
        raise typer.Exit(1)
