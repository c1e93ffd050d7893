"""`imputehub upload FILE` and `imputehub submit FILE...`: resumable uploads to a hub.

A file goes up in parts, several at once, through the hub's chunked upload API, with a
progress bar. The upload id is remembered (`uploads.json` in the client config dir), so
running the same command again after an interruption (a dropped connection, Ctrl-C, a
killed process, a hub restart) asks the hub which parts it already has and sends only the
others. The file's SHA-256 is computed once, before the first part, and checked by the hub
when the parts are joined.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imputehub.cli import jobs
from imputehub.cli.client import HubClient, HubError, HubUnreachable, resolve_hub, segment
from imputehub.cli.errors import CliError
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import human_size, print_json, warn
from imputehub.cli.settings import load_settings
from imputehub.cli.token_store import load_login
from imputehub.cli.transfer import PartPlan, PartSender, RateLimit, hash_range
from imputehub.cli.upload_state import PendingUpload, UploadStateStore
from imputehub.domain.jobs import Build, JobMode, Phasing

if TYPE_CHECKING:  # rich and asyncio load when a transfer starts, not for `--help`
    from rich.console import Console
    from rich.progress import Progress

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
GONE = frozenset({404, 410})
# Answers to `complete` after which the hub holds no upload to resume.
FORGET_ON = frozenset({404, 410, 413, 422})
# Completing joins and checks the whole file on the hub: allow it time to match the size.
COMPLETE_BASE_TIMEOUT = 300.0
COMPLETE_BYTES_PER_SECOND = 20 * MiB
COMPLETE_RETRY_SECONDS = 3.0
COMPLETE_MAX_WAIT = 3600.0
_SIZE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}

FilesArgument = Annotated[
    list[Path],
    typer.Argument(exists=True, dir_okay=False, readable=True, help="Bgzipped VCF file(s)."),
]
ParallelOption = Annotated[
    int, typer.Option("--parallel", min=1, max=32, help="Parts sent at the same time.")
]
PartSizeOption = Annotated[
    str | None,
    typer.Option("--part-size", help="Bytes per part, e.g. 8M (default: the hub's choice)."),
]
LimitRateOption = Annotated[
    str | None,
    typer.Option("--limit-rate", help="Send at most this many bytes per second, e.g. 2M."),
]


def parse_size(text: str, option: str) -> int:
    """'8M', '512k', '1G', '1048576' -> bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise CliError(f"{option} must be a positive size such as 8M or 1048576, not {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True, kw_only=True)
class Digest:
    """A file's SHA-256 as read at one moment (its size and modification time then)."""

    sha256: str
    size: int
    mtime_ns: int

    def matches(self, info: os.stat_result) -> bool:
        return (self.size, self.mtime_ns) == (info.st_size, info.st_mtime_ns)


class Uploader:
    """Uploads files to one hub, resuming what an earlier run left unfinished."""

    def __init__(
        self,
        client: HubClient,
        token: str | None,
        store: UploadStateStore,
        *,
        parallel: int = 4,
        part_size: int | None = None,
        rate: int | None = None,
        console: Console | None = None,
    ) -> None:
        self.client = client
        self.token = token
        self.store = store
        self.parallel = parallel
        self.part_size = part_size
        self.rate = rate
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console

    def upload(self, path: Path, digest: Digest | None = None) -> dict[str, Any]:
        """Upload one file (or finish an earlier attempt); the hub's file record.

        `digest`: the file's SHA-256 from an earlier read, used while the file looks
        unchanged since (its size and modification time), so it is not read again.
        """
        path = path.resolve()
        info = path.stat()
        if info.st_size == 0:
            raise CliError(f"{path} is empty")
        pending, state = self._resume(path, info)
        if pending is None or state is None:
            known = digest.sha256 if digest is not None and digest.matches(info) else None
            pending = self._start(path, info, known)
            state = self.client.get(f"/uploads/{segment(pending.upload_id)}")
        if state["status"] == "open" and state["missing"]:
            self._send(pending, state)
        if _changed(path, info):
            self.store.forget(self.client.url, path)
            raise CliError(f"{path} changed while it was being uploaded; run the command again")
        record = self._complete(pending)
        self.store.forget(self.client.url, path)
        return record

    def _resume(
        self, path: Path, info: os.stat_result
    ) -> tuple[PendingUpload | None, dict[str, Any] | None]:
        pending = self.store.get(self.client.url, path)
        if pending is None:
            return None, None
        wanted = self.part_size
        if not pending.matches(path, info) or (wanted is not None and wanted != pending.part_size):
            self._abandon(pending)
            return None, None
        try:
            state = self.client.get(f"/uploads/{segment(pending.upload_id)}")
        except HubError as exc:
            if exc.status not in GONE:
                raise
            self.store.forget(self.client.url, path)
            return None, None  # expired or removed on the hub: start over
        self.console.print(
            f"resuming {path.name}: the hub has {human_size(state['received_bytes'])} "
            f"of {human_size(state['size'])}",
            highlight=False,
        )
        return pending, state

    def _abandon(self, pending: PendingUpload) -> None:
        """The file changed since the last run: drop that upload on the hub, forget it."""
        with contextlib.suppress(HubError):  # already gone, or complete: nothing to free
            self.client.delete(f"/uploads/{segment(pending.upload_id)}")
        self.store.forget(self.client.url, Path(pending.path))

    def _start(self, path: Path, info: os.stat_result, sha256: str | None) -> PendingUpload:
        if sha256 is None:
            with self._progress() as progress:
                task = progress.add_task(f"checksum {path.name}", total=info.st_size)
                sha256 = hash_range(path, 0, info.st_size, lambda n: progress.advance(task, n))
        body: dict[str, Any] = {"filename": path.name, "size": info.st_size, "sha256": sha256}
        if self.part_size is not None:
            body["part_size"] = self.part_size
        created = self.client.post("/uploads/init", json=body)
        pending = PendingUpload(
            hub=self.client.url,
            upload_id=str(created["upload_id"]),
            path=str(path),
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            part_size=int(created["part_size"]),
            sha256=sha256,
        )
        self.store.put(pending)
        return pending

    def _send(self, pending: PendingUpload, state: dict[str, Any]) -> None:
        plan = PartPlan(
            upload_id=pending.upload_id,
            path=Path(pending.path),
            size=pending.size,
            part_size=int(state["part_size"]),
        )
        missing = [int(index) for index in state["missing"]]
        limit = RateLimit(self.rate) if self.rate else None
        with self._progress() as progress:
            task = progress.add_task(
                f"upload {plan.path.name}", total=plan.size, completed=int(state["received_bytes"])
            )

            async def run() -> None:
                async with PartSender(
                    self.client.url, self.token, parallel=self.parallel, limit=limit
                ) as sender:
                    await sender.send(plan, missing, lambda n: progress.advance(task, n))

            import asyncio

            try:
                asyncio.run(run())
            except ExceptionGroup as group:
                # The first refusal stopped the other parts; it is the one to report.
                first = group.exceptions[0]
                raise first if isinstance(first, CliError) else group from None

    def _complete(self, pending: PendingUpload) -> dict[str, Any]:
        """Ask the hub to join and check the parts; waits out a completion in progress."""
        timeout = COMPLETE_BASE_TIMEOUT + pending.size / COMPLETE_BYTES_PER_SECOND
        deadline = time.monotonic() + COMPLETE_MAX_WAIT
        path = f"/uploads/{segment(pending.upload_id)}/complete"
        with (
            self.console.status("the hub is checking the file...", spinner="dots"),
            HubClient(self.client.url, self.token, timeout=timeout) as slow,
        ):
            while True:
                try:
                    record: dict[str, Any] = slow.post(path)
                    return record
                except HubError as exc:
                    waiting = exc.code == "upload_completing" and time.monotonic() < deadline
                    if not waiting:
                        if exc.status in FORGET_ON:
                            # The hub refused the file and dropped the upload: start afresh.
                            self.store.forget(self.client.url, Path(pending.path))
                        raise
                except HubUnreachable:
                    # The hub may still be checking; completing again returns the same file.
                    if time.monotonic() > deadline:
                        raise
                time.sleep(COMPLETE_RETRY_SECONDS)

    def _progress(self) -> AbstractContextManager[Progress]:
        return progress_bar(self.console)


def progress_bar(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


class Interrupted(CliError):
    exit_code = 130  # what a shell reports for Ctrl-C


@contextmanager
def interruptible() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted("interrupted; run the same command again to resume") from None


def _changed(path: Path, info: os.stat_result) -> bool:
    now = path.stat()
    return (now.st_size, now.st_mtime_ns) != (info.st_size, info.st_mtime_ns)


@contextmanager
def uploader(
    url: str | None, *, parallel: int, part_size: str | None, limit_rate: str | None
) -> Iterator[Uploader]:
    settings = load_settings()
    hub, token = resolve_hub(settings, url, load_login(settings.client_config_dir))
    with HubClient(hub, token) as client:
        yield Uploader(
            client,
            token,
            UploadStateStore(settings.client_config_dir),
            parallel=parallel,
            part_size=parse_size(part_size, "--part-size") if part_size else None,
            rate=parse_size(limit_rate, "--limit-rate") if limit_rate else None,
        )


def _describe(record: dict[str, Any]) -> str:
    line = (
        f"uploaded {record['filename']}: file {record['id']} "
        f"({human_size(record['size'])}, sha256 {record['sha256']})"
    )
    report = record.get("validation")
    if isinstance(report, dict):
        for problem in report.get("problems") or []:
            if isinstance(problem, dict):
                line += f"\n  {problem.get('severity', 'note')}: {problem.get('message', '')}"
    return line


def upload(
    files: FilesArgument,
    parallel: ParallelOption = 4,
    part_size: PartSizeOption = None,
    limit_rate: LimitRateOption = None,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Upload files in resumable parts; run it again after an interruption to resume."""
    with (
        interruptible(),
        uploader(url, parallel=parallel, part_size=part_size, limit_rate=limit_rate) as up,
    ):
        records = [up.upload(path) for path in files]
    if json:
        print_json(records[0] if len(records) == 1 else records)
        return
    for record in records:
        typer.echo(_describe(record))


# --- targets ------------------------------------------------------------------------------

TARGET_SYNTAX = "SERVICE:PANEL or SERVICE:PANEL:POPULATION"
# The hub's own limit (IMPUTEHUB_MAX_TARGETS_PER_JOB) is checked by the hub.
MIN_FEDERATED_TARGETS = 2
# A federated job's own fields: a one-target check (POST /jobs/check) takes neither.
FEDERATED_KEYS = frozenset({"targets", "notify_each_target"})


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
            typer.echo(_describe(records[-1]), err=True)
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
    """Each target checked as its own job (POST /jobs/check takes one service and panel);
    a CliError naming every refused target, one a line, before anything is uploaded."""
    single = {key: value for key, value in body.items() if key not in FEDERATED_KEYS}
    refused: list[str] = []
    seen: dict[tuple[Any, Any, Any], int] = {}
    for index, target in enumerate(targets, start=1):
        named = f"target {index} ({target.label})"
        try:
            preview = client.post(
                "/jobs/check", json={**single, **target.to_api(), "files": planned}
            )
        except HubError as exc:
            if exc.status in (404, 405):
                _older_hub()
                return
            if exc.status != 422:  # not this target's fault (too many jobs, maintenance)
                raise
            refused.append(f"{named}: {exc.message}")
            continue
        # The same service and panel by two names (id and slug) is the same target.
        key = (preview["service_id"], preview["reference_panel_id"], preview.get("population"))
        if key in seen:
            refused.append(f"{named}: the same service, panel and population as target {seen[key]}")
            continue
        seen[key] = index
        typer.echo(f"the hub would accept {named}: {_previewed(preview)}", err=True)
    if refused:
        raise CliError(_not_created(refused, len(targets), "nothing was uploaded"))


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
    app.command("upload")(upload)
    app.command("submit")(submit)
