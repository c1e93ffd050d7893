"""The dashboard and the files pages over HTTP: what each user sees, and what they may do."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from imputehub.db.models import Event, Notification, StoredFile, Upload
from imputehub.runtime import Runtime
from tests.support import factories
from tests.support.api import Actor
from tests.support.web import sign_in

MiB = 1024 * 1024


@pytest.fixture
async def bob_client(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser (its own cookie jar) on the same hub."""
    async with httpx.AsyncClient(transport=client._transport, base_url="http://hub.test") as c:
        yield c


async def _stored(runtime: Runtime, file_id: str) -> StoredFile | None:
    async with runtime.db.session() as session:
        return await session.get(StoredFile, file_id)


def _count(page: httpx.Response, status: str) -> int:
    found = re.search(rf'data-count="{status}">(\d+)<', page.text)
    assert found, page.text
    return int(found.group(1))


@pytest.mark.parametrize("path", ["/", "/files", "/files/some-id"])
async def test_pages_without_a_session_send_the_visitor_to_sign_in(
    client: httpx.AsyncClient, alice: Actor, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"/login?next={path}")


async def test_a_new_user_is_told_how_to_start(client: httpx.AsyncClient, alice: Actor) -> None:
    await sign_in(client, "alice")
    home = await client.get("/")
    assert "No jobs yet" in home.text
    assert 'href="/jobs/new"' in home.text
    assert _count(home, "total") == 0
    files = await client.get("/files")
    assert "No files yet" in files.text
    assert "No unfinished uploads." in files.text
    # The empty job list still has the place where a job started elsewhere is announced
    # live (its script follows the user's events there too).
    jobs = await client.get("/jobs")
    assert "You have no jobs yet" in jobs.text
    assert 'id="new-jobs" hidden' in jobs.text


async def test_the_dashboard_shows_only_my_jobs_counts_services_and_unread_notes(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    now = runtime.clock.now()
    service = await factories.make_service(
        runtime, name="Kraków Imputation", location="Kraków, PL", queue_size=7
    )
    await factories.make_service(
        runtime, name="Down Server", health_status="unhealthy", health_message="timed out"
    )
    await factories.make_service(runtime, name="Retired Server", is_active=False)
    panel = await factories.make_panel(runtime, service)
    mine = await factories.make_file(runtime, alice.id)
    theirs = await factories.make_file(runtime, bob.id)
    running = await factories.make_job(
        runtime,
        user_id=alice.id,
        service=service,
        panel=panel,
        files=[mine],
        name="alice chr20 run",
        status="running",
        progress=42.0,
        started_at=now,
    )
    done = await factories.make_job(
        runtime,
        user_id=alice.id,
        service=service,
        panel=panel,
        files=[mine],
        name="alice finished study",
        status="completed",
        progress=100.0,
        started_at=now,
        completed_at=now,
    )
    await factories.make_job(
        runtime,
        user_id=bob.id,
        service=service,
        panel=panel,
        files=[theirs],
        name="bob private job",
        status="running",
    )
    async with runtime.db.session() as session:
        event = Event(user_id=alice.id, job_id=done.id, kind="job.completed", created_at=now)
        session.add(event)
        await session.flush()
        session.add(
            Notification(
                user_id=alice.id,
                event_id=event.id,
                kind="job.completed",
                job_id=done.id,
                title="Job 'alice finished study' completed",
                created_at=now,
            )
        )

    await sign_in(client, "alice")
    home = await client.get("/")
    assert home.status_code == 200
    assert "alice chr20 run" in home.text
    assert "bob private job" not in home.text
    assert (_count(home, "total"), _count(home, "running"), _count(home, "completed")) == (2, 1, 1)
    # The running job's row: its link, status and progress.
    row = re.search(rf'<tr data-job-id="{running.id}".*?</tr>', home.text, re.S)
    assert row, home.text
    assert f'href="/jobs/{running.id}"' in row.group(0)
    assert 'value="42.0"' in row.group(0)
    assert ">running<" in row.group(0)
    # The completed one is a recent result, not an active row.
    assert f'<tr data-job-id="{done.id}"' not in home.text
    assert f'<a href="/jobs/{done.id}">alice finished study</a>' in home.text
    # The service with its health and load: 7 waiting there, 2 of the hub's jobs active.
    service_row = re.search(rf'<tr data-service-id="{service.id}">.*?</tr>', home.text, re.S)
    assert service_row, home.text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", service_row.group(0), re.S)
    assert "Kraków, PL" in cells[0]
    assert "healthy" in cells[1]
    assert [c.strip() for c in cells[3:5]] == ["7", "2"]
    # Users see every active service, the unhealthy one with why; never a retired one.
    assert "Down Server" in home.text
    assert "timed out" in home.text
    assert "Retired Server" not in home.text
    assert "Job &#39;alice finished study&#39; completed" in home.text
    assert 'href="/notifications"' in home.text
    assert 'href="/jobs/new"' in home.text


async def test_my_files_with_their_reports_and_jobs_and_not_anyone_elses(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, bob: Actor
) -> None:
    service = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, service)
    mine = await factories.make_file(runtime, alice.id, filename="cohort.chr20.vcf.gz")
    await factories.make_file(runtime, bob.id, filename="bobs-secret.vcf.gz")
    job = await factories.make_job(
        runtime, user_id=alice.id, service=service, panel=panel, files=[mine], name="cohort job"
    )

    await sign_in(client, "alice")
    listing = await client.get("/files")
    assert listing.status_code == 200
    assert f'<a href="/files/{mine.id}">cohort.chr20.vcf.gz</a>' in listing.text
    assert "bobs-secret" not in listing.text
    assert "20 samples" in listing.text
    assert "hg19" in listing.text
    assert "phased" in listing.text
    assert f'<a href="/jobs/{job.id}">cohort job</a>' in listing.text
    assert f'action="/files/{mine.id}/delete"' in listing.text
    assert "data-confirm=" in listing.text

    detail = await client.get(f"/files/{mine.id}")
    assert detail.status_code == 200
    assert mine.sha256 in detail.text
    assert "Pre-flight report" in detail.text
    assert "Samples</dt><dd>20" in detail.text
    assert "Chromosomes</dt><dd>20 " in detail.text
    assert "Phasing</dt><dd>phased</dd>" in detail.text
    assert "The check found no problems." in detail.text


async def test_another_users_file_is_not_found_and_cannot_be_deleted(
    client: httpx.AsyncClient,
    bob_client: httpx.AsyncClient,
    runtime: Runtime,
    alice: Actor,
    bob: Actor,
) -> None:
    mine = await factories.make_file(runtime, alice.id)
    bob_csrf = await sign_in(bob_client, "bob")
    page = await bob_client.get(f"/files/{mine.id}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text
    refused = await bob_client.post(f"/files/{mine.id}/delete", data={"csrf_token": bob_csrf})
    assert refused.status_code == 404
    assert await _stored(runtime, mine.id) is not None


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_delete_without_the_right_csrf_token_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor, token: str | None
) -> None:
    mine = await factories.make_file(runtime, alice.id)
    await sign_in(client, "alice")
    form = {} if token is None else {"csrf_token": token}
    refused = await client.post(
        f"/files/{mine.id}/delete", data=form | {"x": "1"}
    )  # a field, so the body is a form
    assert refused.status_code == 403
    assert await _stored(runtime, mine.id) is not None


async def test_delete_from_another_site_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    mine = await factories.make_file(runtime, alice.id)
    csrf = await sign_in(client, "alice")
    refused = await client.post(
        f"/files/{mine.id}/delete",
        data={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status_code == 403
    assert await _stored(runtime, mine.id) is not None


async def test_delete_with_the_token_removes_the_file_and_says_so(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    mine = await factories.make_file(runtime, alice.id, filename="old.vcf.gz")
    csrf = await sign_in(client, "alice")
    answer = await client.post(f"/files/{mine.id}/delete", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/files?notice=deleted"
    assert await _stored(runtime, mine.id) is None
    after = await client.get(answer.headers["location"])
    assert "The file was deleted." in after.text
    assert "old.vcf.gz" not in after.text
    assert (await client.get(f"/files/{mine.id}")).status_code == 404


async def test_a_file_in_use_by_an_active_job_is_kept_with_a_reason(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    service = await factories.make_service(runtime)
    panel = await factories.make_panel(runtime, service)
    mine = await factories.make_file(runtime, alice.id)
    await factories.make_job(runtime, user_id=alice.id, service=service, panel=panel, files=[mine])
    csrf = await sign_in(client, "alice")
    answer = await client.post(f"/files/{mine.id}/delete", data={"csrf_token": csrf})
    assert answer.status_code == 409
    assert "cancel the job or wait until it finishes" in answer.text
    assert await _stored(runtime, mine.id) is not None


async def test_a_file_name_with_markup_is_shown_as_text(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    hostile = '<script>alert("x")</script>.vcf.gz'
    mine = await factories.make_file(runtime, alice.id, filename=hostile)
    await sign_in(client, "alice")
    for path in ("/files", f"/files/{mine.id}"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.vcf.gz" in page.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/files?page=0", 422),
        ("/files?page=-3", 422),
        ("/files?page=abc", 422),
        ("/files?page=99999999999999999999", 422),
        ("/files/" + "x" * 200, 422),
        ("/files/no-such-file", 404),
    ],
)
async def test_malformed_ids_and_pages_get_a_clear_page_not_a_crash(
    client: httpx.AsyncClient, alice: Actor, path: str, status: int
) -> None:
    await sign_in(client, "alice")
    answer = await client.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert "Go to the dashboard" in answer.text


async def test_pages_of_files_and_a_page_past_the_end(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    for number in range(21):
        await factories.make_file(
            runtime, alice.id, b"not a vcf", filename=f"f{number:02}.txt", kind="result"
        )
    await sign_in(client, "alice")
    first = await client.get("/files")
    assert "Page 1 of 2" in first.text
    assert 'href="/files?page=2"' in first.text
    second = await client.get("/files?page=2")
    assert second.text.count('action="/files/') == 1
    past = await client.get("/files?page=5")
    assert past.status_code == 200
    assert "There is no page 5" in past.text


async def test_an_unfinished_upload_is_listed_with_its_progress_and_can_be_removed(
    client: httpx.AsyncClient, bob_client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    made = await client.post(
        "/api/v1/uploads/init",
        json={"filename": "big.vcf.gz", "size": 3 * MiB, "part_size": MiB},
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    upload_id = made.json()["upload_id"]
    part = await client.put(
        f"/api/v1/uploads/{upload_id}/part/0", content=b"\0" * MiB, headers=alice.headers
    )
    assert part.status_code == 200, part.text

    csrf = await sign_in(client, "alice")
    listing = await client.get("/files")
    assert "big.vcf.gz" in listing.text
    assert "1.0 MiB of 3.0 MiB (1 of 3 parts)" in listing.text
    assert f'action="/files/uploads/{upload_id}/abort"' in listing.text

    bob_csrf = await sign_in(bob_client, "bob")
    assert "big.vcf.gz" not in (await bob_client.get("/files")).text
    refused = await bob_client.post(
        f"/files/uploads/{upload_id}/abort", data={"csrf_token": bob_csrf}
    )
    assert refused.status_code == 404

    removed = await client.post(f"/files/uploads/{upload_id}/abort", data={"csrf_token": csrf})
    assert removed.status_code == 303
    after = await client.get(removed.headers["location"])
    assert "The unfinished upload was removed" in after.text
    assert "big.vcf.gz" not in after.text
    gone = await client.get(f"/api/v1/uploads/{upload_id}", headers=alice.headers)
    assert gone.status_code == 404


async def test_an_expired_upload_says_so_and_can_still_be_removed(
    client: httpx.AsyncClient, runtime: Runtime, alice: Actor
) -> None:
    made = await client.post(
        "/api/v1/uploads/init",
        json={"filename": "stale.vcf.gz", "size": 2 * MiB, "part_size": MiB},
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    upload_id = made.json()["upload_id"]
    async with runtime.db.session() as session:
        upload = await session.get(Upload, upload_id)
        assert upload is not None
        upload.expires_at = runtime.clock.now() - timedelta(minutes=5)

    csrf = await sign_in(client, "alice")
    listing = await client.get("/files")
    row = re.search(r"<tr>\s*<th scope=\"row\">stale.vcf.gz</th>.*?</tr>", listing.text, re.S)
    assert row, listing.text
    assert "expired" in row.group(0)
    assert "0 B of 2.0 MiB (0 of 2 parts)" in row.group(0)
    removed = await client.post(f"/files/uploads/{upload_id}/abort", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert "stale.vcf.gz" not in (await client.get("/files")).text
