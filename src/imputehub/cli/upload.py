"""`imputehub upload FILE`: resumable uploads to a hub (`submit` builds on them).

A file goes up in parts, several at once, through the hub's chunked upload API, with a
progress bar. The upload id is remembered (`uploads.json` in the client config dir), so
running the same command again after an interruption (a dropped connection, Ctrl-C, a
killed process, a hub restart) asks the hub which parts it already has and sends only the
others. The file's SHA-256 is computed once, before the first part, and checked by the hub
when the parts are joined.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imputehub.cli.client import HubClient, HubError, HubUnreachable, resolve_hub, segment
from imputehub.cli.errors import CliError
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import human_size, print_json
from imputehub.cli.settings import load_settings
from imputehub.cli.token_store import load_login
from imputehub.cli.transfer import PartPlan, PartSender, RateLimit, hash_range
from imputehub.cli.upload_state import PendingUpload, UploadStateStore

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


def describe_upload(record: dict[str, Any]) -> str:
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
        typer.echo(describe_upload(record))


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
