"""`imputehub files ...`: your files on the hub, and the pre-flight VCF check run locally.

`files check` needs no hub: the same checker that runs on upload reads the files here, so
a researcher learns what is wrong before sending gigabytes anywhere. `files list|show|
delete` look after the files already uploaded (`show` prints the hub's report of its check).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from imputehub.cli.client import connect, segment
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import console, human_size, print_json, print_record, print_table

app = typer.Typer(
    help="Your files on the hub; check VCFs before uploading them.", no_args_is_help=True
)

FileId = Annotated[str, typer.Argument(help="The file's id.")]

SOURCES = {
    "contig_lengths": "from ##contig lengths",
    "assembly": "from the header's assembly",
    "positions": "from positions",
}
FILE_COLUMNS = (
    ("id", "Id"),
    ("filename", "Name"),
    ("size", "Size"),
    ("kind", "Kind"),
    ("job_id", "Job"),
    ("check", "Check"),
    ("created_at", "Uploaded"),
)
FILE_FIELDS = (
    ("id", "id"),
    ("filename", "name"),
    ("size", "size"),
    ("sha256", "sha256"),
    ("kind", "kind"),
    ("job_id", "job"),
    ("created_at", "uploaded"),
)


def percent(share: float | None) -> str | None:
    return None if share is None else f"{share * 100:.1f} %"


def verdict(report: Mapping[str, Any]) -> str:
    """One word or three on a report (`VcfReport.to_dict()`, as the hub stores it)."""
    if report.get("fatal"):
        return "NOT USABLE"
    errors, warnings = _count(report, "error"), _count(report, "warning")
    if errors:
        return f"ERRORS ({errors})"
    if warnings:
        return f"ok, {warnings} warning(s)"
    return "ok"


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's figures as label -> text, for people."""
    fmt = str(report.get("format") or "")
    if report.get("bgzf_eof") is not None:
        fmt += ", EOF block present" if report["bgzf_eof"] else ", no EOF block"

    def count(key: str) -> str:
        return f"{int(report.get(key) or 0):,}"

    kinds = (
        f"{count('variants')} (SNPs {count('snps')}, indels {count('indels')}, "
        f"multi-allelic {count('multiallelic')}, other {count('other')})"
    )
    build = report.get("build")
    source = report.get("build_source")
    if build and source:
        build = f"{build} ({SOURCES.get(source, source)})"
    return {
        "format": fmt,
        "fileformat": report.get("fileformat"),
        "samples": count("samples"),
        "variants": kinds,
        "chromosomes": ", ".join(report.get("chromosomes") or []) or None,
        "build": build or "unknown",
        "sorted": "yes" if report.get("sorted") else "no",
        "duplicates": count("duplicate_records") if report.get("duplicate_records") else None,
        "phased": percent(report.get("phased_share")),
        "missing": percent(report.get("missing_share")),
    }


def show_report(title: str, report: Mapping[str, Any]) -> None:
    """The verdict, the figures (unless unreadable) and every problem, indented."""
    from rich.text import Text

    console().print(Text(f"{title}: {verdict(report)}", style="bold"))
    if not report.get("fatal"):
        values = summary(report)
        print_record(values, [(key, f"  {key}") for key in values])
    for problem in _problems(report):
        severity = str(problem.get("severity", "error"))
        style = "red" if severity == "error" else "yellow"
        message = str(problem.get("message", ""))
        console().print(Text(f"  {severity}: ", style=style) + Text(message))


def _problems(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = report.get("problems")
    return [p for p in found if isinstance(p, Mapping)] if isinstance(found, list) else []


def _count(report: Mapping[str, Any], severity: str) -> int:
    return sum(1 for p in _problems(report) if p.get("severity") == severity)


@app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="VCF files (.vcf.gz, bgzipped).")],
    json: JsonOption = False,
) -> None:
    """Check VCF files here, the way the hub does on upload.

    No hub is needed. Exit status 1 if any file has errors.
    """
    from imputehub.files.vcf_check import check_path

    failed = False
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            report = check_path(path)
        except OSError as exc:
            failed = True
            typer.echo(f"error: cannot read {path}: {exc.strerror or exc}", err=True)
            continue
        failed = failed or bool(report.errors)
        if json:
            results.append({"file": str(path), "report": report.to_dict()})
        else:
            show_report(str(path), report.to_dict())
    if json:
        print_json(results)
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many.")] = 0,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """List your files on the hub (uploads and results), newest first."""
    with connect(url) as client:
        page = client.get("/files", params={"limit": limit, "offset": offset})
    if json:
        print_json(page)
        return
    rows = [_row(item) for item in page["items"]]
    print_table(rows, FILE_COLUMNS)
    typer.echo(f"{len(rows)} of {page['total']} files")


@app.command("show")
def show(file_id: FileId, json: JsonOption = False, url: UrlOption = None) -> None:
    """Show one of your files and the hub's VCF check of it."""
    with connect(url) as client:
        record = client.get(f"/files/{segment(file_id)}")
    if json:
        print_json(record)
        return
    print_record({**record, "size": _size(record)}, FILE_FIELDS)
    report = record.get("validation")
    if isinstance(report, Mapping):
        typer.echo("")
        show_report("VCF check", report)


@app.command("delete")
def delete(file_id: FileId, url: UrlOption = None) -> None:
    """Delete one of your files from the hub.

    Refused while an active job uses the file.
    """
    with connect(url) as client:
        record = client.get(f"/files/{segment(file_id)}")
        client.delete(f"/files/{segment(file_id)}")
    typer.echo(f"deleted {record['filename']} ({record['id']}, {_size(record)})")


def _row(item: Mapping[str, Any]) -> dict[str, Any]:
    report = item.get("validation")
    return {
        **item,
        "size": _size(item),
        "check": verdict(report) if isinstance(report, Mapping) else "",
    }


def _size(record: Mapping[str, Any]) -> str:
    size = record.get("size")
    return human_size(size) if isinstance(size, int) else ""
