"""The jobs pages over HTTP: what a signed-in researcher sees and can do, and what another
user, a visitor without a session or a forged form cannot."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from imputehub.db.models import AuditEntry, Job, ReferencePanel, Service
from imputehub.domain import slots
from imputehub.runtime import Runtime
from tests.support import databases
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.web import sign_in


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One database here: the pages call use cases whose queries are tested on both
    databases under the API (tests/integration/api)."""
    return databases.sqlite_with_schema(tmp_path)


@pytest.fixture
async def service(runtime: Runtime) -> Service:
    return await make_service(runtime, name="Michigan Imputation Server", slug="michigan")


@pytest.fixture
async def panel(runtime: Runtime, service: Service) -> ReferencePanel:
    return await make_panel(runtime, service, display_name="1000G Phase 3")


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser (its own cookie jar)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


async def a_job(
    runtime: Runtime, owner: Actor, service: Service, panel: ReferencePanel, **fields: Any
) -> Job:
    upload = await make_file(runtime, owner.id)
    return await make_job(
        runtime, user_id=owner.id, service=service, panel=panel, files=[upload], **fields
    )


async def stored(runtime: Runtime, job_id: str) -> Job | None:
    async with runtime.db.session() as session:
        return await session.scalar(select(Job).where(Job.id == job_id))


async def test_without_a_session_the_pages_send_the_visitor_to_sign_in(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    job = await a_job(runtime, alice, service, panel)
    for path in ("/jobs?status=failed", f"/jobs/{job.id}"):
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=/jobs")
    answer = await client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": "x"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")
    found = await stored(runtime, job.id)
    assert found is not None
    assert found.status == "pending"


async def test_the_list_shows_my_jobs_escaped_filtered_and_paged(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    bob: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    await a_job(runtime, alice, service, panel, name="<script>alert(1)</script>")
    failed = await a_job(runtime, alice, service, panel, name="chr20 study", status="failed")
    await a_job(runtime, bob, service, panel, name="bob's secret study")
    await sign_in(client, "alice")

    page = await client.get("/jobs")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    assert "chr20 study" in page.text
    assert "bob&#39;s secret study" not in page.text
    assert "bob's secret study" not in page.text
    assert "2 jobs" in page.text
    assert f'href="/jobs/new?like={failed.id}"' in page.text
    assert "Michigan Imputation Server" in page.text

    only_failed = await client.get("/jobs", params={"status": "failed", "q": "CHR20"})
    assert "chr20 study" in only_failed.text
    assert "alert(1)" not in only_failed.text
    assert "1 job matches the filters" in only_failed.text
    assert '<option value="failed" selected>' in only_failed.text

    beyond = await client.get("/jobs", params={"page": "2"})
    assert beyond.status_code == 200
    assert "No job matches" not in beyond.text


async def test_pages_of_jobs_keep_the_filters(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    upload = await make_file(runtime, alice.id)
    for number in range(22):
        await make_job(
            runtime,
            user_id=alice.id,
            service=service,
            panel=panel,
            files=[upload],
            name=f"batch {number:02d}",
            created_at=runtime.clock.now().replace(microsecond=number),
        )
    await sign_in(client, "alice")
    first = await client.get("/jobs", params={"q": "batch"})
    assert first.text.count('<tr data-job-id="') == 20
    assert "batch 21" in first.text  # newest first
    assert "batch 01" not in first.text
    assert 'href="/jobs?q=batch&amp;page=2" rel="next"' in first.text
    second = await client.get("/jobs", params={"q": "batch", "page": "2"})
    assert second.text.count('<tr data-job-id="') == 2
    assert "batch 00" in second.text
    assert 'href="/jobs?q=batch&amp;page=1" rel="prev"' in second.text


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"status": "exploded"}, "status must be one of"),
        ({"mode": "<b>x</b>"}, "mode must be one of"),
        ({"page": "two"}, "page must be a whole number"),
        ({"page": "0"}, "page must be a whole number"),
        ({"q": "x" * 201}, "at most 200 characters"),
        ({"service": "s" * 101}, "choose a service from the list"),
    ],
)
async def test_malformed_filters_get_a_clear_error_page(
    client: httpx.AsyncClient, alice: Actor, params: dict[str, str], says: str
) -> None:
    await sign_in(client, "alice")
    answer = await client.get("/jobs", params=params)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"].startswith("text/html")
    assert says in answer.text
    assert "<b>x</b>" not in answer.text


async def test_another_users_job_is_not_found_and_cannot_be_touched(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    bob: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    job = await a_job(runtime, alice, service, panel, name="alice's study")
    done = await a_job(runtime, alice, service, panel, name="alice's finished", status="completed")
    bob_csrf = await sign_in(other_client, "bob")

    page = await other_client.get(f"/jobs/{job.id}")
    assert page.status_code == 404
    assert "alice" not in page.text.replace(">alice<", "")  # nothing of hers, not even the name
    assert "Not found" in page.text

    cancel = await other_client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": bob_csrf})
    assert cancel.status_code == 404
    delete = await other_client.post(f"/jobs/{done.id}/delete", data={"csrf_token": bob_csrf})
    assert delete.status_code == 404
    bulk = await other_client.post(
        "/jobs/bulk", data={"csrf_token": bob_csrf, "action": "delete", "job_id": [done.id]}
    )
    assert bulk.status_code == 200
    assert "not found" in bulk.text
    assert "alice&#39;s finished" not in bulk.text

    still = await stored(runtime, job.id)
    assert still is not None
    assert still.status == "pending"
    assert await stored(runtime, done.id) is not None


@pytest.mark.parametrize("token", [None, "", "forged-token"])
async def test_a_form_without_the_right_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    service: Service,
    panel: ReferencePanel,
    token: str | None,
) -> None:
    job = await a_job(runtime, alice, service, panel)
    done = await a_job(runtime, alice, service, panel, status="failed")
    await sign_in(client, "alice")
    # A form with no token at all still carries the page's other fields.
    form = {"action": "cancel"} if token is None else {"csrf_token": token}
    for path in (f"/jobs/{job.id}/cancel", f"/jobs/{done.id}/delete", f"/jobs/{done.id}/retry"):
        answer = await client.post(path, data=form)
        assert answer.status_code == 403, path
        assert "reload the page" in answer.text
    bulk = await client.post("/jobs/bulk", data={**form, "action": "cancel", "job_id": job.id})
    assert bulk.status_code == 403

    async with runtime.db.session() as session:
        jobs = list(await session.scalars(select(Job).where(Job.user_id == alice.id)))
    assert sorted(j.status for j in jobs) == ["failed", "pending"]


async def test_a_form_from_another_site_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    job = await a_job(runtime, alice, service, panel)
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        f"/jobs/{job.id}/cancel",
        data={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    found = await stored(runtime, job.id)
    assert found is not None
    assert found.status == "pending"


async def test_malformed_job_ids_get_a_not_found_page(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    await sign_in(client, "alice")
    for path in ("/jobs/%3Cscript%3E", "/jobs/" + "a" * 300, "/jobs/no-such-job"):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "<script>" not in answer.text


async def test_cancel_from_the_job_page(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    job = await a_job(runtime, alice, service, panel, name="to cancel")
    csrf = await sign_in(client, "alice")
    page = await client.get(f"/jobs/{job.id}")
    assert 'data-confirm="Cancel this job?' in page.text
    answer = await client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/jobs/{job.id}?done=cancelled"
    after = await client.get(answer.headers["location"])
    assert "The job was cancelled." in after.text
    assert 'id="job-status">cancelled<' in after.text
    found = await stored(runtime, job.id)
    assert found is not None
    assert found.status == "cancelled"


async def test_an_admin_cancelling_someone_elses_job_is_audited_once_for_both_doors(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    admin: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    by_page = await a_job(runtime, alice, service, panel)
    by_api = await a_job(runtime, alice, service, panel)
    csrf = await sign_in(client, "admin")
    assert (await client.post(f"/jobs/{by_page.id}/cancel", data={"csrf_token": csrf})).is_redirect
    api = await client.post(f"/api/v1/jobs/{by_api.id}/cancel", headers=admin.headers)
    assert api.status_code == 200
    async with runtime.db.session() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "job_cancelled_by_admin")
            )
        )
    assert sorted(e.target_id for e in entries) == sorted([by_page.id, by_api.id])


async def test_a_failed_job_explains_itself_and_offers_the_fitting_remedies(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    message = "Error: No chunks passed the QC step. Imputation cannot be started! <b>bold</b>"
    job = await a_job(
        runtime,
        alice,
        service,
        panel,
        status="failed",
        error_message=message,
        service_logs=[
            "Input Validation: 1 valid VCF file",
            "Quality Control: 5201 allele switches",
            "Quality Control: Error: No chunks passed the QC step.",
        ],
    )
    csrf = await sign_in(client, "alice")
    page = await client.get(f"/jobs/{job.id}")
    assert page.status_code == 200
    assert "No part of the data passed quality control" in page.text
    assert "What to do:" in page.text
    assert "Imputation cannot be started! &lt;b&gt;bold&lt;/b&gt;" in page.text  # raw, escaped
    assert "Run again as QC only" in page.text
    assert f'href="/jobs/new?like={job.id}">Send to another service' in page.text
    # The service's messages are under their steps, and QC is where it failed.
    steps = re.findall(r'<li class="step step-(\w+)">\s*<h3>([^<]+)<', page.text)
    assert steps == [
        ("done", "Input Validation "),
        ("failed", "Quality Control "),
        ("skipped", "Phasing and Imputation "),
        ("skipped", "Summary "),
    ]
    assert "5201 allele switches" in page.text

    rerun = await client.post(f"/jobs/{job.id}/qc-only", data={"csrf_token": csrf})
    assert rerun.status_code == 303
    new_id = rerun.headers["location"].split("/")[2].split("?")[0]
    new = await stored(runtime, new_id)
    assert new is not None
    assert new.mode == "qc_only"
    assert new.status == "pending"
    assert [i.file_id for i in new.inputs] == [i.file_id for i in job.inputs]

    retried = await client.post(f"/jobs/{job.id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303
    assert retried.headers["location"].endswith("?done=retried")


async def test_an_unknown_failure_shows_the_raw_message_without_a_guess(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    job = await a_job(
        runtime, alice, service, panel, status="failed", error_message="zorp happened"
    )
    await sign_in(client, "alice")
    page = await client.get(f"/jobs/{job.id}")
    assert "zorp happened" in page.text
    assert "What to do:" not in page.text
    assert "retry the job, or send it to another service" in page.text


async def test_results_with_checksums_downloads_and_qc_tables(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    job = await a_job(runtime, alice, service, panel, status="completed", progress=100.0)
    report = (
        b"Quality Control\n\nReference panel: demo\n\nInput file: study.vcf.gz\n"
        b"  Samples: 40\n  Allele switches (excluded): 12\n  Strand flips (excluded): 3\n"
    )
    excluded = b"#Position\tFilterType\tInfo\n" + b"".join(
        f"20:{60000 + i}:A:G\tAllele switch\t-\n".encode() for i in range(5000)
    )
    zipped = b"PK\x03\x04 not really a zip"
    files = {}
    for name, content in (
        ("qc_report.txt", report),
        ("statistics/snps-excluded.txt", excluded),
        ("chr_20.zip", zipped),
    ):
        files[name] = await make_file(
            runtime, alice.id, content, kind="result", job_id=job.id, filename=name
        )
    await sign_in(client, "alice")
    page = await client.get(f"/jobs/{job.id}")
    assert page.status_code == 200
    text = page.text
    zip_record = files["chr_20.zip"]
    assert hashlib.sha256(zipped).hexdigest() in text
    assert f'href="/app/api/v1/files/{zip_record.id}/content" download' in text
    assert f"imputehub jobs download {job.id}" in text
    assert "export IMPUTEHUB_TOKEN=&#39;paste-your-personal-token-here&#39;" in text
    assert "Bearer ey" not in text  # never a real token in the page
    # The QC report as a table, and only the first rows of a long list.
    assert "<td>Allele switches (excluded)</td><td>12</td>" in text
    assert '<th scope="col">FilterType</th>' in text
    assert "20:60000:A:G" in text
    assert "20:60049:A:G" in text
    assert "20:60050:A:G" not in text
    assert "Only the first rows are shown" in text
    # Nothing inline: the pages' CSP allows scripts and styles from the hub's files only.
    assert " style=" not in text
    assert re.findall(r"<script(?![^>]*\bsrc=)", text) == []

    # The download link works in the browser door with the session, and has those bytes.
    got = await client.get(f"/app/api/v1/files/{zip_record.id}/content")
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == zip_record.sha256


async def test_bulk_cancel_reports_each_job(
    client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    bob: Actor,
    service: Service,
    panel: ReferencePanel,
) -> None:
    waiting = await a_job(runtime, alice, service, panel, name="waiting job")
    finished = await a_job(runtime, alice, service, panel, name="finished job", status="completed")
    bobs = await a_job(runtime, bob, service, panel, name="bob job")
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/jobs/bulk",
        data={
            "csrf_token": csrf,
            "action": "cancel",
            "job_id": [waiting.id, finished.id, bobs.id],
        },
    )
    assert answer.status_code == 200
    rows = re.findall(
        r"<tr>\s*<th scope=\"row\">(.*?)</th>\s*<td class=\"(\w+)\">(.*?)</td>", answer.text, re.S
    )
    outcomes = [(re.sub(r"<[^>]+>", "", name).strip(), css, said) for name, css, said in rows]
    assert outcomes[0] == ("waiting job", "ok", "Done: cancelled")
    assert outcomes[1][:2] == ("finished job", "bad")
    assert "already completed" in outcomes[1][2]
    assert outcomes[2][:2] == (bobs.id, "bad")
    assert "not found" in outcomes[2][2]
    assert "bob job" not in answer.text

    states = {j: (await stored(runtime, j)) for j in (waiting.id, finished.id, bobs.id)}
    assert {k: v.status for k, v in states.items() if v} == {
        waiting.id: "cancelled",
        finished.id: "completed",
        bobs.id: "pending",
    }


async def test_bulk_delete_removes_finished_jobs_and_cancels_active_ones(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    finished = await a_job(runtime, alice, service, panel, name="old job", status="failed")
    active = await a_job(runtime, alice, service, panel, name="live job", status="queued")
    csrf = await sign_in(client, "alice")
    answer = await client.post(
        "/jobs/bulk",
        data={"csrf_token": csrf, "action": "delete", "job_id": [finished.id, active.id]},
    )
    assert answer.status_code == 200
    assert "Done: deleted" in answer.text
    assert "Done: still active: cancelling it instead" in answer.text
    assert await stored(runtime, finished.id) is None
    kept = await stored(runtime, active.id)
    assert kept is not None
    assert kept.status == "cancelling"

    nothing = await client.post("/jobs/bulk", data={"csrf_token": csrf, "action": "delete"})
    assert nothing.status_code == 422
    assert "choose at least one job" in nothing.text


async def test_delete_from_the_job_page_goes_back_to_the_list(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    job = await a_job(runtime, alice, service, panel, status="completed")
    result = await make_file(
        runtime, alice.id, b"results", kind="result", job_id=job.id, filename="chr_20.zip"
    )
    csrf = await sign_in(client, "alice")
    answer = await client.post(f"/jobs/{job.id}/delete", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/jobs?deleted=1"
    assert "were deleted" in (await client.get("/jobs?deleted=1")).text
    assert await stored(runtime, job.id) is None
    assert not await runtime.storage.exists(result.storage_key)


async def test_a_waiting_job_shows_its_place_and_the_deletion_date(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, service: Service, panel: Any
) -> None:
    when = runtime.clock.now().replace(year=2031, month=5, day=4, hour=12, minute=0)
    job = await a_job(
        runtime,
        alice,
        service,
        panel,
        status="queued",
        service_queue_position=3,
        service_deletes_results_at=when,
    )
    await sign_in(client, "alice")
    page = await client.get(f"/jobs/{job.id}")
    assert "Place <strong>3</strong> in the service's own queue" in page.text
    assert "2031-05-04 12:00 UTC" in page.text
    assert 'data-active="true"' in page.text
    assert "Cancel job" in page.text


async def test_a_job_waiting_in_the_hub_for_a_slot_says_where_it_stands(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    limited = await make_service(
        runtime, name="One at a time", slug="single", api_config={slots.LIMIT_KEY: 1}
    )
    panel = await make_panel(runtime, limited, display_name="Small panel")
    # Bob's job holds the account's one slot; alice's waits behind it in the hub.
    await a_job(
        runtime,
        bob,
        limited,
        panel,
        status="running",
        submit_started_at=runtime.clock.now(),
        next_step="poll",
    )
    waiting = await a_job(runtime, alice, limited, panel, status="queued")
    await sign_in(client, "alice")
    page = await client.get(f"/jobs/{waiting.id}")
    assert "Waiting in the hub for a free slot at One at a time: 1 of 1 in use" in page.text
    assert "number 1 in line" in page.text
    assert "bob" not in page.text  # where it stands, never whose jobs are ahead
