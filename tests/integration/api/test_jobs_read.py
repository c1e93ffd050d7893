"""Reading jobs: detail, lists with filters and paging, history, progress, logs, results,
stats, and who may see what."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from imputehub.clock import FakeClock
from imputehub.db.models import Job, ReferencePanel, Service, StoredFile
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service


@dataclass
class World:
    service: Service
    panel: ReferencePanel
    alice_file: StoredFile
    bob_file: StoredFile


@pytest.fixture
async def world(runtime: Runtime, alice: Actor, bob: Actor) -> World:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="hrc")
    return World(
        service=service,
        panel=panel,
        alice_file=await make_file(runtime, alice.id),
        bob_file=await make_file(runtime, bob.id),
    )


async def job_for(runtime: Runtime, world: World, actor: Actor, **fields: Any) -> Job:
    record = world.alice_file if actor.username == "alice" else world.bob_file
    return await make_job(
        runtime,
        user_id=actor.id,
        service=world.service,
        panel=world.panel,
        files=[record],
        **fields,
    )


# --- detail -------------------------------------------------------------------------------


async def test_job_detail_shows_progress_times_errors_and_retry(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    start = clock.now()
    errors = [
        {"at": start.isoformat(), "message": "service busy", "transient": True, "attempt": 1},
        {"at": start.isoformat(), "message": "rejected", "transient": False, "attempt": 2},
    ]
    job = await job_for(
        runtime,
        world,
        alice,
        status="completed",
        progress=100.0,
        external_job_id="job-20260101-1",
        started_at=start,
        completed_at=start + timedelta(seconds=90),
        error_log=errors,
        retry_of="earlier-job",
        name="detail",
    )
    response = await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["progress_percentage"] == 100
    assert body["external_job_id"] == "job-20260101-1"
    assert body["execution_time_seconds"] == 90
    assert body["retry_of"] == "earlier-job"
    assert [(e["message"], e["transient"], e["attempt"]) for e in body["errors"]] == [
        ("service busy", True, 1),
        ("rejected", False, 2),
    ]
    assert body["errors"][0]["at"] is not None
    assert body["input_files"] == [
        {"id": world.alice_file.id, "filename": "study.chr20.vcf.gz", "size": world.alice_file.size}
    ]


async def test_progress_and_logs(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_for(
        runtime,
        world,
        alice,
        status="running",
        progress=42.5,
        service_logs=["Input Validation: 22 files", "Quality Control: ok", "Imputation: chr20"],
    )
    progress = (await client.get(f"/api/v1/jobs/{job.id}/progress", headers=alice.headers)).json()
    assert progress == {
        "id": job.id,
        "status": "running",
        "progress_percentage": 42.5,
        "updated_at": progress["updated_at"],
    }
    logs = (await client.get(f"/api/v1/jobs/{job.id}/logs", headers=alice.headers)).json()
    assert logs == {
        "id": job.id,
        "logs": ["Input Validation: 22 files", "Quality Control: ok", "Imputation: chr20"],
    }


async def test_status_updates_oldest_first(
    client: httpx.AsyncClient, alice: Actor, world: World, clock: FakeClock
) -> None:
    created = await client.post(
        "/api/v1/jobs",
        json={
            "name": "history",
            "service_id": "michigan",
            "reference_panel_id": "hrc",
            "input_file_ids": [world.alice_file.id],
            "build": "hg19",
            "phasing": "eagle",
        },
        headers=alice.headers,
    )
    job_id = created.json()["id"]
    clock.advance(5)
    await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice.headers)
    updates = (
        await client.get(f"/api/v1/jobs/{job_id}/status-updates", headers=alice.headers)
    ).json()
    assert [(u["status"], u["message"]) for u in updates] == [
        ("pending", "job created"),
        ("cancelled", "cancelled by user"),
    ]
    assert updates[0]["created_at"] < updates[1]["created_at"]


async def test_results_list_and_download(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_for(runtime, world, alice, status="completed", progress=100.0)
    dose = b"\x1f\x8b dose data" * 100
    await make_file(
        runtime, alice.id, dose, kind="result", job_id=job.id, filename="chr20.dose.vcf.gz"
    )
    await make_file(
        runtime, alice.id, b"qc", kind="result", job_id=job.id, filename="qc_report.txt"
    )
    # An input file that names the job is not a result.
    await make_file(runtime, alice.id, b"in", job_id=job.id, filename="input.vcf")

    response = await client.get(f"/api/v1/jobs/{job.id}/results", headers=alice.headers)
    assert response.status_code == 200
    results = response.json()
    assert [r["filename"] for r in results] == ["chr20.dose.vcf.gz", "qc_report.txt"]
    first = results[0]
    assert first["size"] == len(dose)
    assert first["sha256"] == hashlib.sha256(dose).hexdigest()
    assert first["download_url"] == f"/api/v1/files/{first['id']}/content"
    download = await client.get(first["download_url"], headers=alice.headers)
    assert download.status_code == 200
    assert download.content == dose


async def test_results_of_a_job_without_any(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    job = await job_for(runtime, world, alice, status="running")
    response = await client.get(f"/api/v1/jobs/{job.id}/results", headers=alice.headers)
    assert response.json() == []


# --- lists --------------------------------------------------------------------------------


async def test_list_newest_first_with_paging(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    world: World,
    runtime: Runtime,
    clock: FakeClock,
) -> None:
    ids = []
    for i in range(5):
        ids.append((await job_for(runtime, world, alice, name=f"job {i}")).id)
        clock.advance(1)
    await job_for(runtime, world, bob, name="bob's")
    newest_first = list(reversed(ids))

    page = (await client.get("/api/v1/jobs", headers=alice.headers)).json()
    assert [j["id"] for j in page["items"]] == newest_first
    assert (page["total"], page["limit"], page["offset"]) == (5, 20, 0)
    assert "errors" not in page["items"][0]
    assert page["items"][0]["input_files"][0]["id"] == world.alice_file.id

    page = (await client.get("/api/v1/jobs?limit=2&offset=2", headers=alice.headers)).json()
    assert [j["id"] for j in page["items"]] == newest_first[2:4]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)

    page = (await client.get("/api/v1/jobs?offset=10", headers=alice.headers)).json()
    assert page["items"] == []
    assert page["total"] == 5


async def test_list_filters(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    other = await make_service(runtime, slug="topmed")
    other_panel = await make_panel(runtime, other)
    running = await job_for(runtime, world, alice, status="running", name="Chr20 Imputation")
    qc = await job_for(runtime, world, alice, mode="qc_only", name="QC run 100%")
    elsewhere = await make_job(
        runtime,
        user_id=alice.id,
        service=other,
        panel=other_panel,
        files=[world.alice_file],
        name="topmed chr20",
    )

    async def ids(query: str) -> set[str]:
        response = await client.get(f"/api/v1/jobs?{query}", headers=alice.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return {j["id"] for j in body["items"]}

    assert await ids("status=running") == {running.id}
    assert await ids("status=pending") == {qc.id, elsewhere.id}
    assert await ids("mode=qc_only") == {qc.id}
    assert await ids(f"service_id={other.id}") == {elsewhere.id}
    assert await ids("service_id=topmed") == {elsewhere.id}
    assert await ids("service_id=michigan") == {running.id, qc.id}
    assert await ids("service_id=unknown") == set()
    assert await ids("q=CHR20") == {running.id, elsewhere.id}
    assert await ids("q=100%25") == {qc.id}
    assert await ids("q=%25") == {qc.id}  # % is a literal, not a wildcard
    assert await ids("q=_") == set()
    assert await ids("q=chr20&service_id=michigan&status=running") == {running.id}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "offset=-1",
        "status=done",
        "mode=fast",
        "limit=ten",
        "q=" + "x" * 201,
    ],
)
async def test_list_rejects_bad_query(client: httpx.AsyncClient, alice: Actor, query: str) -> None:
    response = await client.get(f"/api/v1/jobs?{query}", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_list_all_users_is_for_admins(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    admin: Actor,
    world: World,
    runtime: Runtime,
) -> None:
    mine = await job_for(runtime, world, alice)
    theirs = await job_for(runtime, world, bob)
    response = await client.get("/api/v1/jobs?all=true", headers=alice.headers)
    assert response.status_code == 403
    everyone = (await client.get("/api/v1/jobs?all=true", headers=admin.headers)).json()
    assert {j["id"] for j in everyone["items"]} == {mine.id, theirs.id}
    own = (await client.get("/api/v1/jobs", headers=admin.headers)).json()
    assert own["items"] == []


# --- stats --------------------------------------------------------------------------------


async def test_stats(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    admin: Actor,
    world: World,
    runtime: Runtime,
    clock: FakeClock,
) -> None:
    t0 = clock.now()
    for seconds in (100, 300):
        await job_for(
            runtime,
            world,
            alice,
            status="completed",
            progress=100.0,
            started_at=t0,
            completed_at=t0 + timedelta(seconds=seconds),
        )
    await job_for(runtime, world, alice, status="failed", started_at=t0, completed_at=t0)
    await job_for(runtime, world, alice, status="cancelled", completed_at=t0)
    await job_for(runtime, world, alice, status="running", started_at=t0)
    await job_for(runtime, world, alice, status="pending")
    await job_for(
        runtime,
        world,
        bob,
        status="completed",
        started_at=t0,
        completed_at=t0 + timedelta(seconds=1100),
    )

    stats = (await client.get("/api/v1/jobs/stats", headers=alice.headers)).json()
    assert stats["total"] == 6
    assert stats["active"] == 2
    assert (stats["completed"], stats["failed"], stats["cancelled"]) == (2, 1, 1)
    assert stats["by_status"] == {
        "pending": 1,
        "queued": 0,
        "running": 1,
        "cancelling": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
    }
    assert stats["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert stats["mean_execution_time_seconds"] == pytest.approx(200.0, abs=0.01)

    response = await client.get("/api/v1/jobs/stats?all=true", headers=alice.headers)
    assert response.status_code == 403

    everyone = (await client.get("/api/v1/jobs/stats?all=true", headers=admin.headers)).json()
    assert everyone["total"] == 7
    assert everyone["completed"] == 3
    assert everyone["success_rate"] == pytest.approx(3 / 4, abs=1e-4)
    assert everyone["mean_execution_time_seconds"] == pytest.approx(500.0, abs=0.01)

    empty = (await client.get("/api/v1/jobs/stats", headers=admin.headers)).json()
    assert empty["total"] == 0
    assert empty["success_rate"] is None
    assert empty["mean_execution_time_seconds"] is None


# --- authorization matrix -----------------------------------------------------------------

JOB_ROUTES = [
    ("GET", ""),
    ("GET", "/status-updates"),
    ("GET", "/progress"),
    ("GET", "/logs"),
    ("GET", "/results"),
    ("POST", "/cancel"),
    ("POST", "/retry"),
    ("DELETE", ""),
]


@pytest.mark.parametrize(("method", "suffix"), JOB_ROUTES)
async def test_anonymous_gets_401(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    method: str,
    suffix: str,
) -> None:
    job = await job_for(runtime, world, alice)
    response = await client.request(method, f"/api/v1/jobs/{job.id}{suffix}")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/stats"), ("POST", "/api/v1/jobs")],
)
async def test_anonymous_gets_401_on_collections(
    client: httpx.AsyncClient, method: str, url: str
) -> None:
    response = await client.request(method, url)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "suffix"), JOB_ROUTES)
async def test_other_users_job_is_404_and_untouched(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    world: World,
    runtime: Runtime,
    method: str,
    suffix: str,
) -> None:
    job = await job_for(runtime, world, alice, status="failed")
    response = await client.request(method, f"/api/v1/jobs/{job.id}{suffix}", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["detail"] == f"job {job.id} not found"
    # Still there, unchanged, and bob got no job out of it.
    mine = await client.get(f"/api/v1/jobs/{job.id}", headers=alice.headers)
    assert mine.json()["status"] == "failed"
    bobs = (await client.get("/api/v1/jobs", headers=bob.headers)).json()
    assert bobs["total"] == 0


@pytest.mark.parametrize(
    ("method", "suffix", "expected"),
    [
        ("GET", "", 200),
        ("GET", "/status-updates", 200),
        ("GET", "/progress", 200),
        ("GET", "/logs", 200),
        ("GET", "/results", 200),
        ("POST", "/cancel", 200),
    ],
)
async def test_admin_sees_and_acts_on_any_job(
    client: httpx.AsyncClient,
    alice: Actor,
    admin: Actor,
    world: World,
    runtime: Runtime,
    method: str,
    suffix: str,
    expected: int,
) -> None:
    job = await job_for(runtime, world, alice)
    response = await client.request(method, f"/api/v1/jobs/{job.id}{suffix}", headers=admin.headers)
    assert response.status_code == expected, response.text


@pytest.mark.parametrize(("method", "suffix"), JOB_ROUTES)
async def test_unknown_job_is_404(
    client: httpx.AsyncClient, alice: Actor, method: str, suffix: str
) -> None:
    response = await client.request(
        method, f"/api/v1/jobs/no-such-job{suffix}", headers=alice.headers
    )
    assert response.status_code == 404
