"""The console's self-test page: run a service's end-to-end self-test, follow it, read its
report (steps and times, result check, verdict) and the service's earlier self-tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import AuditEntry, Job, Service
from imputehub.runtime import Runtime, build_runtime
from imputehub.worker.loop import Worker
from tests.integration.worker.support import drive
from tests.support import factories
from tests.support.api import Actor
from tests.support.fake_connector import FakeConnector
from tests.support.vcf import make_vcf
from tests.support.web import sign_in

PAGE = "/console/services/mich/self-test"


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
        "slug": "mich",
        "name": "Michigan Imputation Server",
        "credential_encrypted": runtime.vault.encrypt("platform-token"),
    }
    service = await factories.make_service(runtime, **{**values, **fields})
    await factories.make_panel(
        runtime, service, slug="hrc", display_name="HRC r1.1 2016", contigs=["20"]
    )
    return service


async def jobs(runtime: Runtime) -> list[Job]:
    async with runtime.db.session() as session:
        return list(await session.scalars(select(Job)))


async def run(client: httpx.AsyncClient, csrf: str, **fields: str) -> httpx.Response:
    return await client.post(PAGE, data={"csrf_token": csrf, **fields})


def job_of(location: str) -> str:
    found = re.search(r"job=([^&]+)", location)
    assert found, location
    return found.group(1)


async def test_the_page_offers_the_button_and_the_services_panels(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await a_service(runtime)

    page = await client.get(PAGE)

    assert page.status_code == 200
    assert "<h1>Self-test of Michigan Imputation Server</h1>" in page.text
    assert 'action="/console/services/mich/self-test"' in page.text
    assert f'value="{admin_csrf}"' in page.text
    assert '<label for="self-test-panel">Reference panel</label>' in page.text
    assert "HRC r1.1 2016 (hrc, hg19)" in page.text
    assert "Run the self-test</button>" in page.text
    assert "No self-test of Michigan Imputation Server yet." in page.text
    assert "imputehub services test mich" in page.text


async def test_running_it_starts_a_job_and_shows_it_as_it_runs(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str, admin: Actor
) -> None:
    await a_service(runtime)

    answer = await run(client, admin_csrf)

    assert answer.status_code == 303
    job_id = job_of(answer.headers["location"])
    page = await client.get(answer.headers["location"])
    assert "The self-test was started" in page.text
    assert "<strong>Running:</strong> the job is" in page.text
    assert 'data-active="true"' in page.text
    assert "/static/js/console_self_test.js" in page.text
    assert '<th scope="row">created</th>' in page.text
    assert "shown above" in page.text  # in the list of latest self-tests too
    [job] = await jobs(runtime)
    assert job.id == job_id
    assert job.user_id == admin.id
    assert job.credential_source == "platform"
    async with runtime.db.session() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "service_self_test_started" in actions


async def test_a_finished_self_test_shows_its_steps_results_and_verdict(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin_csrf: str,
    fake: FakeConnector,
    clock: FakeClock,
) -> None:
    await a_service(runtime)
    fake.configure(results={"chr20.dose.vcf.gz": make_vcf(samples=50, variants=30)})
    first = job_of((await run(client, admin_csrf)).headers["location"])
    await drive(runtime, Worker(runtime), clock, first)
    fake.configure(outcome="failed", failure_message="No chunks passed the QC step.")
    second = job_of((await run(client, admin_csrf)).headers["location"])
    await drive(runtime, Worker(runtime), clock, second)

    latest = await client.get(PAGE)
    earlier = await client.get(f"{PAGE}?job={first}")

    assert "<strong>Failed:</strong> the job failed: No chunks passed the QC step." in latest.text
    assert '<th scope="row">failed</th>' in latest.text
    assert f"?job={first}" in latest.text  # the earlier one, linked from the list
    assert "<strong>Passed:</strong> the job completed" in earlier.text
    assert "Panel hrc; started" in earlier.text
    for step in ("created", "submitted", "queued", "running", "fetching", "completed"):
        assert f'<th scope="row">{step}</th>' in earlier.text
    assert '<th scope="row">chr20.dose.vcf.gz</th>' in earlier.text
    assert "reads as a bgzipped VCF" in earlier.text
    assert "Results: 1 file," in earlier.text
    assert 'data-active="false"' in earlier.text


async def test_an_unknown_panel_is_refused_with_a_message_and_nothing_is_made(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await a_service(runtime)

    answer = await run(client, admin_csrf, panel="no-such-panel")

    assert answer.status_code == 422
    assert '<p class="error" role="alert">Unknown reference panel' in answer.text
    assert "Run the self-test</button>" in answer.text
    assert await jobs(runtime) == []


async def test_a_service_without_a_platform_credential_says_so(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await a_service(runtime, credential_encrypted=None)

    answer = await run(client, admin_csrf)

    assert answer.status_code == 422
    assert "has no platform credential" in answer.text
    assert await jobs(runtime) == []


async def test_a_post_without_its_csrf_token_does_nothing(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await a_service(runtime)

    answer = await client.post(PAGE, data={"panel": ""})

    assert answer.status_code == 403
    assert await jobs(runtime) == []


async def test_markup_is_shown_as_text(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await a_service(runtime, name="<script>alert(1)</script>")

    refused = await run(client, admin_csrf, panel="<img src=x onerror=alert(2)>")
    page = await client.get(PAGE)

    assert "&lt;img src=x onerror=alert(2)&gt;" in refused.text
    assert "<img src=x" not in refused.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text


async def test_a_user_is_refused_and_nothing_is_started(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    await a_service(runtime)
    csrf = await sign_in(client, alice.username)

    page = await client.get(PAGE)
    answer = await run(client, csrf)

    assert page.status_code == 403
    assert answer.status_code == 403
    assert await jobs(runtime) == []


async def test_an_unknown_service_or_job_is_the_not_found_page(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str
) -> None:
    await a_service(runtime)

    answers = [
        await client.get("/console/services/nope/self-test"),
        await client.post("/console/services/nope/self-test", data={"csrf_token": admin_csrf}),
        await client.get(f"{PAGE}?job=not-a-self-test"),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404]
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
