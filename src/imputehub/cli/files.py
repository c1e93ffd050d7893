"""`imputehub files check FILE...`: the hub's pre-flight VCF check, run locally.

No hub is needed: the same checker that runs on upload reads the files here, so a
researcher learns what is wrong before sending gigabytes anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from imputehub.cli.options import JsonOption
from imputehub.cli.output import console, print_json, print_record
from imputehub.files.vcf_check import VcfReport, check_path

app = typer.Typer(help="Files: check VCFs before uploading them.", no_args_is_help=True)

SOURCES = {
    "contig_lengths": "from ##contig lengths",
    "assembly": "from the header's assembly",
    "positions": "from positions",
}


def percent(share: float | None) -> str | None:
    return None if share is None else f"{share * 100:.1f} %"


def verdict(report: VcfReport) -> str:
    if report.fatal:
        return "NOT USABLE"
    if report.errors:
        return f"ERRORS ({len(report.errors)})"
    if report.warnings:
        return f"ok, {len(report.warnings)} warning(s)"
    return "ok"


def summary(report: VcfReport) -> dict[str, Any]:
    """The report's figures as label -> text, for people."""
    fmt = report.format
    if report.bgzf_eof is not None:
        fmt += ", EOF block present" if report.bgzf_eof else ", no EOF block"
    kinds = (
        f"{report.variants:,} (SNPs {report.snps:,}, indels {report.indels:,}, "
        f"multi-allelic {report.multiallelic:,}, other {report.other:,})"
    )
    build = report.build
    if build and report.build_source:
        build = f"{build} ({SOURCES.get(report.build_source, report.build_source)})"
    return {
        "format": fmt,
        "fileformat": report.fileformat,
        "samples": f"{report.samples:,}",
        "variants": kinds,
        "chromosomes": ", ".join(report.chromosomes) or None,
        "build": build or "unknown",
        "sorted": "yes" if report.sorted else "no",
        "duplicates": f"{report.duplicate_records:,}" if report.duplicate_records else None,
        "phased": percent(report.phased_share),
        "missing": percent(report.missing_share),
    }


def show(path: Path, report: VcfReport) -> None:
    console.print(Text(f"{path}: {verdict(report)}", style="bold"))
    if not report.fatal:
        values = summary(report)
        print_record(values, [(key, f"  {key}") for key in values])
    for problem in report.problems:
        style = "red" if problem.severity == "error" else "yellow"
        console.print(Text(f"  {problem.severity}: ", style=style) + Text(problem.message))


@app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="VCF files (.vcf.gz, bgzipped).")],
    json: JsonOption = False,
) -> None:
    """Check VCF files the way the hub does on upload; exit status 1 if any has errors."""
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
            show(path, report)
    if json:
        print_json(results)
    if failed:
        raise typer.Exit(1)
