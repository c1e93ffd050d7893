"""Federated jobs in the pages: one upload sent to several services and panels.

Created as the new-job page's script does (JSON with `targets` through the pages' own door),
then what the researcher sees: the federated job as one row in the list, its page with
each target's job, the summary and the comparison report, each target's page pointing back,
and nobody else seeing any of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from imputehub.db.models import Job, ReferencePanel, Service, StoredFile
from imputehub.runtime import Runtime
from tests.support import databases
from tests.support.api import Actor
from tests.support.factories import make_file, make_panel, make_service
from tests.support.web import sign_in

JOBS = "/app/api/v1/jobs"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One database here: the use cases' queries are tested on both under the API."""
    return databases.sqlite_with_schema(tmp_path)


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser (its own cookie jar)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


@dataclass
class World:
    michigan: Service
    hrc: ReferencePanel
    afgd: Service
    afgd_panel: ReferencePanel
    upload: StoredFile


@pytest.fixture
async def world(runtime: Runtime, alice: Actor) -> World:
    michigan = await make_service(runtime, slug="michigan", name="Michigan Imputation Server")
    hrc = await make_panel(
        runtime,
        michigan,
        slug="hrc",
        display_name="HRC r1.1",
        build="hg19",
        populations=["eur", "mixed"],
    )
    afgd = await make_service(runtime, slug="afgd", name="African Genome Diversity")
    afgd_panel = await make_panel(
        runtime, afgd, slug="afgd-panel", display_name="AGD 2024", build="hg19"
    )
    upload = await make_file(runtime, alice.id, filename="cohort.chr20.vcf.gz")
    return World(michigan=michigan, hrc=hrc, afgd=afgd, afgd_panel=afgd_panel, upload=upload)


def page_body(world: World, *targets: dict[str, Any]) -> dict[str, Any]:
    """What the new-job page's script posts with "Send to several services" ticked."""
    return {
        "name": "cohort A",
        "build": "hg19",
        "phasing": "eagle",
        "mode": "imputation",
        "input_file_ids": [world.upload.id],
        "targets": list(targets)
        or [
            {
                "service_id": world.michigan.id,
                "reference_panel_id": world.hrc.id,
                "population": "eur",
            },
            {"service_id": world.afgd.id, "reference_panel_id": world.afgd_panel.id},
        ],
    }


async def submit(client: httpx.AsyncClient, csrf: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(JOBS, json=body, headers={"X-CSRF-Token": csrf})


async def federated_job(client: httpx.AsyncClient, csrf: str, world: World) -> dict[str, Any]:
    answer = await submit(client, csrf, page_body(world))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def set_job(runtime: Runtime, job_id: str, **fields: Any) -> None:
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        for key, value in fields.items():
            setattr(job, key, value)


async def job_count(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


def page_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="new-job-data">(.*?)</script>', html)
    assert found, html
    data: dict[str, Any] = json.loads(found.group(1))
    return data


async def test_the_new_job_page_offers_several_targets(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    await sign_in(client, "alice")
    page = await client.get("/jobs/new")
    assert page.status_code == 200
    assert 'id="several-targets"' in page.text
    assert "Send to several services or panels (a federated job)" in page.text
    assert "Up to 5 targets." in page.text
    assert 'id="add-target"' in page.text
    assert 'id="error-targets"' in page.text
    # One target is the page as it was: the list of targets waits, unticked.
    assert re.search(r'id="targets-section"[^>]*hidden', page.text)
    assert page_data(page.text)["max_targets"] == 5


async def test_a_federated_job_from_the_page_shows_its_targets(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, world: World
) -> None:
    csrf = await sign_in(client, "alice")
    parent = await federated_job(client, csrf, world)
    children = parent["children"]
    assert len(children) == 2

    page = await client.get(f"/jobs/{parent['id']}")
    assert page.status_code == 200
    text = page.text
    assert "cohort A" in text
    assert "federated · 2 targets" in text
    assert "0 of 2 completed, 2 still active" in text
    for child in children:
        assert f'<a href="/jobs/{child["id"]}">' in text
    assert "Michigan Imputation Server · HRC r1.1" in text
    assert "population eur" in text
    assert "African Genome Diversity · AGD 2024" in text
    assert "cohort A [michigan / hrc]" in text
    assert "Cancel all targets" in text
    assert "Run again as QC only" not in text  # a federated job runs again per target
    assert 'data-live="children"' in text  # refreshed with the page's live regions

    # The list: the federated job is one row; its targets are not jobs of their own there.
    listed = await client.get("/jobs")
    assert listed.text.count('<tr data-job-id="') == 1
    assert "federated · 2 targets" in listed.text
    assert "1 job" in listed.text
    assert "cohort A [michigan / hrc]" not in listed.text

    # The dashboard too: one active row for the federated job.
    home = await client.get("/")
    active = home.text.split('id="active-jobs"', 1)[1].split("</table>", 1)[0]
    assert active.count('<tr data-job-id="') == 1
    assert f'<tr data-job-id="{parent["id"]}"' in active
    assert "federated · 2 targets" in active
    assert "[michigan / hrc]" not in active


async def test_a_targets_page_links_its_federated_job(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    csrf = await sign_in(client, "alice")
    parent = await federated_job(client, csrf, world)
    child = parent["children"][0]
    page = await client.get(f"/jobs/{child['id']}")
    assert page.status_code == 200
    assert f'Part of federated job <a href="/jobs/{parent["id"]}">cohort A</a>' in page.text
    assert "Michigan Imputation Server" in page.text
    # A target is deleted with its federated job, not on its own.
    assert "Delete job" not in page.text
    assert "delete <a href" in page.text


async def test_another_user_finds_neither_the_job_nor_its_targets(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    bob: Actor,
    world: World,
) -> None:
    csrf = await sign_in(client, "alice")
    parent = await federated_job(client, csrf, world)
    await sign_in(other_client, "bob")
    paths = [
        f"/jobs/{parent['id']}",
        f"/jobs/{parent['id']}/comparison",
        f"/jobs/new?like={parent['id']}",
        *(f"/jobs/{child['id']}" for child in parent["children"]),
    ]
    for path in paths:
        answer = await other_client.get(path)
        assert answer.status_code == 404, path
        assert "cohort A" not in answer.text
    listed = await other_client.get("/jobs")
    assert "cohort A" not in listed.text


async def test_a_refusal_names_each_bad_target_and_creates_nothing(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, world: World
) -> None:
    csrf = await sign_in(client, "alice")
    before = await job_count(runtime)
    answer = await submit(
        client,
        csrf,
        page_body(
            world,
            {"service_id": world.michigan.id, "reference_panel_id": world.hrc.id},
            {"service_id": world.michigan.id, "reference_panel_id": world.afgd_panel.id},
        ),
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["field"] == "targets"
    [bad] = problem["targets"]
    # The page's script shows `message` next to the target at `index` (from 0).
    assert bad["index"] == 1
    assert "belongs to another service" in bad["message"]
    assert "target 2 (" in problem["detail"]
    assert await job_count(runtime) == before
    listed = await client.get("/jobs")
    assert "You have no jobs yet" in listed.text


async def test_results_comparison_failed_target_and_retry(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, world: World
) -> None:
    csrf = await sign_in(client, "alice")
    parent = await federated_job(client, csrf, world)
    first, second = (child["id"] for child in parent["children"])
    await set_job(runtime, first, status="completed", progress=100.0)
    await set_job(
        runtime, second, status="failed", progress=40.0, error_message="<b>chunk 3 failed</b>"
    )
    await set_job(runtime, parent["id"], status="completed", progress=100.0)
    report = b"<!doctype html><html><head><title>Federated job comparison</title></head></html>"
    comparison = await make_file(
        runtime,
        alice.id,
        report,
        kind="result",
        job_id=parent["id"],
        filename="comparison.html",
    )
    await make_file(
        runtime, alice.id, b"# x\n", kind="result", job_id=parent["id"], filename="comparison.tsv"
    )

    page = await client.get(f"/jobs/{parent['id']}")
    text = page.text
    assert "1 of 2 completed, 1 failed" in text
    assert "&lt;b&gt;chunk 3 failed&lt;/b&gt;" in text  # the target's reason, as text
    assert f'href="/jobs/{parent["id"]}/comparison"' in text
    assert f'href="/app/api/v1/files/{comparison.id}/content" download' in text
    assert "comparison.tsv" in text
    assert "Retry the failed targets" in text

    # The report opens in the browser, in a sandbox; the download stays a download.
    opened = await client.get(f"/jobs/{parent['id']}/comparison")
    assert opened.status_code == 200
    assert opened.headers["content-type"].startswith("text/html")
    assert "content-disposition" not in opened.headers
    assert "sandbox" in opened.headers["content-security-policy"]
    assert opened.content == report
    job_page = await client.get(f"/jobs/{first}")
    assert 'href="/jobs/' + first + '/comparison"' not in job_page.text
    assert (await client.get(f"/jobs/{first}/comparison")).status_code == 404

    # Retry from the federated job's page: the failed target gets a new job in its place.
    answer = await client.post(f"/jobs/{parent['id']}/retry", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/jobs/{parent['id']}?done=retried_targets"
    after = await client.get(answer.headers["location"])
    assert "The failed and cancelled targets were retried" in after.text
    assert after.text.count('<span class="tag">retried</span>') == 1
    assert re.search(r'<tr data-job-id="' + second + '" class="replaced">', after.text)
    assert after.text.count("<tr data-job-id=") == 3
    assert "1 of 2 completed, 1 still active" in after.text

    # The old attempt's page says it was retried, and offers no second retry.
    old = await client.get(f"/jobs/{second}")
    assert "This attempt was retried" in old.text
    assert 'id="retry-job"' not in old.text


async def test_cancel_from_the_federated_jobs_page_cancels_every_target(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, world: World
) -> None:
    csrf = await sign_in(client, "alice")
    parent = await federated_job(client, csrf, world)
    answer = await client.post(f"/jobs/{parent['id']}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 303
    after = await client.get(answer.headers["location"])
    assert 'id="job-status">cancelled<' in after.text
    assert "0 of 2 completed, 2 cancelled" in after.text
    for child in parent["children"]:
        async with runtime.db.session() as session:
            found = await session.get(Job, child["id"])
            assert found is not None
            assert found.status == "cancelled"


async def test_new_job_like_a_federated_job_starts_with_all_its_targets(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    csrf = await sign_in(client, "alice")
    parent = await federated_job(client, csrf, world)
    page = await client.get(f"/jobs/new?like={parent['id']}")
    assert page.status_code == 200
    start = page_data(page.text)["start"]
    assert start["name"] == "cohort A (again)"
    assert start["input_file_ids"] == [world.upload.id]
    assert [(t["reference_panel_id"], t["population"]) for t in start["targets"]] == [
        (world.hrc.id, "eur"),
        (world.afgd_panel.id, None),
    ]
    assert re.search(r'id="several-targets"[^>]*checked', page.text)
    assert not re.search(r'id="targets-section"[^>]*hidden', page.text)
