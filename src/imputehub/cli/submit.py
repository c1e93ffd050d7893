"""`imputehub submit FILE...`: check the files and the job, upload the files, create the job.

The files are checked here (the hub's own pre-flight checks) and the job by the hub
(`POST /jobs/check`, with the files' reports) before a byte is uploaded; then the files go
up resumably (cli/upload.py) and the job is created. A refusal after the upload deletes the
files again. With two or more `--target` the job is federated: one upload, one job per
target; the hub checks every target first and names each it refuses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imputehub.cli import jobs
from imputehub.cli.client import HubClient, HubError, segment
from imputehub.cli.errors import CliError
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import print_json, warn
from imputehub.cli.upload import (
    Digest,
    FilesArgument,
    LimitRateOption,
    ParallelOption,
    PartSizeOption,
    Uploader,
    describe_upload,
    interruptible,
    progress_bar,
    uploader,
)
from imputehub.domain.jobs import Build, JobMode, Phasing

if TYPE_CHECKING:
    from rich.console import Console

# --- targets ------------------------------------------------------------------------------

TARGET_SYNTAX = "SERVICE:PANEL or SERVICE:PANEL:POPULATION"
# The hub's own limit (IMPUTEHUB_MAX_TARGETS_PER_JOB) is checked by the hub.
MIN_FEDERATED_TARGETS = 2


class TargetSpecError(ValueError):
    """A `--target` value that does not read as SERVICE:PANEL[:POPULATION]."""


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """One `--target`: a service and panel (ids or slugs), and perhaps a population."""

    service: str
    panel: str
    population: str | None = None

    @property
    def label(self) -> str:
        """`service / panel [/ population]`, as the hub names targets."""
        parts = (self.service, self.panel, self.population)
        return " / ".join(part for part in parts if part)

    def to_api(self) -> dict[str, str]:
        """The target as POST /jobs's `targets` take it."""
        found = {"service_id": self.service, "reference_panel_id": self.panel}
        if self.population is not None:
            found["population"] = self.population
        return found


def parse_target(text: str) -> TargetSpec:
    """`michigan:hapmap-2:eur` -> TargetSpec; TargetSpecError says what is wrong.

    Strict: two or three non-empty parts, nothing else (a panel id never holds a colon:
    the services' own ids read `apps@name@version`).
    """
    parts = [part.strip() for part in text.split(":")]
    if len(parts) > 3:
        raise TargetSpecError(
            f"{text!r} has {len(parts) - 1} colons; give {TARGET_SYNTAX} (at most 2 colons)"
        )
    if len(parts) < 2:
        raise TargetSpecError(f"{text!r} names no panel; give {TARGET_SYNTAX}")
    for part, what in zip(parts, ("service", "panel", "population"), strict=False):
        if not part:
            raise TargetSpecError(f"{text!r} has an empty {what}; give {TARGET_SYNTAX}")
    return TargetSpec(
        service=parts[0], panel=parts[1], population=parts[2] if len(parts) == 3 else None
    )


def parse_targets(texts: Sequence[str]) -> list[TargetSpec]:
    """Every `--target` parsed; the same one twice is refused (the hub would refuse it too)."""
    targets: list[TargetSpec] = []
    for text in texts:
        try:
            target = parse_target(text)
        except TargetSpecError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--target'") from None
        if target in targets:
            raise typer.BadParameter(
                f"{text!r} is given twice (targets {targets.index(target) + 1} and "
                f"{len(targets) + 1})",
                param_hint="'--target'",
            )
        targets.append(target)
    return targets


def refused_targets(problem: Mapping[str, Any]) -> list[str]:
    """The hub's refusal of a federated job, one bad target a line, from the problem's
    `targets` list ({index, service, reference_panel, message} each; index from 0)."""
    lines = []
    for item in problem.get("targets") or []:
        if not isinstance(item, dict) or not isinstance(item.get("index"), int):
            continue
        lines.append(
            f"target {item['index'] + 1} ({item.get('service')} / "
            f"{item.get('reference_panel')}): {item.get('message')}"
        )
    return lines


# --- submit -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Checked:
    """A file read once before its upload: its VCF report and its digest."""

    report: dict[str, Any]
    digest: Digest


def preflight(paths: Sequence[Path], console: Console) -> list[Checked]:
    """The hub's pre-flight check of every file, run here first, with its SHA-256 in the
    same read; or a CliError naming each file with errors (nothing has been sent then)."""
    from imputehub.files.vcf_check import READ_SIZE, VcfChecker

    checked: list[Checked] = []
    refused: list[str] = []
    with progress_bar(console) as progress:
        for path in paths:
            checker = VcfChecker()
            sha256 = hashlib.sha256()
            try:
                with path.open("rb") as handle:
                    info = os.fstat(handle.fileno())
                    task = progress.add_task(f"check {path.name}", total=info.st_size)
                    while not checker.failed and (chunk := handle.read(READ_SIZE)):
                        # (An unreadable file is refused below: its digest goes unused.)
                        checker.feed(chunk)
                        sha256.update(chunk)
                        progress.advance(task, len(chunk))
            except OSError as exc:
                raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
            report = checker.finish()
            if report.errors:
                refused.append(f"{path}: {_shown(p.message for p in report.errors)}")
            digest = Digest(sha256=sha256.hexdigest(), size=info.st_size, mtime_ns=info.st_mtime_ns)
            checked.append(Checked(report=report.to_dict(), digest=digest))
    if len(refused) == 1:
        raise CliError(f"{refused[0]} (nothing was uploaded)")
    if refused:
        lines = "\n".join(f"  {line}" for line in refused)
        raise CliError(f"{len(refused)} files cannot be used (nothing was uploaded):\n{lines}")
    return checked


def _shown(messages: Iterable[str], limit: int = 3) -> str:
    listed = list(messages)
    more = f" (and {len(listed) - limit} more)" if len(listed) > limit else ""
    return "; ".join(listed[:limit]) + more


def _planned(path: Path, checked: Checked) -> dict[str, Any]:
    """A file for the hub's dry run, named and sized as its upload will declare it."""
    return {"filename": path.resolve().name, "size": checked.digest.size, "report": checked.report}


def _remove(client: HubClient, records: Sequence[dict[str, Any]]) -> None:
    """Delete the files a submit uploaded for a job that was not created."""
    for record in records:
        try:
            client.delete(f"/files/{segment(str(record['id']))}")
        except CliError as exc:
            typer.echo(
                f"warning: uploaded file {record['id']} could not be deleted: {exc.message}",
                err=True,
            )
        else:
            typer.echo(
                f"deleted {record['filename']} (file {record['id']}) from the hub again: "
                "no job was created",
                err=True,
            )


def create_job(
    up: Uploader,
    paths: Sequence[Path],
    body: dict[str, Any],
    targets: Sequence[TargetSpec] = (),
) -> dict[str, Any]:
    """Check the job locally and with the hub, upload the files, create the job.

    Any refusal comes before the first byte is sent when the checks can foresee it;
    when one comes later anyway (the job is refused after all, an upload is refused or
    interrupted), the files this run uploaded are deleted again. `targets`: a federated
    job's (its `body` holds them too), each checked by the hub as its own job would be.
    """
    checked = preflight(paths, up.console)
    planned = [_planned(path, item) for path, item in zip(paths, checked, strict=True)]
    if targets:
        _check_targets(up.client, body, targets, planned)
    else:
        _check_job(up.client, body, planned)
    records: list[dict[str, Any]] = []
    try:
        for path, item in zip(paths, checked, strict=True):
            records.append(up.upload(path, item.digest))
            typer.echo(describe_upload(records[-1]), err=True)
        ids = [record["id"] for record in records]
        job = _post_job(up.client, {**body, "input_file_ids": ids})
    except BaseException:
        _remove(up.client, records)
        raise
    return job


def _check_job(client: HubClient, body: dict[str, Any], planned: list[dict[str, Any]]) -> None:
    try:
        preview = client.post("/jobs/check", json={**body, "files": planned})
    except HubError as exc:
        if exc.status not in (404, 405):  # its refusals are 422 / 429, never these
            raise
        _older_hub()
    else:
        typer.echo(f"the hub would accept this job: {_previewed(preview)}", err=True)


def _check_targets(
    client: HubClient,
    body: dict[str, Any],
    targets: Sequence[TargetSpec],
    planned: list[dict[str, Any]],
) -> None:
    """The hub checks every target as its own job (POST /jobs/check with `targets`); a
    CliError naming every refused target, one a line, before anything is uploaded."""
    try:
        preview = client.post("/jobs/check", json={**body, "files": planned})
    except HubError as exc:
        if exc.status in (404, 405):
            _older_hub()
            return
        lines = refused_targets(exc.problem) if exc.status == 422 else []
        if not lines:  # not one target's fault (too many jobs, maintenance, a bad field)
            raise
        raise CliError(_not_created(lines, len(targets), "nothing was uploaded")) from None
    checked = preview.get("targets") or []
    for index, (item, target) in enumerate(zip(checked, targets, strict=False), start=1):
        typer.echo(
            f"the hub would accept target {index} ({target.label}): {_previewed(item)}",
            err=True,
        )


def _post_job(client: HubClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST /jobs; a refusal of a federated job's targets is told one target a line."""
    try:
        job: dict[str, Any] = client.post("/jobs", json=body)
    except HubError as exc:
        lines = refused_targets(exc.problem) if exc.status == 422 else []
        if not lines:
            raise
        raise CliError(_not_created(lines, len(body.get("targets") or ()), None)) from None
    return job


def _not_created(lines: Sequence[str], total: int, note: str | None) -> str:
    told = f" ({note})" if note else ""
    listed = "\n".join(f"  {line}" for line in lines)
    return f"the job was not created{told}: {len(lines)} of {total} targets refused:\n{listed}"


def _previewed(preview: dict[str, Any]) -> str:
    population = preview.get("population")
    return (
        f"service {preview['service_slug']}, panel {preview['reference_panel_slug']}"
        + (f", population {population}" if population else "")
        + f", {preview['build']}, phasing {preview['phasing']}, mode {preview['mode']}"
    )


def _older_hub() -> None:
    # A hub older than POST /jobs/check (405: the path is taken for /jobs/{id}); it
    # still checks everything at POST /jobs, after the upload.
    warn("this hub cannot check a job before its files are uploaded (an older version)")


def submit(
    files: FilesArgument,
    build: Annotated[Build, typer.Option("--build", help="Genome build of the files.")],
    service: Annotated[
        str | None,
        typer.Option("--service", help="Service id or slug (or give --target)."),
    ] = None,
    panel: Annotated[
        str | None,
        typer.Option(
            "--panel",
            help="Reference panel: the hub's id or slug, or the service's own panel id "
            "(e.g. apps@1000g-phase-3-v5@2.0.0).",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            metavar="SERVICE:PANEL[:POPULATION]",
            help="Where to send the files, instead of --service/--panel/--population. "
            "One --target is an ordinary job; repeat it (2 up to the hub's limit, 5 by "
            "default) for a federated job: one upload, one job per target, their results "
            "compared and merged once two or more complete. Before anything is uploaded the "
            "hub checks each target as it checks a job, and every refused target is named.",
        ),
    ] = None,
    notify_each_target: Annotated[
        bool,
        typer.Option(
            "--notify-each-target",
            help="A federated job: be notified of each target's job too, not only of the whole.",
        ),
    ] = False,
    phasing: Annotated[
        Phasing | None,
        typer.Option("--phasing", help="Phasing method (required unless --mode qc_only)."),
    ] = None,
    population: Annotated[
        str | None,
        typer.Option(
            "--population",
            help="Population of the samples (with --service; a --target names its own).",
        ),
    ] = None,
    mode: Annotated[JobMode, typer.Option("--mode", help="What to run.")] = JobMode.IMPUTATION,
    r2_filter: Annotated[
        float | None, typer.Option("--r2-filter", min=0.0, max=1.0, help="Minimum imputation r2.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Job name (default: file).")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="A note on the job, for you.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    download: Annotated[
        Path | None,
        typer.Option("--download", help="Wait, then download the results into this directory."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between two looks (--wait).")
    ] = 5.0,
    parallel: ParallelOption = 4,
    part_size: PartSizeOption = None,
    limit_rate: LimitRateOption = None,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Check files and job, upload the files (resumable) and submit one job with them.

    The files are checked here and the job by the hub before anything is uploaded; a
    refused job leaves no uploaded file behind. With two or more --target the files are
    uploaded once and sent to each target (a federated job); every target is checked
    first, and a refusal names each bad target.
    """
    if phasing is None and mode is JobMode.IMPUTATION:
        choices = ", ".join(member.value for member in Phasing)
        raise typer.BadParameter(
            f"required in imputation mode: choose one of {choices} "
            "(only --mode qc_only runs without it)",
            param_hint="'--phasing'",
        )
    targets = _where(service, panel, population, target or [])
    federated = len(targets) >= MIN_FEDERATED_TARGETS
    if notify_each_target and not federated:
        raise typer.BadParameter(
            "is for a federated job: give two or more --target",
            param_hint="'--notify-each-target'",
        )
    body: dict[str, Any] = {
        "name": name or files[0].name,
        "description": description,
        "build": build.value,
        "phasing": phasing.value if phasing is not None else None,
        "mode": mode.value,
        "r2_filter": r2_filter,
    }
    if federated:
        body |= {
            "targets": [item.to_api() for item in targets],
            "notify_each_target": notify_each_target,
        }
    else:
        (only,) = targets
        body |= {
            "service_id": only.service,
            "reference_panel_id": only.panel,
            "population": only.population,
        }
    with (
        interruptible(),
        uploader(url, parallel=parallel, part_size=part_size, limit_rate=limit_rate) as up,
    ):
        job = create_job(
            up,
            files,
            {k: v for k, v in body.items() if v is not None},
            targets if federated else (),
        )
    if json:
        print_json(job)
    elif federated:
        typer.echo(_submitted(job, targets))
    else:
        typer.echo(f"submitted job {job['id']} ({job['status']})")
    if wait or download is not None:
        # Exits with status 1 when the job does not complete: nothing to download then.
        jobs.watch(job["id"], interval=interval, url=url)
    if download is not None:
        jobs.download(job["id"], output=download, url=url)


def _where(
    service: str | None, panel: str | None, population: str | None, texts: Sequence[str]
) -> list[TargetSpec]:
    """The job's targets: the --target values, or the one --service/--panel names."""
    if texts:
        given = [
            flag
            for flag, value in (
                ("--service", service),
                ("--panel", panel),
                ("--population", population),
            )
            if value is not None
        ]
        if given:
            raise typer.BadParameter(
                f"cannot be combined with {', '.join(given)}: each target names its own "
                f"service, panel and population ({TARGET_SYNTAX})",
                param_hint="'--target'",
            )
        return parse_targets(texts)
    if service is None or panel is None:
        if service is not None:
            missing = "'--panel'"
        else:
            missing = "'--service'" if panel is not None else "'--service' / '--target'"
        raise typer.BadParameter(
            "give --service and --panel, or --target SERVICE:PANEL[:POPULATION] "
            "(repeat --target to send the files to several services or panels)",
            param_hint=missing,
        )
    return [TargetSpec(service=service, panel=panel, population=population)]


def _submitted(job: dict[str, Any], targets: Sequence[TargetSpec]) -> str:
    """`submitted federated job P (pending) with 2 targets:` and a line per target's job."""
    children = job.get("children") or []
    lines = [f"submitted federated job {job['id']} ({job['status']}) with {len(targets)} targets:"]
    if len(children) == len(targets):
        lines += [f"  {child['id']}  {t.label}" for child, t in zip(children, targets, strict=True)]
    else:  # an unexpected answer: the hub's names of the children say where each goes
        lines += [f"  {child.get('id')}  {child.get('name')}" for child in children]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
