"""`imputehub jobs ...`: follow, cancel and download your imputation jobs (remote)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import typer

from imputehub.cli import sse
from imputehub.cli.client import HubClient, HubError, HubUnreachable, connect, segment
from imputehub.cli.download import Outcome, download_results, list_results
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import human_size, print_json, print_record, print_table, short_time, warn

app = typer.Typer(help="Your imputation jobs.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="The job's id.")]

Status = Literal["pending", "queued", "running", "cancelling", "completed", "failed", "cancelled"]
TERMINAL = frozenset({"completed", "failed", "cancelled"})

JOB_COLUMNS = (
    ("id", "Id"),
    ("name", "Name"),
    ("status", "Status"),
    ("progress_percentage", "%"),
    ("build", "Build"),
    ("created_at", "Created"),
)
JOB_FIELDS = (
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("status", "status"),
    ("progress_percentage", "progress %"),
    ("error_message", "error"),
    ("service_id", "service"),
    ("reference_panel_id", "reference panel"),
    ("input_files", "input files"),
    ("build", "build"),
    ("phasing", "phasing"),
    ("population", "population"),
    ("mode", "mode"),
    ("r2_filter", "r2 filter"),
    ("external_job_id", "service's job id"),
    ("retry_of", "retry of"),
    ("created_at", "created"),
    ("started_at", "started"),
    ("completed_at", "completed"),
    ("execution_time_seconds", "run time (s)"),
)


@app.command("list")
def list_(
    status: Annotated[
        Status | None, typer.Option("--status", help="Only jobs in this state.")
    ] = None,
    service: Annotated[str | None, typer.Option("--service", help="Service id or slug.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """List your jobs, newest first."""
    params = {"status": status, "service_id": service, "limit": limit}
    with connect(url) as client:
        page = client.get("/jobs", params=params)
    if json:
        print_json(page)
        return
    print_table(page["items"], JOB_COLUMNS)
    typer.echo(f"{len(page['items'])} of {page['total']} jobs")


@app.command("show")
def show(job_id: JobId, json: JsonOption = False, url: UrlOption = None) -> None:
    """Show one job."""
    with connect(url) as client:
        job = client.get(f"/jobs/{segment(job_id)}")
    if json:
        print_json(job)
        return
    record = dict(job)
    record["input_files"] = [
        f"{f.get('filename')} ({human_size(f.get('size'))})" for f in job.get("input_files") or []
    ]
    print_record(record, JOB_FIELDS)
    errors = job.get("errors") or []
    if errors:
        typer.echo(f"\nlast {min(len(errors), 5)} of {len(errors)} errors:")
        for error in errors[-5:]:
            typer.echo(f"  {_error_line(error)}")


@app.command("watch")
def watch(
    job_id: JobId,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.1,
            help="Seconds between two looks when the hub offers no live stream.",
        ),
    ] = 5.0,
    url: UrlOption = None,
) -> None:
    """Follow a job live until it ends; exit status 0 when it completed, 1 otherwise."""
    with connect(url) as client:
        status = _follow_live(client, job_id, interval)
        if status == "completed":
            typer.echo("job completed")
            return
        job = client.get(f"/jobs/{segment(job_id)}")
    reason = job.get("error_message")
    typer.echo(f"job {status}" + (f": {reason}" if reason else ""), err=True)
    raise typer.Exit(1)


@app.command("cancel")
def cancel(job_id: JobId, url: UrlOption = None) -> None:
    """Cancel a job (the service is told to stop it too)."""
    with connect(url) as client:
        job = client.post(f"/jobs/{segment(job_id)}/cancel")
    typer.echo(f"job {job['id']} is {job['status']}")


@app.command("download")
def download(
    job_id: JobId,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Directory to write to (default: ./JOB_ID)."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Download a job's result files, checking each file's SHA-256."""
    target = output if output is not None else Path(job_id)

    def report(outcome: Outcome) -> None:
        size = human_size(outcome.file.size)
        verb = "downloaded" if outcome.downloaded else "already present"
        typer.echo(f"{verb}: {outcome.path} ({size}, sha256 ok)")

    with connect(url) as client:
        files = list_results(client, job_id)
        if not files:
            typer.echo("the job has no result files (yet)")
            return
        download_results(client, files, target, on_done=report)


class _Printer:
    """Prints a line per change of status or progress."""

    def __init__(self) -> None:
        self.last: tuple[str, float] | None = None

    def show(self, status: str, progress: float) -> None:
        if (status, progress) != self.last:
            stamp = datetime.now().strftime("%H:%M:%S")
            typer.echo(f"{stamp}  {status:<10} {progress:5.1f} %")
            self.last = (status, progress)


def _follow_live(client: HubClient, job_id: str, interval: float) -> str:
    """Follow the job's event stream, reconnecting where it broke; the terminal status."""
    printer = _Printer()
    last_id: str | None = None
    status: str | None = None
    while True:
        path = f"api/v1/jobs/{segment(job_id)}/events"
        if last_id is not None:
            # A resume point in the query: the client's stream() sends no extra headers.
            path += f"?last_event_id={quote(last_id)}"
        try:
            with client.stream(path) as response:
                for message in sse.parse(response.iter_lines()):
                    last_id = message.id if message.id is not None else last_id
                    status = _show(printer, message) or status
        except HubUnreachable as exc:
            # A hub restart or a dropped connection must not end a watch of a long job.
            warn(f"{exc.message}; trying again")
            time.sleep(min(max(interval, 1.0), 5.0))
            continue
        except HubError as exc:
            if exc.status != 404 or status is not None:
                raise
            # A hub without live streams (older), or no such job: /progress tells which.
            return _follow(client, job_id, interval, printer)
        if status in TERMINAL:
            return status
        # The stream ended before the job did (the hub stopped): pick up where it broke.
        time.sleep(min(interval, 1.0))


def _show(printer: _Printer, message: sse.ServerEvent) -> str | None:
    """Print what a stream message says of the job; its status, if it tells one."""
    try:
        data = json.loads(message.data)
    except ValueError:
        return None
    payload = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
        return None
    status = str(payload["status"])
    printer.show(status, float(payload.get("progress") or 0.0))
    return status


def _follow(client: HubClient, job_id: str, interval: float, printer: _Printer) -> str:
    """Poll the job's progress, printing each change; the terminal status."""
    while True:
        try:
            progress = client.get(f"/jobs/{segment(job_id)}/progress")
        except HubUnreachable as exc:
            # A hub restart must not end a watch of a job that runs for hours.
            warn(f"{exc.message}; trying again")
            time.sleep(max(interval, 5.0))
            continue
        status = str(progress["status"])
        printer.show(status, float(progress.get("progress_percentage") or 0.0))
        if status in TERMINAL:
            return status
        time.sleep(interval)


def _error_line(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    kind = "transient" if error.get("transient") else "permanent"
    when = short_time(str(error.get("at", "")))
    return f"{when} attempt {error.get('attempt', '?')} ({kind}): {error.get('message', '')}"
