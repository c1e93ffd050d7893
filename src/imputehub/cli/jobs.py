"""`imputehub jobs ...`: follow, cancel, retry and download your imputation jobs (remote)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from imputehub.cli.client import HubClient, HubError, connect, segment
from imputehub.cli.download import Outcome, download_results, list_results
from imputehub.cli.errors import CliError
from imputehub.cli.follow import follow
from imputehub.cli.options import JsonOption, UrlOption
from imputehub.cli.output import human_size, print_json, print_record, print_table, short_time
from imputehub.domain.slots import ordinal

app = typer.Typer(help="Your imputation jobs.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="The job's id.")]

Status = Literal["pending", "queued", "running", "cancelling", "completed", "failed", "cancelled"]

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
    ("waiting", "waiting"),
    ("service_queue_position", "place in the service's queue"),
    ("service_queue", "service's queue"),
    ("error_message", "error"),
    ("service", "service"),
    ("reference_panel", "reference panel"),
    ("input_files", "input files"),
    ("build", "build"),
    ("phasing", "phasing"),
    ("population", "population"),
    ("mode", "mode"),
    ("r2_filter", "r2 filter"),
    ("external_job_id", "service's job id"),
    ("service_deletes_results_at", "service deletes results"),
    ("retry_of", "retry of"),
    ("created_at", "created"),
    ("started_at", "started"),
    ("completed_at", "ended"),
    ("run_time", "run time"),
    ("total_time", "total time"),
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
    """Show one job: its service, panel, times and last errors.

    `run time` runs from `started` (the hub first saw the job running) to `ended`, or to
    now while it runs; `total time` from `created`.
    """
    with connect(url) as client:
        job = client.get(f"/jobs/{segment(job_id)}")
        if json:
            print_json(job)
            return
        found = _look_up(client, "/services", job.get("service_id"))
        service = _label(found, job.get("service_id"), "name")
        panel = _name(client, "/reference-panels", job.get("reference_panel_id"), "display_name")
    record = dict(job) | {"service": service, "reference_panel": panel}
    queue = None if found is None else found.get("queue_size")
    if isinstance(queue, int) and job.get("status") in ("pending", "queued"):
        # How loaded the service is (its last health check), while the job has yet to run.
        record["service_queue"] = f"{queue} job{'' if queue == 1 else 's'} waiting (all users)"
    record |= durations(job, datetime.now(UTC))
    wait = job.get("slot_wait")
    if isinstance(wait, dict):
        record["waiting"] = (
            f"for a free slot at {service}: {wait.get('in_use')} of {wait.get('limit')} in "
            f"use; {ordinal(int(wait.get('place') or 1))} in line"
        )
    record["input_files"] = [
        f"{f.get('filename')} ({human_size(f.get('size'))})" for f in job.get("input_files") or []
    ]
    print_record(record, JOB_FIELDS)
    errors = job.get("errors") or []
    if errors:
        typer.echo(f"\nlast {min(len(errors), 5)} of {len(errors)} errors:")
        for error in errors[-5:]:
            typer.echo(f"  {_error_line(error)}")


@app.command("logs")
def logs(job_id: JobId, json: JsonOption = False, url: UrlOption = None) -> None:
    """Print the service's step messages, oldest first, one per line."""
    with connect(url) as client:
        answer = client.get(f"/jobs/{segment(job_id)}/logs")
    if json:
        print_json(answer)
        return
    lines = [str(entry) for entry in answer.get("logs") or []]
    if not lines:
        typer.echo(f"job {job_id}: the service has reported no step messages (yet)", err=True)
    for entry in lines:
        # A message of several lines stays one entry: its other lines are indented.
        typer.echo("\n  ".join(entry.splitlines()) or entry)


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
    """Follow a job (status, progress, step) until it ends.

    Exit status 0 when the job completed, 1 when it failed or was cancelled.
    """
    with connect(url) as client:
        status = follow(client, job_id, interval)
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


@app.command("retry")
def retry(job_id: JobId, json: JsonOption = False, url: UrlOption = None) -> None:
    """Run a failed or cancelled job again, as a new job.

    The new job has the same input files and settings; its id is printed.
    """
    with connect(url) as client:
        job = client.post(f"/jobs/{segment(job_id)}/retry")
    if json:
        print_json(job)
        return
    typer.echo(f"job {job['id']} is {job['status']} (a retry of {job_id})")


@app.command("download")
def download(
    job_id: JobId,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Directory to write to (default: ./JOB_ID)."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Download a job's results, checking each file's SHA-256.

    Files already there with the right checksum are skipped. Exit status 1 when the job
    has no results (yet), saying why.
    """
    target = output if output is not None else Path(job_id)

    def report(outcome: Outcome) -> None:
        size = human_size(outcome.file.size)
        verb = "downloaded" if outcome.downloaded else "already present"
        typer.echo(f"{verb}: {outcome.path} ({size}, sha256 ok)")

    with connect(url) as client:
        files = list_results(client, job_id)
        if not files:
            job = client.get(f"/jobs/{segment(job_id)}")
            raise CliError(f"job {job_id} has no results: {no_results_reason(job)}")
        download_results(client, files, target, on_done=report)


def no_results_reason(job: Mapping[str, Any]) -> str:
    """Why a job has no result files, from its state."""
    status = str(job.get("status"))
    if status == "completed":
        if job.get("files_expired"):
            return "it completed, but its result files have been deleted (retention)"
        return "it completed, but the service returned no result files"
    if status == "failed":
        message = " ".join(str(job.get("error_message") or "").split())
        return f"it failed ({message})" if message else "it failed"
    if status == "running":
        return f"it is still running ({_number(job.get('progress_percentage')):g} %)"
    if status in ("pending", "queued"):
        return f"it is still {status}"
    if status == "cancelling":
        return "it is being cancelled"
    if status == "cancelled":
        return "it was cancelled"
    return f"it is {status}"


def durations(job: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """Wall-clock times, labelled with their ends: `run time` from the job's start (the
    hub first saw it running) and `total time` from its creation, to its end or to `now`.

    The hub's own `execution_time_seconds` runs to the job's last change while it runs, so
    it is not shown: these say what they measure.
    """
    created, started = _time(job.get("created_at")), _time(job.get("started_at"))
    ended = _time(job.get("completed_at"))
    end, until = (ended, "ended") if ended is not None else (now, "now")
    found: dict[str, str] = {}
    if started is not None:
        found["run_time"] = f"{clock_time(end - started)} (started → {until})"
    if created is not None:
        found["total_time"] = f"{clock_time(end - created)} (created → {until})"
    return found


def clock_time(span: timedelta) -> str:
    """`0:00:09`, `1 day, 2:03:04`; whole seconds, never negative (clocks disagree)."""
    return str(timedelta(seconds=max(int(span.total_seconds()), 0)))


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _name(client: HubClient, path: str, ref: Any, name_key: str) -> str | None:
    return _label(_look_up(client, path, ref), ref, name_key)


def _label(found: dict[str, Any] | None, ref: Any, name_key: str) -> str | None:
    """`slug — name` of a service or panel; its id alone if the hub no longer shows it."""
    if found is None:
        return ref if isinstance(ref, str) and ref else None
    slug, name = found.get("slug") or ref, found.get(name_key)
    return f"{slug} — {name}" if name and name != slug else str(slug)


def _look_up(client: HubClient, path: str, ref: Any) -> dict[str, Any] | None:
    if not isinstance(ref, str) or not ref:
        return None
    try:
        found = client.get(f"{path}/{segment(ref)}")
    except HubError:
        return None
    return found if isinstance(found, dict) else None


def _number(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _error_line(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    kind = "transient" if error.get("transient") else "permanent"
    when = short_time(str(error.get("at", "")))
    return f"{when} attempt {error.get('attempt', '?')} ({kind}): {error.get('message', '')}"
