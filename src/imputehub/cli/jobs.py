"""`imputehub jobs ...`: follow, cancel, retry and download your imputation jobs (remote).

A federated job (one upload sent to several services or panels) is a parent job whose
children run at the services: `show` lists its targets, `list` marks it, and `watch`,
`cancel`, `retry` and `download` act on it as on any job (the hub acts on the children).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    ("federation", "Federated"),
    ("created_at", "Created"),
)
CHILD_COLUMNS = (
    ("id", "Id"),
    ("target", "Target"),
    ("status", "Status"),
    ("progress_percentage", "%"),
)
ACTIVE = frozenset({"pending", "queued", "running", "cancelling"})
JOB_FIELDS = (
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("status", "status"),
    ("summary", "targets"),
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
    ("parent_id", "part of federated job"),
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
    children: Annotated[
        bool,
        typer.Option("--children", help="List the targets' jobs of federated jobs too."),
    ] = False,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent", metavar="ID", help="Only the targets' jobs of this federated job."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20,
    json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """List your jobs, newest first.

    A federated job is listed once (`Federated: parent`); its targets' jobs, with
    --children or --parent, say which job they are a target of.
    """
    params = {
        "status": status,
        "service_id": service,
        "limit": limit,
        "parent_id": parent,
        "children": "true" if children else None,
    }
    with connect(url) as client:
        page = client.get("/jobs", params=params)
    if json:
        print_json(page)
        return
    print_table([row | {"federation": federation(row)} for row in page["items"]], JOB_COLUMNS)
    typer.echo(f"{len(page['items'])} of {page['total']} jobs")


@app.command("show")
def show(job_id: JobId, json: JsonOption = False, url: UrlOption = None) -> None:
    """Show one job: its service, panel, times and last errors.

    `run time` runs from `started` (the hub first saw the job running) to `ended`, or to
    now while it runs; `total time` from `created`. A federated job: how its targets stand
    and a table of its targets' jobs, every attempt (a retried one marked `(retried)`).
    """
    with connect(url) as client:
        job = client.get(f"/jobs/{segment(job_id)}")
        if json:
            print_json(job)
            return
        found = _look_up(client, "/services", job.get("service_id"))
        service = _label(found, job.get("service_id"), "name")
        panel = _name(client, "/reference-panels", job.get("reference_panel_id"), "display_name")
        children = None if job.get("children") is None else child_rows(client, job["children"])
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
    if children is not None:
        typer.echo("")
        failed = any(row.get("error_message") for row in children)
        columns = (*CHILD_COLUMNS, ("error_message", "Error")) if failed else CHILD_COLUMNS
        print_table(children, columns, title="targets")
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
            summary = _summary(client, job_id)
            typer.echo("job completed" + (f": {summary}" if summary else ""))
            return
        job = client.get(f"/jobs/{segment(job_id)}")
    # A federated job's reason is how its targets ended (each has its own error).
    reason = job.get("error_message") or job.get("summary")
    typer.echo(f"job {status}" + (f": {reason}" if reason else ""), err=True)
    raise typer.Exit(1)


def _summary(client: HubClient, job_id: str) -> str | None:
    """How a federated job's targets stand (None for any other job): a nicety, so a hub
    that cannot tell it any more (restarting) does not fail a watch that saw the end."""
    try:
        job = client.get(f"/jobs/{segment(job_id)}")
    except CliError:
        return None
    summary = job.get("summary") if isinstance(job, dict) else None
    return summary if isinstance(summary, str) and summary else None


@app.command("cancel")
def cancel(job_id: JobId, url: UrlOption = None) -> None:
    """Cancel a job (the service is told to stop it too).

    A federated job: every target's job still active is cancelled.
    """
    with connect(url) as client:
        job = client.post(f"/jobs/{segment(job_id)}/cancel")
    summary = job.get("summary")
    typer.echo(f"job {job['id']} is {job['status']}" + (f" ({summary})" if summary else ""))


@app.command("retry")
def retry(job_id: JobId, json: JsonOption = False, url: UrlOption = None) -> None:
    """Run a failed or cancelled job again, as a new job.

    The new job has the same input files and settings; its id is printed. A federated
    job: each target that failed or was cancelled runs again (a new job per target) and
    the federated job follows them; one target's job: that target alone runs again.
    """
    with connect(url) as client:
        job = client.post(f"/jobs/{segment(job_id)}/retry")
        retried = None if job.get("children") is None else retried_rows(client, job["children"])
    if json:
        print_json(job)
        return
    if retried is None:
        part = f"; a target of federated job {job['parent_id']}" if job.get("parent_id") else ""
        typer.echo(f"job {job['id']} is {job['status']} (a retry of {job_id}{part})")
        return
    typer.echo(f"job {job['id']} is {job['status']} again: retried {len(retried)} target(s)")
    for row in retried:
        typer.echo(f"  {row['id']}  {row['target']} (a retry of {row['retry_of']})")


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
    if job.get("federated"):
        return _no_merged_results(job, status)
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


def _no_merged_results(job: Mapping[str, Any], status: str) -> str:
    """Why a federated job has no results (its comparison and merged files) yet."""
    summary = str(job.get("summary") or "")
    told = f": {summary}" if summary else ""
    if status in ("pending", "queued", "running"):
        return f"it is still {status} ({_number(job.get('progress_percentage')):g} %){told}"
    if status == "cancelling":
        return f"it is being cancelled{told}"
    if status != "completed":
        return f"it {'was cancelled' if status == 'cancelled' else status}{told}"
    if job.get("files_expired"):
        return "it completed, but its result files have been deleted (retention)"
    done = [
        str(child.get("id"))
        for child in job.get("children") or []
        if isinstance(child, dict)
        and child.get("status") == "completed"
        and not child.get("replaced")
    ]
    targets = f"; download a target's own results with `imputehub jobs download {done[0]}`"
    if job.get("mode") == "qc_only":
        why = "quality-control targets are not compared or merged"
    else:
        why = "the comparison and merge need two completed targets"
    return f"it completed{told}, and {why}" + (targets if done else "")


def federation(job: Mapping[str, Any]) -> str:
    """A job's part in a federated job, for the list: `parent`, `target of ID` or empty."""
    if job.get("federated"):
        return "parent"
    parent = job.get("parent_id")
    return f"target of {parent}" if parent else ""


def child_rows(client: HubClient, children: Sequence[Any]) -> list[dict[str, Any]]:
    """A federated job's children as table rows: each target named by its slugs, a retried
    attempt marked `(retried)` (its retry counts instead)."""
    names = _Slugs(client)
    rows: list[dict[str, Any]] = []
    for child in children:
        if not isinstance(child, dict):
            continue
        status = str(child.get("status"))
        rows.append(
            {
                "id": child.get("id"),
                "target": names.target(child),
                "status": f"{status} (retried)" if child.get("replaced") else status,
                "progress_percentage": child.get("progress_percentage"),
                "retry_of": child.get("retry_of"),
                "error_message": child.get("error_message"),
            }
        )
    return rows


def retried_rows(client: HubClient, children: Sequence[Any]) -> list[dict[str, Any]]:
    """The targets' jobs a retry of their federated job just made: the latest attempts
    that retry another and are active (all its targets had ended before the retry)."""
    fresh = [
        child
        for child in children
        if isinstance(child, dict)
        and child.get("retry_of")
        and not child.get("replaced")
        and child.get("status") in ACTIVE
    ]
    return child_rows(client, fresh)


class _Slugs:
    """Services' and panels' slugs by id, each looked up once (ids when hidden)."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.known: dict[tuple[str, str], str] = {}

    def target(self, child: Mapping[str, Any]) -> str:
        """`service / panel [/ population]`."""
        parts = [
            self.slug("/services", child.get("service_id")),
            self.slug("/reference-panels", child.get("reference_panel_id")),
            str(child.get("population") or ""),
        ]
        return " / ".join(part for part in parts if part)

    def slug(self, path: str, ref: Any) -> str:
        if not isinstance(ref, str) or not ref:
            return ""
        if (path, ref) not in self.known:
            found = _look_up(self.client, path, ref)
            self.known[(path, ref)] = str((found or {}).get("slug") or ref)
        return self.known[(path, ref)]


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
