"""`imputehub jobs show|logs|watch|retry|download` against a real hub: what the user reads."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imputehub.clock import FakeClock
from imputehub.db.models import Job, ReferencePanel, Service
from imputehub.domain.jobs import JobStatus
from imputehub.jobs import lifecycle
from imputehub.runtime import Runtime
from tests.integration.cli.conftest import Cli
from tests.support import factories
from tests.support.api import Actor

STEPS = ("Input Validation", "Quality Control", "Phasing and Imputation", "Summary")


async def a_job(runtime: Runtime, user_id: str, **fields: object) -> Job:
    """A pending job on service 'mich' ("Michigan Imputation Server"), panel 'hrc'."""
    service = await factories.make_service(
        runtime, slug=f"mich-{user_id[:6]}", name="Michigan Imputation Server"
    )
    panel = await factories.make_panel(
        runtime, service, slug=f"hrc-{user_id[:6]}", display_name="HRC r1.1 2016"
    )
    stored = await factories.make_file(runtime, user_id)
    return await factories.make_job(
        runtime, user_id=user_id, service=service, panel=panel, files=[stored], **fields
    )


async def move(
    runtime: Runtime,
    job_id: str,
    status: JobStatus,
    *,
    progress: float | None = None,
    logs: list[str] | None = None,
    error: str | None = None,
) -> None:
    """The service reports on the job, as the worker's poll records it."""
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        if logs is not None:
            job.service_logs = logs
        if error is not None:
            job.error_message = error
        lifecycle.set_status(
            session, job, status, now=runtime.clock.now(), progress=progress, message="test"
        )


def field(out: str, label: str) -> str:
    """The value of one `label  value` row of a printed record."""
    for line in out.splitlines():
        if line.startswith(label + " "):
            return line[len(label) :].strip()
    raise AssertionError(f"no {label!r} row in:\n{out}")


async def test_show_names_the_service_and_panel_and_labels_its_times(
    runtime: Runtime, alice: Actor, clock: FakeClock, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    clock.advance(3)
    await move(runtime, job.id, JobStatus.QUEUED)
    await move(runtime, job.id, JobStatus.RUNNING, progress=20.0)
    clock.advance(9)
    await move(runtime, job.id, JobStatus.COMPLETED)

    done = await cli("jobs", "show", job.id)

    assert done.code == 0, done.err
    suffix = alice.id[:6]
    assert field(done.out, "service") == f"mich-{suffix} — Michigan Imputation Server"
    assert field(done.out, "reference panel") == f"hrc-{suffix} — HRC r1.1 2016"
    assert field(done.out, "run time") == "0:00:09 (started → ended)"
    assert field(done.out, "total time") == "0:00:12 (created → ended)"
    assert field(done.out, "status") == "completed"


async def test_show_of_a_running_job_counts_to_now_and_survives_a_hidden_service(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.QUEUED)
    await move(runtime, job.id, JobStatus.RUNNING, progress=35.0)
    async with runtime.db.session() as session:  # an admin retires the service meanwhile
        from imputehub.db.models import Service

        service = await session.get(Service, job.service_id)
        assert service is not None
        service.is_active = False

    done = await cli("jobs", "show", job.id)

    assert done.code == 0, done.err
    assert field(done.out, "service") == job.service_id  # the hub shows it no more: its id
    assert re.fullmatch(r"\d+:\d\d:\d\d \(started → now\)", field(done.out, "run time"))
    assert "ended" not in done.out


async def test_show_says_where_a_job_waits_and_when_the_service_deletes_results(
    runtime: Runtime, alice: Actor, bob: Actor, clock: FakeClock, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    async with runtime.db.session() as session:
        service = await session.get(Service, job.service_id)
        panel = await session.get(ReferencePanel, job.reference_panel_id)
        assert service is not None
        assert panel is not None
    # Bob's two jobs hold the platform account's two slots at the service.
    for _ in range(2):
        stored = await factories.make_file(runtime, bob.id)
        await factories.make_job(
            runtime,
            user_id=bob.id,
            service=service,
            panel=panel,
            files=[stored],
            status="queued",
            next_step="poll",
            submit_started_at=clock.now(),
            credential_source="platform",
        )

    async with runtime.db.session() as session:  # the last health check's figure
        row = await session.get(Service, job.service_id)
        assert row is not None
        row.queue_size = 41

    done = await cli("jobs", "show", job.id)

    assert done.code == 0, done.err
    assert field(done.out, "service's queue") == "41 jobs waiting (all users)"
    suffix = alice.id[:6]
    assert field(done.out, "waiting") == (
        f"for a free slot at mich-{suffix} — Michigan Imputation Server: 2 of 2 in use; 1st in line"
    )

    # Later: at the service, third in its queue; then its results have a deletion date.
    async with runtime.db.session() as session:
        row = await session.get(Job, job.id)
        assert row is not None
        row.submit_started_at = clock.now()
        row.service_queue_position = 3
        row.service_deletes_results_at = datetime(2026, 12, 12, 9, 30, tzinfo=UTC)
    done = await cli("jobs", "show", job.id)
    assert not any(line.startswith("waiting ") for line in done.out.splitlines())
    assert field(done.out, "place in the service's queue") == "3"
    assert field(done.out, "service deletes results").startswith("2026-12-12")


async def test_show_json_is_the_hubs_answer(runtime: Runtime, alice: Actor, cli: Cli) -> None:
    job = await a_job(runtime, alice.id)

    done = await cli("jobs", "show", job.id, "--json")

    assert done.code == 0, done.err
    shown = json.loads(done.out)
    assert (shown["id"], shown["status"], shown["service_id"]) == (
        job.id,
        "pending",
        job.service_id,
    )


async def test_logs_prints_the_services_step_messages_one_per_line(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    logs = [
        "Input Validation: started",
        "Quality Control: 12 variants excluded\nof 50",
        "Phasing and Imputation: 35%",
    ]
    await move(runtime, job.id, JobStatus.QUEUED, logs=logs)

    done = await cli("jobs", "logs", job.id)
    as_json = await cli("jobs", "logs", job.id, "--json")

    assert done.code == 0, done.err
    assert done.out.splitlines() == [
        "Input Validation: started",
        "Quality Control: 12 variants excluded",
        "  of 50",
        "Phasing and Imputation: 35%",
    ]
    assert json.loads(as_json.out) == {"id": job.id, "logs": logs}


async def test_logs_of_a_job_without_messages_says_so_on_stderr(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)

    done = await cli("jobs", "logs", job.id)

    assert (done.code, done.out) == (0, "")
    assert done.err == f"job {job.id}: the service has reported no step messages (yet)\n"


async def test_retry_of_a_failed_job_makes_a_new_job(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.FAILED, error="chr20: too few samples")

    done = await cli("jobs", "retry", job.id)

    assert done.code == 0, done.err
    new_id, status = re.fullmatch(
        rf"job (\S+) is (\S+) \(a retry of {job.id}\)\n", done.out
    ).groups()  # type: ignore[union-attr]
    assert (new_id != job.id, status) == (True, "pending")
    shown = json.loads((await cli("jobs", "show", new_id, "--json")).out)
    assert shown["retry_of"] == job.id


async def test_retry_json_prints_the_new_job(runtime: Runtime, alice: Actor, cli: Cli) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.CANCELLED)

    done = await cli("jobs", "retry", job.id, "--json")

    assert done.code == 0, done.err
    new = json.loads(done.out)
    assert (new["retry_of"], new["status"]) == (job.id, "pending")


async def test_a_refused_retry_is_one_error_line(runtime: Runtime, alice: Actor, cli: Cli) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.QUEUED)

    done = await cli("jobs", "retry", job.id)

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"error: only failed or cancelled jobs can be retried; job {job.id} is queued\n"
    )


@pytest.mark.parametrize("command", ["show", "logs", "watch", "retry", "download"])
async def test_an_unknown_job_is_one_error_line(command: str, alice: Actor, cli: Cli) -> None:
    done = await cli("jobs", command, "no-such-job")

    assert (done.code, done.out, done.err) == (1, "", "error: job no-such-job not found\n")


async def test_download_of_a_failed_job_fails_with_its_reason(
    runtime: Runtime, alice: Actor, cli: Cli, tmp_path: Path
) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.FAILED, error="chr20: too few samples")

    done = await cli("jobs", "download", job.id)

    assert (done.code, done.out) == (1, "")
    assert done.err == (f"error: job {job.id} has no results: it failed (chr20: too few samples)\n")
    assert not (tmp_path / job.id).exists()


async def test_download_of_a_running_job_fails_with_its_progress(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.QUEUED)
    await move(runtime, job.id, JobStatus.RUNNING, progress=42.0)

    done = await cli("jobs", "download", job.id)

    assert done.code == 1
    assert done.err == f"error: job {job.id} has no results: it is still running (42 %)\n"


async def test_download_of_a_completed_job_writes_its_checked_files(
    runtime: Runtime, alice: Actor, cli: Cli, tmp_path: Path
) -> None:
    job = await a_job(runtime, alice.id)
    content = b"SNP\tRsq\n20:60343\t0.98\n"
    await factories.make_file(
        runtime,
        alice.id,
        content,
        kind="result",
        job_id=job.id,
        filename="chr20.info",
    )
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED):
        await move(runtime, job.id, status)

    done = await cli("jobs", "download", job.id, "--output", "results")

    assert done.code == 0, done.err
    assert done.out == f"downloaded: results/chr20.info ({len(content)} B, sha256 ok)\n"
    assert (tmp_path / "results" / "chr20.info").read_bytes() == content


async def test_watch_prints_each_step_with_its_progress(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.QUEUED)
    watching = cli.start("jobs", "watch", job.id)
    await cli.printed(lambda out: "queued" in out, "the queued job")

    logs: list[str] = []
    shown: list[str] = []  # `running  30.0 %  Quality Control`: the line each step must get
    for step, progress in zip(STEPS, (12.0, 30.0, 55.0, 88.0), strict=True):
        logs = [*logs, f"{step}: started"]
        await move(runtime, job.id, JobStatus.RUNNING, progress=progress, logs=logs)
        shown.append(f"running    {progress:5.1f} %  {step}")
        await cli.printed(lambda out, line=shown[-1]: line in out, step)
    await move(runtime, job.id, JobStatus.COMPLETED)
    done = await cli.finish(watching)

    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d  queued       0\.0 %", lines[0])
    # The logs are read just after the state they go with: a step may show a line early
    # (with the progress before), never late and never out of order.
    at = [next(i for i, line in enumerate(lines) if line.endswith(want)) for want in shown]
    assert at == sorted(at), done.out
    for index, want in zip(at, shown, strict=True):
        assert re.fullmatch(r"\d\d:\d\d:\d\d  " + re.escape(want), lines[index]), done.out
    first = [next(i for i, line in enumerate(lines) if step in line) for step in STEPS]
    assert first == sorted(first), done.out
    assert lines[-2].split()[1:4] == ["completed", "100.0", "%"]
    assert lines[-1] == "job completed"


async def test_watch_of_a_failed_job_exits_1_with_the_reason(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    job = await a_job(runtime, alice.id)
    await move(runtime, job.id, JobStatus.QUEUED)
    await move(
        runtime,
        job.id,
        JobStatus.FAILED,
        logs=["Input Validation: started", "failed: no samples"],
        error="no samples",
    )

    done = await cli("jobs", "watch", job.id)

    assert done.code == 1
    assert done.out.splitlines()[-1].split()[1:] == ["failed", "0.0", "%", "Input", "Validation"]
    assert done.err == "job failed: no samples\n"
