"""Federated jobs from the command line, against a real hub: `submit --target ... --target
...` makes one job sent to several services and panels; `jobs show|list|watch|retry|cancel|
download` tell of it as a user needs (no worker runs here: the hub holds the jobs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, StoredFile, Upload
from imputehub.domain.jobs import JobStatus
from imputehub.jobs import federated, lifecycle
from imputehub.runtime import Runtime
from tests.integration.cli.conftest import Cli
from tests.support import factories
from tests.support.vcf import write_vcf

TARGETS = ("--target", "mich:mich-panel:eur", "--target", "topmed:topmed-panel")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_targets_per_job": 3})


@pytest.fixture
async def services(runtime: Runtime) -> dict[str, str]:
    """Two services, a panel each (hg19; populations afr, eur, mixed); their ids by slug."""
    ids: dict[str, str] = {}
    for slug in ("mich", "topmed"):
        service = await factories.make_service(runtime, slug=slug)
        await factories.make_panel(runtime, service, slug=f"{slug}-panel", build="hg19")
        ids[slug] = service.id
    return ids


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return write_vcf(tmp_path / "study.chr20.vcf.gz")


def submit(study: Path, *more: str) -> tuple[str, ...]:
    return ("submit", str(study), "--build", "hg19", "--phasing", "eagle", *more)


async def count(runtime: Runtime, model: type[Job | StoredFile | Upload]) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def field(out: str, label: str) -> str:
    """The value of one `label  value` row of a printed record."""
    for line in out.splitlines():
        if line.startswith(label + " "):
            return line[len(label) :].strip()
    raise AssertionError(f"no {label!r} row in:\n{out}")


def rows(out: str) -> list[list[str]]:
    """The cells of each body row of a printed table (box-drawn by rich; not the header)."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]


async def submitted(cli: Cli, study: Path, *more: str) -> str:
    """Submit a federated job to both targets; its id."""
    done = await cli(*submit(study, *TARGETS, *more))
    assert done.code == 0, done.err
    found = re.match(r"submitted federated job (\S+) \(pending\) with 2 targets:\n", done.out)
    assert found is not None, done.out
    return found.group(1)


async def end_children(runtime: Runtime, parent_id: str, *statuses: JobStatus) -> None:
    """The targets' jobs end so, in order; the parent follows (as the worker makes it)."""
    async with runtime.db.session() as session:
        parent = await session.get(Job, parent_id)
        assert parent is not None
        children = await federated.children_of(session, parent_id)
        for child, status in zip(children, statuses, strict=True):
            if status == JobStatus.FAILED:
                child.error_message = "panel not installed"
            else:  # a job completes once it ran
                now = runtime.clock.now()
                lifecycle.set_status(session, child, JobStatus.RUNNING, now=now, message="test")
            lifecycle.set_status(session, child, status, now=runtime.clock.now(), message="test")
        await session.flush()
        await federated.follow(session, parent, now=runtime.clock.now())


async def test_two_targets_make_one_job_whose_show_lists_both(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    done = await cli(*submit(study, *TARGETS, "--description", "two panels at once"))

    assert done.code == 0, done.err
    lines = done.out.splitlines()
    parent_id = lines[0].split()[3]
    assert lines[0] == f"submitted federated job {parent_id} (pending) with 2 targets:"
    assert [line.split(maxsplit=1)[1] for line in lines[1:]] == [
        "mich / mich-panel / eur",
        "topmed / topmed-panel",
    ]
    assert "the hub would accept target 1 (mich / mich-panel / eur)" in done.err
    # One upload, three jobs: the parent and one per target.
    assert [await count(runtime, model) for model in (Job, StoredFile)] == [3, 1]

    shown = await cli("jobs", "show", parent_id)

    assert shown.code == 0, shown.err
    assert field(shown.out, "targets") == "0 of 2 completed, 2 still active"
    assert field(shown.out, "description") == "two panels at once"
    table = rows(shown.out)
    assert [row[1:] for row in table] == [
        ["mich / mich-panel / eur", "pending", "0"],
        ["topmed / topmed-panel", "pending", "0"],
    ]
    child = await cli("jobs", "show", table[0][0])
    assert field(child.out, "part of federated job") == parent_id

    as_json = json.loads((await cli("jobs", "show", parent_id, "--json")).out)
    assert (as_json["federated"], len(as_json["children"])) == (True, 2)


async def test_a_bad_target_is_named_on_its_own_line_and_nothing_is_created(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    done = await cli(
        *submit(
            study,
            "--target",
            "mich:mich-panel",
            "--target",
            "nowhere:x-panel",
            "--target",
            "mich:topmed-panel",
        )
    )

    assert (done.code, done.out) == (1, "")
    assert "error: the job was not created (nothing was uploaded): 2 of 3 targets refused:" in (
        done.err
    )
    lines = done.err.splitlines()
    assert "  target 2 (nowhere / x-panel): unknown service 'nowhere'" in lines
    assert any(
        line.startswith("  target 3 (mich / topmed-panel): ") and "another service" in line
        for line in lines
    )
    assert [await count(runtime, model) for model in (Job, StoredFile, Upload)] == [0, 0, 0]


async def test_the_same_target_by_two_names_is_refused_before_any_upload(
    runtime: Runtime, cli: Cli, services: dict[str, str], study: Path
) -> None:
    service_id = services["mich"]

    done = await cli(
        *submit(study, "--target", "mich:mich-panel", "--target", f"{service_id}:mich-panel")
    )

    assert done.code == 1
    assert (
        f"  target 2 ({service_id} / mich-panel): the same service, panel and population "
        "as target 1" in done.err.splitlines()
    )
    assert [await count(runtime, model) for model in (Job, StoredFile)] == [0, 0]


@pytest.mark.parametrize(
    ("more", "words"),
    [
        (("--service", "mich"), "'--target': cannot be combined with --service"),
        (("--population", "eur"), "'--target': cannot be combined with --population"),
        (("--target", "mich"), "'mich' names no panel"),
        (("--target", "mich::eur"), "'mich::eur' has an empty panel"),
        (("--target", "a:b:c:d"), "'a:b:c:d' has 3 colons"),
        (("--target", "mich:mich-panel:eur"), "is given twice (targets 1 and 2)"),
    ],
)
async def test_a_target_given_wrongly_is_a_usage_error(
    runtime: Runtime,
    cli: Cli,
    services: object,
    study: Path,
    more: tuple[str, ...],
    words: str,
) -> None:
    done = await cli(*submit(study, "--target", "mich:mich-panel:eur", *more))

    assert done.code == 2
    assert words in " ".join(done.err.split())
    assert await count(runtime, Job) == 0


async def test_one_target_is_an_ordinary_job(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    done = await cli(*submit(study, "--target", "mich:mich-panel:eur"))

    assert done.code == 0, done.err
    job_id = re.fullmatch(r"submitted job (\S+) \(pending\)\n", done.out).group(1)  # type: ignore[union-attr]
    shown = json.loads((await cli("jobs", "show", job_id, "--json")).out)
    assert (shown["federated"], shown["population"], shown["children"]) == (False, "eur", None)


async def test_the_list_shows_the_parent_and_its_children_on_request(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    parent_id = await submitted(cli, study)

    top = await cli("jobs", "list")
    assert top.code == 0, top.err
    assert [(row[0], row[-2]) for row in rows(top.out)] == [(parent_id, "parent")]
    assert top.out.splitlines()[-1] == "1 of 1 jobs"

    flat = await cli("jobs", "list", "--children")
    marks = sorted(row[-2] for row in rows(flat.out))
    assert marks == ["parent", f"target of {parent_id}", f"target of {parent_id}"]

    only = await cli("jobs", "list", "--parent", parent_id)
    assert only.out.splitlines()[-1] == "2 of 2 jobs"


async def test_watch_retry_and_download_of_a_parent_whose_targets_failed(
    runtime: Runtime, clock: FakeClock, cli: Cli, services: object, study: Path, tmp_path: Path
) -> None:
    parent_id = await submitted(cli, study)

    early = await cli("jobs", "download", parent_id, "-o", str(tmp_path / "out"))
    assert early.code == 1
    assert early.err == (
        f"error: job {parent_id} has no results: it is still pending (0 %): "
        "0 of 2 completed, 2 still active\n"
    )

    await end_children(runtime, parent_id, JobStatus.FAILED, JobStatus.FAILED)
    watched = await cli("jobs", "watch", parent_id)
    assert watched.code == 1
    assert watched.err == "job failed: 0 of 2 completed, 2 failed\n"
    late = await cli("jobs", "download", parent_id)
    assert late.err.endswith("has no results: it failed: 0 of 2 completed, 2 failed\n")

    clock.advance(60)  # the retries are younger than the attempts they replace
    retried = await cli("jobs", "retry", parent_id)

    assert retried.code == 0, retried.err
    lines = retried.out.splitlines()
    assert re.fullmatch(rf"job {parent_id} is \w+ again: retried 2 target\(s\)", lines[0])
    assert [line.split(maxsplit=1)[1].split(" (a retry of")[0] for line in lines[1:]] == [
        "mich / mich-panel / eur",
        "topmed / topmed-panel",
    ]
    shown = await cli("jobs", "show", parent_id)
    statuses = [row[2] for row in rows(shown.out)]
    assert statuses == ["failed (retried)", "pending", "failed (retried)", "pending"]


async def test_cancel_of_a_parent_says_how_its_targets_stand(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    parent_id = await submitted(cli, study)

    done = await cli("jobs", "cancel", parent_id)

    assert done.code == 0, done.err
    assert re.fullmatch(rf"job {parent_id} is cancel\w+ \(0 of 2 completed, .+\)\n", done.out)


async def test_a_parent_with_one_completed_target_has_no_merged_results_and_says_why(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    parent_id = await submitted(cli, study)
    await end_children(runtime, parent_id, JobStatus.COMPLETED, JobStatus.FAILED)
    first = json.loads((await cli("jobs", "show", parent_id, "--json")).out)["children"][0]

    watched = await cli("jobs", "watch", parent_id)
    assert watched.code == 0, watched.err
    assert watched.out.splitlines()[-1] == "job completed: 1 of 2 completed, 1 failed"

    done = await cli("jobs", "download", parent_id)

    assert done.code == 1
    assert done.err == (
        f"error: job {parent_id} has no results: it completed: 1 of 2 completed, 1 failed, "
        "and the comparison and merge need two completed targets; download a target's own "
        f"results with `imputehub jobs download {first['id']}`\n"
    )


async def test_more_targets_than_the_hub_takes_are_refused_before_any_upload(
    runtime: Runtime, cli: Cli, services: object, study: Path
) -> None:
    done = await cli(
        *submit(
            study,
            "--target",
            "mich:mich-panel",
            "--target",
            "mich:mich-panel:eur",
            "--target",
            "mich:mich-panel:afr",
            "--target",
            "topmed:topmed-panel",
        )
    )

    assert (done.code, done.out) == (1, "")
    assert done.err.splitlines()[-1] == (
        "error: a federated job may have at most 3 targets; this one has 4"
    )
    assert [await count(runtime, model) for model in (Job, StoredFile, Upload)] == [0, 0, 0]
