"""`imputehub files list|show|delete` against a real hub: your files and their checks."""

from __future__ import annotations

import json

from imputehub.runtime import Runtime
from tests.integration.cli.conftest import Cli
from tests.support import factories, vcf
from tests.support.api import Actor

WARNED = vcf.make_vcf(chrom="chr20")  # 'chr20' is not how hg19 names chromosome 20


async def test_list_shows_only_your_files_with_their_checks(
    runtime: Runtime, alice: Actor, bob: Actor, cli: Cli
) -> None:
    clean = await factories.make_file(runtime, alice.id, filename="clean.vcf.gz")
    warned = await factories.make_file(runtime, alice.id, WARNED, filename="warned.vcf.gz")
    await factories.make_file(runtime, bob.id, filename="bobs.vcf.gz")

    done = await cli("files", "list")
    as_json = await cli("files", "list", "--json")

    assert done.code == 0, done.err
    rows = {line.split("│")[2].strip(): line for line in done.out.splitlines() if "│" in line}
    assert set(rows) - {"Name"} == {"clean.vcf.gz", "warned.vcf.gz"}
    assert clean.id in rows["clean.vcf.gz"]
    assert "│ ok " in rows["clean.vcf.gz"]
    assert "ok, 1 warning(s)" in rows["warned.vcf.gz"]
    assert done.out.splitlines()[-1] == "2 of 2 files"
    page = json.loads(as_json.out)
    assert {item["id"] for item in page["items"]} == {clean.id, warned.id}
    assert page["total"] == 2


async def test_show_prints_the_record_and_the_checks_problems(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    stored = await factories.make_file(runtime, alice.id, WARNED, filename="warned.vcf.gz")

    done = await cli("files", "show", stored.id)

    assert done.code == 0, done.err
    lines = [line.rstrip() for line in done.out.splitlines()]
    assert f"id        {stored.id}" in lines
    assert "name      warned.vcf.gz" in lines
    assert f"sha256    {stored.sha256}" in lines
    assert "VCF check: ok, 1 warning(s)" in lines
    assert any(line.split() == ["samples", "20"] for line in lines), done.out
    assert (
        "  warning: Your upload data contains chromosome 'chr20'. This is not a valid hg19 "
        "encoding."
    ) in lines


async def test_show_json_carries_the_report(runtime: Runtime, alice: Actor, cli: Cli) -> None:
    stored = await factories.make_file(runtime, alice.id, WARNED)

    done = await cli("files", "show", stored.id, "--json")

    assert done.code == 0, done.err
    shown = json.loads(done.out)
    assert shown["id"] == stored.id
    assert [p["severity"] for p in shown["validation"]["problems"]] == ["warning"]


async def test_delete_says_what_it_deleted_and_the_file_is_gone(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    stored = await factories.make_file(runtime, alice.id, filename="old.vcf.gz")

    done = await cli("files", "delete", stored.id)
    again = await cli("files", "show", stored.id)

    assert done.code == 0, done.err
    assert done.out == f"deleted old.vcf.gz ({stored.id}, {stored.size / 1024:.1f} KiB)\n"
    assert (again.code, again.err) == (1, f"error: file {stored.id} not found\n")


async def test_delete_of_an_active_jobs_input_is_refused_in_one_line(
    runtime: Runtime, alice: Actor, cli: Cli
) -> None:
    service = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, service)
    stored = await factories.make_file(runtime, alice.id)
    job = await factories.make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[stored]
    )

    done = await cli("files", "delete", stored.id)

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"error: file {stored.id} is an input of active job {job.id}; "
        "cancel the job or wait until it finishes\n"
    )
    assert (await cli("files", "show", stored.id)).code == 0


async def test_someone_elses_file_is_not_found(runtime: Runtime, bob: Actor, cli: Cli) -> None:
    theirs = await factories.make_file(runtime, bob.id)

    done = await cli("files", "delete", theirs.id)

    assert (done.code, done.err) == (1, f"error: file {theirs.id} not found\n")
