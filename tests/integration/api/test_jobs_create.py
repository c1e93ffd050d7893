"""Creating jobs: JSON and multipart, and every rejection (with nothing left behind)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.clock import FakeClock
from imputehub.config import Settings
from imputehub.db.models import Job, JobStatusUpdate, ReferencePanel, Service, StoredFile
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.vcf import make_vcf, sized_vcf, vcf_start

LIMIT = 1024 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_upload_size": LIMIT, "max_active_jobs_per_user": 3})


@dataclass
class World:
    service: Service
    panel: ReferencePanel
    file: StoredFile


@pytest.fixture
async def world(runtime: Runtime, alice: Actor) -> World:
    service = await make_service(runtime, slug="michigan")
    panel = await make_panel(runtime, service, slug="1000g-phase3", build="hg19")
    record = await make_file(runtime, alice.id)
    return World(service=service, panel=panel, file=record)


def payload(world: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "chr20 study",
        "description": "first run",
        "service_id": world.service.slug,
        "reference_panel_id": world.panel.slug,
        "input_file_ids": [world.file.id],
        "build": "hg19",
        "phasing": "eagle",
        "population": "eur",
        "mode": "imputation",
        "r2_filter": 0.3,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def stored_paths(settings: Settings) -> set[str]:
    root = settings.data_dir / "files"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@dataclass
class Snapshot:
    jobs: int
    files: int
    updates: int
    paths: set[str]


async def snapshot(runtime: Runtime, settings: Settings) -> Snapshot:
    return Snapshot(
        jobs=await count(runtime, Job),
        files=await count(runtime, StoredFile),
        updates=await count(runtime, JobStatusUpdate),
        paths=stored_paths(settings),
    )


# --- JSON ---------------------------------------------------------------------------------


async def test_create_job_from_json(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, clock: FakeClock
) -> None:
    response = await client.post("/api/v1/jobs", json=payload(world), headers=alice.headers)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["user_id"] == alice.id
    assert job["name"] == "chr20 study"
    assert job["description"] == "first run"
    assert job["status"] == "pending"
    assert job["progress_percentage"] == 0
    assert job["service_id"] == world.service.id
    assert job["reference_panel_id"] == world.panel.id
    assert job["input_files"] == [
        {"id": world.file.id, "filename": world.file.filename, "size": world.file.size}
    ]
    assert (job["build"], job["phasing"], job["population"]) == ("hg19", "eagle", "eur")
    assert (job["mode"], job["r2_filter"]) == ("imputation", 0.3)
    assert job["external_job_id"] is None
    assert job["error_message"] is None
    assert job["retry_of"] is None
    assert job["errors"] == []
    assert job["started_at"] is None
    assert job["completed_at"] is None
    assert job["execution_time_seconds"] is None

    async with runtime.db.session() as session:
        row = await session.get(Job, job["id"])
        assert row is not None
        assert row.next_step == "submit"
        assert row.next_run_at == clock.now()
        assert row.lease_owner is None
        assert row.attempts == 0
    updates = await client.get(f"/api/v1/jobs/{job['id']}/status-updates", headers=alice.headers)
    assert updates.json() == [
        {
            "status": "pending",
            "progress_percentage": 0,
            "message": "job created",
            "created_at": job["created_at"],
        }
    ]


async def test_service_and_panel_by_id_and_minimal_fields(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    body = payload(
        world,
        service_id=world.service.id,
        reference_panel_id=world.panel.id,
        description=...,
        population=...,
        mode=...,
        r2_filter=...,
        phasing="no_phasing",
    )
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["mode"], job["population"], job["r2_filter"]) == ("imputation", None, None)
    assert job["description"] == ""


async def test_population_matches_case_insensitively(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    response = await client.post(
        "/api/v1/jobs", json=payload(world, population="EUR", mode="qc_only"), headers=alice.headers
    )
    assert response.status_code == 201
    assert response.json()["population"] == "eur"
    assert response.json()["mode"] == "qc_only"


async def test_several_input_files_keep_their_order(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    extra = [
        await make_file(runtime, alice.id, make_vcf(seed=i), filename=f"chr{i}.vcf.gz")
        for i in (2, 1, 3)
    ]
    ids = [f.id for f in extra]
    response = await client.post(
        "/api/v1/jobs", json=payload(world, input_file_ids=ids), headers=alice.headers
    )
    assert response.status_code == 201
    assert [f["id"] for f in response.json()["input_files"]] == ids
    detail = await client.get(f"/api/v1/jobs/{response.json()['id']}", headers=alice.headers)
    assert [f["filename"] for f in detail.json()["input_files"]] == [
        "chr2.vcf.gz",
        "chr1.vcf.gz",
        "chr3.vcf.gz",
    ]


async def test_anonymous_cannot_create(
    client: httpx.AsyncClient, world: World, runtime: Runtime, settings: Settings
) -> None:
    before = await snapshot(runtime, settings)
    response = await client.post("/api/v1/jobs", json=payload(world))
    assert response.status_code == 401
    response = await client.post(
        "/api/v1/jobs", data={"name": "x"}, files={"input_file": ("a.vcf", b"x")}
    )
    assert response.status_code == 401
    assert await snapshot(runtime, settings) == before


# --- rejections: 422 with a clear message, nothing stored ----------------------------------


async def other_service_panel(runtime: Runtime) -> str:
    other = await make_service(runtime, slug="topmed")
    return (await make_panel(runtime, other, slug="topmed-r3")).slug


REJECTIONS: list[Any] = [
    pytest.param({"service_id": "nope"}, "unknown service 'nope'", id="unknown-service"),
    pytest.param(
        {"reference_panel_id": "nope"}, "unknown reference panel 'nope'", id="unknown-panel"
    ),
    pytest.param({"build": "hg38"}, "offers build hg19 only, not hg38", id="build-not-offered"),
    pytest.param({"population": "sas"}, "does not list population 'sas'", id="population"),
    pytest.param({"input_file_ids": []}, "at least one input file", id="no-inputs"),
    pytest.param(
        {"input_file_ids": ["missing-id"]}, "file missing-id not found", id="no-such-file"
    ),
    pytest.param({"name": "   "}, "needs a name", id="blank-name"),
]


@pytest.mark.parametrize(("changes", "message"), REJECTIONS)
async def test_rejections(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    changes: dict[str, Any],
    message: str,
) -> None:
    before = await snapshot(runtime, settings)
    response = await client.post(
        "/api/v1/jobs", json=payload(world, **changes), headers=alice.headers
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert response.json()["code"] == "invalid_input"
    assert await snapshot(runtime, settings) == before


async def test_duplicate_input_file_is_refused(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    body = payload(world, input_file_ids=[world.file.id, world.file.id])
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert f"file {world.file.id} is listed twice" in response.json()["detail"]


async def test_inactive_service_is_refused(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    service = await make_service(runtime, slug="retired", is_active=False)
    panel = await make_panel(runtime, service)
    body = payload(world, service_id=service.slug, reference_panel_id=panel.slug)
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == "service 'retired' is not active"
    assert await count(runtime, Job) == 0


async def test_panel_of_another_service_is_refused(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    body = payload(world, reference_panel_id=await other_service_panel(runtime))
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert "belongs to another service, not 'michigan'" in response.json()["detail"]
    assert await count(runtime, Job) == 0


async def test_inactive_panel_is_refused(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    panel = await make_panel(runtime, world.service, slug="old-panel", is_active=False)
    body = payload(world, reference_panel_id=panel.slug)
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert "reference panel 'old-panel' is not active" in response.json()["detail"]


async def test_build_the_service_does_not_accept_is_refused(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    service = await make_service(runtime, slug="hg38-only", supported_builds=["hg38"])
    panel = await make_panel(runtime, service, build="hg19")
    body = payload(world, service_id=service.slug, reference_panel_id=panel.slug)
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert "accepts build(s) hg38, not hg19" in response.json()["detail"]


async def test_panel_without_populations_accepts_any(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    panel = await make_panel(runtime, world.service, populations=[])
    body = payload(world, reference_panel_id=panel.slug, population="sas")
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 201
    assert response.json()["population"] == "sas"


async def test_file_larger_than_the_service_accepts_is_refused(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    service = await make_service(runtime, slug="small", max_upload_size=5)
    panel = await make_panel(runtime, service)
    body = payload(world, service_id=service.slug, reference_panel_id=panel.slug)
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert "larger than service 'small' accepts (5 bytes)" in response.json()["detail"]


async def test_someone_elses_file_is_not_revealed(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    admin: Actor,
    runtime: Runtime,
    world: World,
) -> None:
    bobs = await make_file(runtime, bob.id, b"bob's data")
    body = payload(world, input_file_ids=[world.file.id, bobs.id])
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == f"file {bobs.id} not found"
    # Not even an admin may run a job on someone else's upload.
    response = await client.post(
        "/api/v1/jobs", json=payload(world, input_file_ids=[bobs.id]), headers=admin.headers
    )
    assert response.status_code == 422
    assert await count(runtime, Job) == 0


async def test_result_files_are_not_inputs(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    job = await make_job(
        runtime,
        user_id=alice.id,
        service=world.service,
        panel=world.panel,
        files=[world.file],
        status="completed",
    )
    result = await make_file(runtime, alice.id, b"dose", kind="result", job_id=job.id)
    body = payload(world, input_file_ids=[result.id])
    response = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"file {result.id} is a job result; only uploaded files can be job inputs"
    )


async def test_active_job_limit(
    client: httpx.AsyncClient,
    alice: Actor,
    bob: Actor,
    runtime: Runtime,
    world: World,
    settings: Settings,
) -> None:
    for status in ("pending", "running", "cancelling"):
        await make_job(
            runtime,
            user_id=alice.id,
            service=world.service,
            panel=world.panel,
            files=[world.file],
            status=status,
        )
    # Finished jobs do not count.
    for status in ("completed", "failed", "cancelled"):
        await make_job(
            runtime,
            user_id=alice.id,
            service=world.service,
            panel=world.panel,
            files=[world.file],
            status=status,
        )
    before = await snapshot(runtime, settings)
    response = await client.post("/api/v1/jobs", json=payload(world), headers=alice.headers)
    assert response.status_code == 429
    problem = response.json()
    assert problem["code"] == "limit_exceeded"
    assert problem["limit"] == 3
    assert "3 active job(s)" in problem["detail"]
    assert await snapshot(runtime, settings) == before

    # The limit is per user: bob may still create jobs.
    bobs = await make_file(runtime, bob.id)
    response = await client.post(
        "/api/v1/jobs", json=payload(world, input_file_ids=[bobs.id]), headers=bob.headers
    )
    assert response.status_code == 201


BAD_BODIES: list[Any] = [
    pytest.param(b'{"name": "x",', "JSON", id="malformed-json"),
    pytest.param(b"[]", "object", id="not-an-object"),
    pytest.param(b"", "JSON", id="empty"),
]


@pytest.mark.parametrize(("raw", "fragment"), BAD_BODIES)
async def test_malformed_json(
    client: httpx.AsyncClient, alice: Actor, raw: bytes, fragment: str
) -> None:
    response = await client.post(
        "/api/v1/jobs",
        content=raw,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    assert fragment in response.json()["detail"]


BAD_FIELDS: list[Any] = [
    pytest.param({"name": 123}, "name", id="name-type"),
    pytest.param({"input_file_ids": "abc"}, "input_file_ids", id="ids-type"),
    pytest.param({"input_file_ids": [1]}, "input_file_ids.0", id="id-type"),
    pytest.param({"r2_filter": "high"}, "r2_filter", id="r2-type"),
    pytest.param({"r2_filter": 1.5}, "r2_filter", id="r2-high"),
    pytest.param({"r2_filter": -0.1}, "r2_filter", id="r2-low"),
    pytest.param({"phasing": "magic"}, "phasing", id="phasing"),
    pytest.param({"mode": "everything"}, "mode", id="mode"),
    pytest.param({"build": "hg37"}, "build", id="build"),
    pytest.param({"name": "n" * 201}, "name", id="huge-name"),
    pytest.param({"description": "d" * 10_001}, "description", id="huge-description"),
    pytest.param({"service_id": "s" * 5000}, "service_id", id="huge-service"),
    pytest.param({"population": "p" * 33}, "population", id="huge-population"),
    pytest.param({"input_file_ids": ["f"] * 101}, "input_file_ids", id="too-many-files"),
    pytest.param({"owner": "bob"}, "owner", id="unknown-field"),
    pytest.param({"status": "completed"}, "status", id="read-only-field"),
    pytest.param({"name": ...}, "name", id="missing-name"),
    pytest.param({"phasing": ...}, "phasing", id="missing-phasing"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_FIELDS)
async def test_bad_fields(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    changes: dict[str, Any],
    field: str,
) -> None:
    before = await snapshot(runtime, settings)
    response = await client.post(
        "/api/v1/jobs", json=payload(world, **changes), headers=alice.headers
    )
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert await snapshot(runtime, settings) == before


async def test_oversized_json_body_is_413(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.post(
        "/api/v1/jobs",
        content=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_unsupported_content_type(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.post(
        "/api/v1/jobs", content=b"name=x", headers={**alice.headers, "Content-Type": "text/plain"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "unsupported_media_type"


# --- multipart ----------------------------------------------------------------------------


def form(world: World, **changes: Any) -> dict[str, Any]:
    fields = payload(world, input_file_ids=..., **changes)
    return {k: str(v) for k, v in fields.items()}


async def test_create_job_from_a_multipart_form(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, settings: Settings
) -> None:
    chr1 = make_vcf(variants=1_000)
    chr2 = make_vcf(variants=10, seed=2)
    response = await client.post(
        "/api/v1/jobs",
        data={**form(world), "input_file_ids": world.file.id},
        files=[
            ("input_file", ("../chr1.vcf.gz", chr1, "application/gzip")),
            ("input_file", ("chr2.vcf", chr2, "text/plain")),
        ],
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "pending"
    assert job["r2_filter"] == 0.3
    assert job["population"] == "eur"
    names = [f["filename"] for f in job["input_files"]]
    assert names == [world.file.filename, "chr1.vcf.gz", "chr2.vcf"]
    assert [f["size"] for f in job["input_files"]] == [world.file.size, len(chr1), len(chr2)]

    # The uploaded files are the caller's, with their bytes stored.
    async with runtime.db.session() as session:
        uploaded = [await session.get(StoredFile, f["id"]) for f in job["input_files"][1:]]
    for record, content in zip(uploaded, [chr1, chr2], strict=True):
        assert record is not None
        assert record.user_id == alice.id
        assert record.kind == "input"
        assert record.sha256 == hashlib.sha256(content).hexdigest()
        stored = settings.data_dir / "files" / record.storage_key
        assert stored.read_bytes() == content
    assert len(stored_paths(settings)) == 3


async def test_multipart_fields_after_files_and_comma_separated_ids(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    second = await make_file(runtime, alice.id, make_vcf(seed=2))
    boundary = "b0undary"
    parts = [("input_file", "late.vcf", make_vcf(seed=3))] + [
        (k, None, v.encode())
        for k, v in {**form(world), "input_file_ids": f"{world.file.id}, {second.id}"}.items()
    ]
    body = bytearray()
    for name, filename, data in parts:
        body += f"--{boundary}\r\n".encode()
        extra = f'; filename="{filename}"' if filename else ""
        body += f'Content-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    response = await client.post(
        "/api/v1/jobs",
        content=bytes(body),
        headers={**alice.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text
    names = [f["filename"] for f in response.json()["input_files"]]
    assert names == [world.file.filename, second.filename, "late.vcf"]


async def test_empty_file_input_from_a_browser_is_ignored(
    client: httpx.AsyncClient, alice: Actor, world: World, settings: Settings
) -> None:
    """A browser sends an unused file input as an empty part with filename=""."""
    fields = {**form(world), "input_file_ids": world.file.id, "population": "", "r2_filter": ""}
    body = bytearray()
    for name, value in fields.items():
        body += b"--xyz\r\n"
        body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    body += b'--xyz\r\nContent-Disposition: form-data; name="input_file"; filename=""\r\n'
    body += b"Content-Type: application/octet-stream\r\n\r\n\r\n--xyz--\r\n"
    response = await client.post(
        "/api/v1/jobs",
        content=bytes(body),
        headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert len(job["input_files"]) == 1
    assert job["population"] is None
    assert job["r2_filter"] is None
    assert len(stored_paths(settings)) == 1  # only the file the world already had


MULTIPART_REJECTIONS: list[Any] = [
    pytest.param({"reference_panel_id": "nope"}, 422, "unknown reference panel", id="bad-panel"),
    pytest.param({"build": "hg38"}, 422, "offers build hg19 only", id="bad-build"),
    pytest.param({"phasing": "magic"}, 422, "phasing", id="bad-phasing"),
    pytest.param({"r2_filter": "2"}, 422, "r2_filter", id="bad-r2"),
    pytest.param({"owner": "bob"}, 422, "unexpected form field 'owner'", id="unknown-field"),
    pytest.param({"name": "n" * 70_000}, 422, "longer than", id="huge-field"),
    pytest.param({"name": ...}, 422, "name", id="missing-name"),
]


@pytest.mark.parametrize(("changes", "status", "fragment"), MULTIPART_REJECTIONS)
async def test_refused_multipart_job_leaves_no_files(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    changes: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    before = await snapshot(runtime, settings)
    response = await client.post(
        "/api/v1/jobs",
        data=form(world, **changes),
        files=[("input_file", ("chr1.vcf.gz", make_vcf(), "application/gzip"))],
        headers=alice.headers,
    )
    assert response.status_code == status, response.text
    assert fragment in response.text
    assert await snapshot(runtime, settings) == before


async def test_multipart_job_over_the_active_limit_leaves_no_files(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, settings: Settings
) -> None:
    for _ in range(3):
        await make_job(
            runtime, user_id=alice.id, service=world.service, panel=world.panel, files=[world.file]
        )
    before = await snapshot(runtime, settings)
    response = await client.post(
        "/api/v1/jobs",
        data=form(world),
        files={"input_file": ("chr1.vcf.gz", make_vcf(), "application/gzip")},
        headers=alice.headers,
    )
    assert response.status_code == 429
    assert await snapshot(runtime, settings) == before


async def test_multipart_files_over_the_size_limit(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, settings: Settings
) -> None:
    """The limit counts all files of the request together."""
    before = await snapshot(runtime, settings)
    first, second = sized_vcf(LIMIT // 2 + 1), vcf_start(LIMIT // 2 + 1)
    response = await client.post(
        "/api/v1/jobs",
        data=form(world),
        files=[("input_file", ("a.vcf", first)), ("input_file", ("b.vcf", second))],
        headers=alice.headers,
    )
    assert response.status_code == 413
    assert await snapshot(runtime, settings) == before


@pytest.mark.parametrize(
    ("content_type", "body", "fragment"),
    [
        pytest.param("multipart/form-data", b"--x\r\n", "no boundary", id="no-boundary"),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="input_file"; filename="a.vcf"\r\n'
            b"\r\n" + b"data" * 1000,
            "ended before its closing boundary",
            id="truncated",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="input_file"\r\n\r\nx\r\n--xyz--\r\n',
            "must be a file",
            id="file-without-filename",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="name"; filename="a"\r\n\r\n'
            b"x\r\n--xyz--\r\n",
            "plain value",
            id="field-as-file",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n'
            b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\ny\r\n--xyz--\r\n',
            "more than once",
            id="repeated-field",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\xfe\r\n--xyz--\r\n',
            "UTF-8",
            id="not-utf8",
        ),
    ],
)
async def test_malformed_multipart_jobs(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    content_type: str,
    body: bytes,
    fragment: str,
) -> None:
    before = await snapshot(runtime, settings)
    response = await client.post(
        "/api/v1/jobs", content=body, headers={**alice.headers, "Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]
    assert await snapshot(runtime, settings) == before


async def test_openapi_describes_both_request_bodies(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    content = document["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    json_schema = content["application/json"]["schema"]
    assert json_schema["properties"]["build"]["enum"] == ["hg19", "hg38"]
    assert json_schema["additionalProperties"] is False
    form = content["multipart/form-data"]["schema"]["properties"]
    assert form["input_file"]["items"]["format"] == "binary"
    upload = document["paths"]["/api/v1/files"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["required"] == ["file"]
    components = document["components"]["schemas"]
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)):
        assert ref in components, ref


async def test_concurrent_creations_never_exceed_the_active_limit(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    """Six requests at once against a limit of three: exactly three jobs are made."""
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/jobs", json=payload(world, name=f"job {i}"), headers=alice.headers)
            for i in range(6)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201, 201, 429, 429, 429], [r.text for r in responses]
    assert await count(runtime, Job) == 3
