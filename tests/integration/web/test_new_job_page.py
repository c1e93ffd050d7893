"""The new-job page and the compatibility route it asks: what a researcher sees before
anything is submitted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.db.models import ReferencePanel, Service, StoredFile, User
from imputehub.domain.errors import NotFound
from imputehub.jobs import reuse
from imputehub.runtime import Runtime
from tests.support import databases
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.vcf import make_vcf
from tests.support.web import sign_in


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One database here: the pages call use cases whose queries are tested on both
    databases under the API (tests/integration/api)."""
    return databases.sqlite_with_schema(tmp_path)


COMPAT = "/api/v1/jobs/compatibility"
HOSTILE = "<script>alert(1)</script>"


@dataclass
class World:
    michigan: Service
    hrc: ReferencePanel
    topmed: ReferencePanel
    retired: Service
    good: StoredFile  # 25 phased samples, hg19, chromosome 20


@pytest.fixture
async def world(runtime: Runtime, alice: Actor) -> World:
    michigan = await make_service(
        runtime,
        slug="michigan",
        name="Michigan Imputation Server",
        api_type="michigan",
        location="Ann Arbor, USA",
        queue_size=7,
        max_upload_size=10_000_000,
    )
    hrc = await make_panel(
        runtime,
        michigan,
        slug="hrc",
        display_name="HRC r1.1",
        build="hg19",
        populations=["eur", "mixed"],
        sample_count=32_470,
    )
    other = await make_service(runtime, slug="topmed", name="TOPMed", supported_builds=["hg38"])
    topmed = await make_panel(
        runtime, other, slug="topmed-r3", display_name="TOPMed r3", build="hg38"
    )
    retired = await make_service(runtime, slug="retired", name="Retired Service", is_active=False)
    await make_panel(runtime, retired, slug="retired-panel", display_name="Retired Panel")
    await make_panel(runtime, michigan, slug="gone", display_name="Gone Panel", is_active=False)
    good = await make_file(runtime, alice.id, make_vcf(samples=25), filename="study.chr20.vcf.gz")
    return World(michigan=michigan, hrc=hrc, topmed=topmed, retired=retired, good=good)


def page_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="new-job-data">(.*?)</script>', html)
    assert found, html
    data: dict[str, Any] = json.loads(found.group(1))
    return data


# --- the page ---------------------------------------------------------------------------------


async def test_the_page_without_a_session_sends_the_visitor_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/jobs/new?like=abc")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/jobs/new%3Flike%3Dabc"


async def test_the_catalogue_lists_the_active_services_and_panels_with_their_facts(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    await sign_in(client, "alice")
    page = await client.get("/jobs/new")
    assert page.status_code == 200
    text = page.text
    assert "Michigan Imputation Server" in text
    assert "Ann Arbor, USA" in text
    assert "7 job(s) waiting in its queue" in text
    assert "HRC r1.1" in text
    assert "32,470 samples" in text
    assert "populations: eur, mixed" in text
    assert "TOPMed r3" in text
    assert "Retired" not in text  # an inactive service, and its panels
    assert "Gone Panel" not in text  # an inactive panel
    assert f'id="panel-{world.hrc.id}" value="{world.hrc.id}"' in text
    # My earlier uploads, to reuse.
    assert f'id="earlier-{world.good.id}"' in text
    assert "study.chr20.vcf.gz" in text
    data = page_data(text)
    [michigan] = [s for s in data["catalogue"] if s["slug"] == "michigan"]
    assert [p["populations"] for p in michigan["panels"]] == [["eur", "mixed"]]
    assert data["start"] is None
    # Scripts and styles come from files: the page's CSP forbids inline ones.
    assert 'src="/static/js/upload.js"' in text
    assert 'href="/static/css/new_job.css"' in text
    assert "style=" not in text


async def test_hostile_names_are_shown_as_text(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor
) -> None:
    service = await make_service(runtime, slug="hostile", name=HOSTILE, location=HOSTILE)
    await make_panel(runtime, service, slug="hostile-panel", display_name=HOSTILE)
    await make_file(runtime, alice.id, filename=f"{HOSTILE}.vcf.gz")
    await sign_in(client, "alice")
    page = await client.get("/jobs/new")
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # The JSON block cannot be closed early by a name in it either.
    assert page_data(page.text)["catalogue"][0]["name"] == HOSTILE


async def test_like_starts_from_my_own_past_job(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    past = await make_job(
        runtime,
        user_id=alice.id,
        service=world.michigan,
        panel=world.hrc,
        files=[world.good],
        name="chr20 study",
        phasing="beagle",
        population="eur",
        r2_filter=0.3,
        description="first run",
        status="failed",
    )
    await sign_in(client, "alice")
    page = await client.get(f"/jobs/new?like={past.id}")
    assert page.status_code == 200
    start = page_data(page.text)["start"]
    assert start["name"] == "chr20 study (again)"
    assert start["reference_panel_id"] == world.hrc.id
    assert start["input_file_ids"] == [world.good.id]
    assert start["population"] == "eur"
    assert 'value="chr20 study (again)"' in page.text
    assert f'settings of <a href="/jobs/{past.id}">an earlier job</a>' in page.text
    assert f'value="{world.hrc.id}" data-service-id="{world.michigan.id}" checked' in page.text
    assert '<option value="beagle" selected>' in page.text
    assert 'value="0.3"' in page.text
    assert ">first run</textarea>" in page.text

    qc = await client.get(f"/jobs/new?like={past.id}&mode=qc_only")
    assert page_data(qc.text)["start"]["name"] == "chr20 study (QC only)"
    assert 'id="mode-qc_only" value="qc_only" checked' in qc.text


async def test_like_of_someone_elses_job_is_not_found(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, bob: Actor, world: World
) -> None:
    bobs_file = await make_file(runtime, bob.id)
    bobs = await make_job(
        runtime, user_id=bob.id, service=world.michigan, panel=world.hrc, files=[bobs_file]
    )
    await sign_in(client, "alice")
    answer = await client.get(f"/jobs/new?like={bobs.id}")
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]
    assert "not found" in answer.text
    assert (await client.get("/jobs/new?like=no-such-job")).status_code == 404
    assert (await client.get("/jobs/new?mode=everything")).status_code == 422


async def test_like_is_for_the_jobs_owner_only_even_for_an_admin(
    runtime: Runtime, admin: Actor, alice: Actor, world: World
) -> None:
    # An admin may look at anyone's job, but a new job runs on its owner's own files.
    alices = await make_job(
        runtime, user_id=alice.id, service=world.michigan, panel=world.hrc, files=[world.good]
    )
    async with runtime.db.session() as session:
        user = await session.get(User, admin.id)
        assert user is not None
        with pytest.raises(NotFound):
            await reuse.settings_like(session, user, alices.id)


# --- POST /jobs/compatibility -------------------------------------------------------------------


def verdicts(answer: httpx.Response) -> dict[str, list[str]]:
    """panel slug -> reasons ([] when the file fits), for the answer's one file."""
    assert answer.status_code == 200, answer.text
    [fit] = answer.json()["files"]
    return {c["panel_slug"]: c["reasons"] for c in fit["candidates"] if c["fits"] or c["reasons"]}


async def test_a_file_that_fits_and_one_that_does_not_with_the_reasons(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    answer = await client.post(
        COMPAT, json={"input_file_ids": [world.good.id]}, headers=alice.headers
    )
    found = verdicts(answer)
    assert found["hrc"] == []
    assert found["topmed-r3"] == [
        "the file looks like hg19 data (from its ##contig lengths), but the job's build is hg38"
    ]
    [fit] = answer.json()["files"]
    assert fit["filename"] == "study.chr20.vcf.gz"
    assert fit["validation"]["samples"] == 25
    assert "retired-panel" not in {c["panel_slug"] for c in fit["candidates"]}

    few = await make_file(runtime, alice.id, make_vcf(samples=5, phased=False, chrom="chr20"))
    answer = await client.post(
        COMPAT,
        json={"input_file_ids": [few.id], "phasing": "no_phasing"},
        headers=alice.headers,
    )
    reasons = verdicts(answer)["hrc"]
    assert reasons == ["it has 5 sample(s). At least 20 samples must be uploaded."]
    # The naming rule comes after the sample count in the hub's checks: shown with 20+.
    renamed = await make_file(runtime, alice.id, make_vcf(samples=20, phased=False, chrom="chr20"))
    answer = await client.post(
        COMPAT,
        json={"input_file_ids": [renamed.id], "phasing": "no_phasing"},
        headers=alice.headers,
    )
    [reason] = verdicts(answer)["hrc"]
    assert "chromosome 'chr20'" in reason
    [fit] = answer.json()["files"]
    assert "bcftools annotate --rename-chrs" in fit["fixes"]["build_encoding"]


async def test_size_phasing_and_panel_chromosomes_are_reasons_too(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    tiny = await make_service(runtime, slug="tiny", name="Tiny", max_upload_size=100)
    await make_panel(runtime, tiny, slug="tiny-panel", build="hg19")
    local = await make_service(
        runtime, slug="local", name="Local", api_type="local", api_config={"phasing": ["beagle"]}
    )
    await make_panel(runtime, local, slug="chr22-only", build="hg19", contigs=["22"])
    await make_panel(runtime, local, slug="chr20-too", build="hg19", contigs=["chr20", "chr21"])
    unphased = await make_file(runtime, alice.id, make_vcf(samples=25, phased=False))
    answer = await client.post(
        COMPAT,
        json={"input_file_ids": [unphased.id], "phasing": "no_phasing"},
        headers=alice.headers,
    )
    found = verdicts(answer)
    assert any("larger than service 'tiny' accepts" in r for r in found["tiny-panel"])
    assert "Your input data is unphased. Please select an algorithm for phasing." in found["hrc"]
    assert (
        "service 'local' offers no phasing 'no_phasing' (it offers: beagle)" in found["chr22-only"]
    )
    assert "the panel covers chromosome(s) 22; the file has 20" in found["chr22-only"]
    assert not any("covers" in r for r in found["chr20-too"])

    qc = await client.post(
        COMPAT,
        json={"input_file_ids": [unphased.id], "phasing": "beagle", "mode": "qc_only"},
        headers=alice.headers,
    )
    assert verdicts(qc)["chr20-too"] == []


async def test_the_route_refuses_strangers_malformed_bodies_and_other_users_files(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, bob: Actor, world: World
) -> None:
    body = {"input_file_ids": [world.good.id]}
    assert (await client.post(COMPAT, json=body)).status_code == 401
    for malformed in (
        {},
        {"input_file_ids": []},
        {"input_file_ids": "abc"},
        {"input_file_ids": [world.good.id], "phasing": "magic"},
        {"input_file_ids": [world.good.id], "mode": "everything"},
        {"input_file_ids": [world.good.id], "extra": 1},
    ):
        answer = await client.post(COMPAT, json=malformed, headers=alice.headers)
        assert answer.status_code == 422, malformed
        assert answer.headers["content-type"].startswith("application/problem+json")
    answer = await client.post(COMPAT, json=body, headers=bob.headers)
    assert answer.status_code == 422
    assert answer.json()["detail"] == f"file {world.good.id} not found"
    assert answer.json()["field"] == "input_file_ids"
    twice = await client.post(
        COMPAT, json={"input_file_ids": [world.good.id] * 2}, headers=alice.headers
    )
    assert twice.status_code == 422
    assert "listed twice" in twice.json()["detail"]


async def test_the_pages_reach_the_route_with_the_session_and_its_csrf_token(
    runtime: Runtime, client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    hostile = await make_file(runtime, alice.id, filename=f"{HOSTILE}.vcf.gz")
    csrf = await sign_in(client, "alice")
    path = "/app/api/v1/jobs/compatibility"
    body = {"input_file_ids": [hostile.id]}
    refused = await client.post(path, json=body)
    assert refused.status_code == 403
    answer = await client.post(path, json=body, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    # JSON carries the name as it is; the page's script writes it with textContent.
    assert answer.json()["files"][0]["filename"] == f"{HOSTILE}.vcf.gz"
    assert answer.headers["content-type"] == "application/json"
