"""The end-to-end self-test of a service over REST: started by an admin, run by the worker
against the fake service, reported with its steps, timings, result check and verdict."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, ReferencePanel, Service
from imputehub.operations import self_test, self_test_report
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive
from tests.support import factories
from tests.support.api import Actor
from tests.support.fake_connector import FakeConnector
from tests.support.panels import panel_text
from tests.support.vcf import compress, make_vcf

PLATFORM = "platform-token-of-the-hub"
GOOD_RESULTS = {
    "chr20.dose.vcf.gz": make_vcf(samples=50, variants=40, fmt="GT:DS"),
    "chr20.info.gz": b"SNP\tREF\tALT\tRsq\n20:60343\tG\tA\t0.91\n",
}


@pytest.fixture
def fake(tmp_path: Path) -> FakeConnector:
    return FakeConnector(tmp_path / "fake.json")


@pytest.fixture
async def runtime(
    settings: Settings, clock: FakeClock, fake: FakeConnector
) -> AsyncIterator[Runtime]:
    rt = build_runtime(settings, clock=clock, connectors={"michigan": fake})
    yield rt
    await rt.close()


async def a_service(runtime: Runtime, **fields: Any) -> Service:
    values: dict[str, Any] = {
        "name": "Michigan Imputation Server",
        "credential_encrypted": runtime.vault.encrypt(PLATFORM),
    }
    return await factories.make_service(runtime, **{**values, **fields})


async def a_panel(runtime: Runtime, service: Service, **fields: Any) -> ReferencePanel:
    return await factories.make_panel(runtime, service, **{"contigs": ["20"], **fields})


def path(service: Service, tail: str = "") -> str:
    return f"/api/v1/services/{service.slug}/self-test{tail}"


async def start(client: httpx.AsyncClient, actor: Actor, service: Service, **body: Any) -> Any:
    answer = await client.post(path(service), json=body or None, headers=actor.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def count_jobs(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


async def test_a_self_test_runs_with_the_platform_credential_and_passes(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    service = await a_service(runtime)
    panel = await a_panel(runtime, service, slug="hrc")
    # The admin's own credential must not be the one the self-test uses.
    await factories.make_user_credential(runtime, admin.id, service, "admins-own-token")
    fake.configure(results=GOOD_RESULTS)

    started = await start(client, admin, service)
    assert started["verdict"] == "running"
    assert started["status"] == "pending"
    assert started["panel"] == "hrc"
    job_id = started["job_id"]

    await drive(runtime, Worker(runtime), clock, job_id)
    answer = await client.get(path(service, f"/{job_id}"), headers=admin.headers)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["verdict"] == "passed", report
    assert report["status"] == "completed"
    seen = fake.job(job_id)
    assert seen is not None
    assert seen["credential"] == PLATFORM
    assert seen["panel_id"] == panel.panel_id
    assert seen["build"] == "hg19"
    assert [item["name"] for item in seen["inputs"]] == ["testdata.20.hg19.1000.vcf.gz"]
    names = [step["name"] for step in report["steps"]]
    assert names == ["created", "submitted", "queued", "running", "fetching", "completed"]
    times = [step["seconds_from_start"] for step in report["steps"]]
    assert all(t is not None for t in times)
    assert times == sorted(times)
    assert times[-1] > 0
    assert report["total_seconds"] == times[-1]
    assert report["steps"][1]["seconds_from_previous"] == times[1] - times[0]
    results = report["results"]
    assert results["count"] == 2
    assert results["total_bytes"] == sum(len(data) for data in GOOD_RESULTS.values())
    by_name = {item["filename"]: item for item in results["files"]}
    assert by_name["chr20.dose.vcf.gz"] == {
        "filename": "chr20.dose.vcf.gz",
        "size": len(GOOD_RESULTS["chr20.dose.vcf.gz"]),
        "vcf": True,
        "ok": True,
        "problem": None,
    }
    assert by_name["chr20.info.gz"]["vcf"] is False


async def test_a_self_test_may_use_a_file_of_the_admins_own(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)
    fake.configure(results=GOOD_RESULTS)
    mine = await factories.make_file(
        runtime, admin.id, make_vcf(samples=25), filename="real.vcf.gz"
    )
    theirs = await factories.make_file(runtime, alice.id, make_vcf(samples=25))
    refused = await client.post(
        path(service), json={"input_file": theirs.id}, headers=admin.headers
    )
    assert refused.status_code == 422  # not the admin's own file: job creation refuses it
    assert await count_jobs(runtime) == 0

    started = await start(client, admin, service, input_file=mine.id)
    await drive(runtime, Worker(runtime), clock, started["job_id"])
    seen = fake.job(started["job_id"])
    assert seen is not None
    assert [item["name"] for item in seen["inputs"]] == ["real.vcf.gz"]
    report = (
        await client.get(path(service, f"/{started['job_id']}"), headers=admin.headers)
    ).json()
    assert report["verdict"] == "passed"


async def test_the_job_is_the_admins_and_marked_as_a_self_test(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)

    started = await start(client, admin, service)

    job = (await client.get(f"/api/v1/jobs/{started['job_id']}", headers=admin.headers)).json()
    assert job["name"] == "self-test of Michigan Imputation Server"
    assert "self-test" in job["description"]
    assert "platform credential" in job["description"]
    listed = (await client.get(path(service), headers=admin.headers)).json()
    assert [item["job_id"] for item in listed] == [started["job_id"]]
    audit = await client.get(
        "/api/v1/admin/audit-log",
        params={"action": "service_self_test_started"},
        headers=admin.headers,
    )
    assert [entry["target_id"] for entry in audit.json()["items"]] == [started["job_id"]]


async def test_a_job_the_service_fails_gives_verdict_failed_with_its_error(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)
    fake.configure(outcome="failed", failure_message="No chunks passed the QC step.")

    job_id = (await start(client, admin, service))["job_id"]
    await drive(runtime, Worker(runtime), clock, job_id)
    report = (await client.get(path(service, f"/{job_id}"), headers=admin.headers)).json()

    assert report["verdict"] == "failed"
    assert report["status"] == "failed"
    assert "No chunks passed the QC step." in report["message"]
    assert report["error"] == "No chunks passed the QC step."
    assert report["steps"][-1]["name"] == "failed"
    assert report["steps"][-1]["at"] is not None
    assert report["results"]["count"] == 0


async def test_a_vcf_result_that_is_not_bgzipped_fails_the_check(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)
    fake.configure(results={"chr20.dose.vcf.gz": b"##fileformat=VCFv4.2\n#CHROM\tPOS\n"})

    job_id = (await start(client, admin, service))["job_id"]
    await drive(runtime, Worker(runtime), clock, job_id)
    report = (await client.get(path(service, f"/{job_id}"), headers=admin.headers)).json()

    assert report["status"] == "completed"
    assert report["verdict"] == "failed"
    assert report["results"]["files"][0]["ok"] is False
    assert "not bgzipped" in report["results"]["files"][0]["problem"]
    assert "chr20.dose.vcf.gz" in report["message"]


async def test_a_cut_short_vcf_result_fails_the_check(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)
    whole = make_vcf(samples=50, variants=40)
    fake.configure(results={"chr20.dose.vcf.gz": whole[:-28]})  # no BGZF end-of-file block

    job_id = (await start(client, admin, service))["job_id"]
    await drive(runtime, Worker(runtime), clock, job_id)
    report = (await client.get(path(service, f"/{job_id}"), headers=admin.headers)).json()

    assert report["verdict"] == "failed"
    assert "end-of-file" in report["results"]["files"][0]["problem"]


async def test_a_panel_can_be_named_and_its_build_and_contigs_are_matched(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, fake: FakeConnector
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service, slug="a-first")
    other = await a_panel(runtime, service, slug="b-topmed", build="hg38", contigs=["chr7"])

    started = await start(client, admin, service, panel="b-topmed")
    job = (await client.get(f"/api/v1/jobs/{started['job_id']}", headers=admin.headers)).json()

    assert started["panel"] == "b-topmed"
    assert job["reference_panel_id"] == other.id
    assert job["build"] == "hg38"
    files = (await client.get("/api/v1/files", headers=admin.headers)).json()["items"]
    assert [item["filename"] for item in files] == ["testdata.chr7.hg38.1000.vcf.gz"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"panel": "no-such-panel"}, 422, "unknown reference panel 'no-such-panel'"),
        ({"panel": 123}, 422, "panel"),
        ({"panel": ""}, 422, "panel"),
        ({"nonsense": "x"}, 422, "nonsense"),
    ],
)
async def test_a_malformed_start_is_refused_and_nothing_is_made(
    runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Actor,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)

    answer = await client.post(path(service), json=body, headers=admin.headers)

    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert await count_jobs(runtime) == 0
    assert (await client.get("/api/v1/files", headers=admin.headers)).json()["items"] == []


async def test_a_service_that_cannot_be_tested_says_why(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor
) -> None:
    no_credential = await a_service(runtime, slug="bare", credential_encrypted=None)
    await a_panel(runtime, no_credential)
    no_panel = await a_service(runtime, slug="empty")

    first = await client.post(path(no_credential), headers=admin.headers)
    second = await client.post(path(no_panel), headers=admin.headers)

    assert first.status_code == 422
    assert "no platform credential" in first.json()["detail"]
    assert second.status_code == 422
    assert "no active reference panel" in second.json()["detail"]
    assert await count_jobs(runtime) == 0


async def test_a_user_is_refused_every_self_test_route(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    service = await a_service(runtime)
    await a_panel(runtime, service)
    job_id = (await start(client, admin, service))["job_id"]

    answers = [
        await client.post(path(service), headers=alice.headers),
        await client.get(path(service), headers=alice.headers),
        await client.get(path(service, f"/{job_id}"), headers=alice.headers),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert await count_jobs(runtime) == 1  # the admin's only


async def test_an_unknown_service_or_job_is_not_found(
    runtime: Runtime, client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    service = await a_service(runtime)
    panel = await a_panel(runtime, service)
    # An ordinary job with a self-test's name is not a self-test.
    stored = await factories.make_file(runtime, alice.id)
    ordinary = await factories.make_job(
        runtime,
        user_id=alice.id,
        service=service,
        panel=panel,
        files=[stored],
        name="self-test of Michigan Imputation Server",
    )

    answers = [
        await client.post("/api/v1/services/nope/self-test", headers=admin.headers),
        await client.get("/api/v1/services/nope/self-test", headers=admin.headers),
        await client.get(path(service, f"/{ordinary.id}"), headers=admin.headers),
        await client.get(path(service, "/no-such-job"), headers=admin.headers),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert (await client.get(path(service), headers=admin.headers)).json() == []


# ---- the rules behind the report (plain values, no hub) --------------------------------------


@pytest.mark.parametrize(
    ("build", "contigs", "api_type", "filename"),
    [
        ("hg19", [], "michigan", "testdata.20.hg19.1000.vcf.gz"),
        ("hg38", [], "michigan", "testdata.chr20.hg38.1000.vcf.gz"),
        ("hg19", ["1", "20", "22"], "michigan", "testdata.20.hg19.1000.vcf.gz"),
        ("hg19", ["Y", "MT", "7", "8"], "michigan", "testdata.7.hg19.1000.vcf.gz"),
        # Michigan refuses the other build's naming; other services get the panel's own.
        ("hg19", ["chr20"], "michigan", "testdata.20.hg19.1000.vcf.gz"),
        ("hg19", ["chr20"], "local", "testdata.chr20.hg19.1000.vcf.gz"),
        ("hg38", ["X"], "ga4gh_wes", "testdata.X.hg38.1000.vcf.gz"),
    ],
)
def test_the_input_matches_the_panels_build_and_contigs(
    build: str, contigs: list[str], api_type: str, filename: str
) -> None:
    spec = self_test.input_spec(build, contigs, api_type=api_type)
    assert spec.filename == filename
    assert spec.samples >= 20  # Michigan's least


def a_result(name: str, *, ok: bool = True) -> self_test_report.ResultCheck:
    return self_test_report.ResultCheck(
        filename=name,
        size=10,
        vcf=self_test_report.is_vcf(name),
        ok=ok,
        problem=None if ok else "bad",
    )


@pytest.mark.parametrize(
    ("status", "results", "verdict", "words"),
    [
        ("running", [], "running", "the job is running"),
        ("failed", [], "failed", "the job failed: boom"),
        ("cancelled", [], "failed", "the job cancelled"),
        ("completed", [], "failed", "without result files"),
        ("completed", [a_result("chr20.info.gz")], "failed", "without a VCF result"),
        ("completed", [a_result("a.vcf.gz", ok=False)], "failed", "a.vcf.gz does not check out"),
        ("completed", [a_result("a.vcf.gz"), a_result("b.VCF.BGZ")], "passed", "2 VCF"),
    ],
)
def test_only_a_completed_job_with_good_vcf_results_passes(
    status: str, results: list[self_test_report.ResultCheck], verdict: str, words: str
) -> None:
    found, message = self_test_report.verdict_of(status, "boom", results)
    assert found == verdict
    assert words in message


async def test_a_local_panels_self_test_input_is_cut_from_the_panel(tmp_path: Path) -> None:
    """The engine must find every site it is given: the input's sites are the panel's own
    (one in PANEL_EVERY of its first chromosome), its genotypes the panel's first samples'."""
    panel = tmp_path / "panel.vcf.gz"
    text = panel_text(records={"20": 60, "21": 10}, samples=25, seed=5)
    panel.write_bytes(compress(text, "bgzf"))
    made = b"".join([chunk async for chunk in self_test.panel_chunks(panel)])
    lines = gzip.decompress(made).decode().splitlines()
    header = next(line for line in lines if line.startswith("#CHROM")).split("\t")
    assert header[9:] == [f"self_test_{n}" for n in range(1, self_test.PANEL_SAMPLES + 1)]
    records = [line.split("\t") for line in lines if not line.startswith("#")]
    panel_rows = {
        tuple(row[:2]): row for row in (line.split("\t") for line in text.decode().splitlines())
    }
    assert len(records) == 60 // self_test.PANEL_EVERY
    for row in records:
        assert row[0] == "20"  # the first chromosome only
        source = panel_rows[(row[0], row[1])]
        assert row[3:5] == source[3:5]
        assert row[9:] == source[9 : 9 + self_test.PANEL_SAMPLES]
