"""POST /jobs/check: the dry run of job creation, for files not uploaded yet.

It answers what POST /jobs would answer (the same status, code and words), and writes
nothing: no job, no status update, no file, no upload, no stored bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.config import Settings
from imputehub.db.models import Job, JobStatusUpdate, ReferencePanel, Service, StoredFile, Upload
from imputehub.files.vcf_check import check_bytes
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service
from tests.support.vcf import make_vcf, vcf_text

CHECK = "/api/v1/jobs/check"
ACTIVE_LIMIT = 2
GOOD = make_vcf(samples=25)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_active_jobs_per_user": ACTIVE_LIMIT})


@dataclass
class World:
    michigan: Service
    hrc: ReferencePanel
    file: StoredFile


@pytest.fixture
async def world(runtime: Runtime, alice: Actor) -> World:
    michigan = await make_service(runtime, slug="michigan", api_type="michigan")
    hrc = await make_panel(runtime, michigan, slug="hrc", build="hg19")
    other = await make_service(runtime, slug="topmed")
    await make_panel(runtime, other, slug="topmed-r3", build="hg38")
    await make_panel(runtime, michigan, slug="retired-panel", is_active=False)
    small = await make_service(runtime, slug="small", max_upload_size=100)
    await make_panel(runtime, small, slug="small-panel", build="hg19")
    record = await make_file(runtime, alice.id, GOOD, filename="stored.vcf.gz")
    return World(michigan=michigan, hrc=hrc, file=record)


def job(**changes: Any) -> dict[str, Any]:
    """A job body; `...` removes a field."""
    body: dict[str, Any] = {
        "name": "chr20 study",
        "service_id": "michigan",
        "reference_panel_id": "hrc",
        "build": "hg19",
        "phasing": "eagle",
        "population": "eur",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def planned(content: bytes, filename: str = "study.vcf.gz") -> dict[str, Any]:
    """A file as the CLI describes it before uploading: name, size, its own report."""
    return {
        "filename": filename,
        "size": len(content),
        "report": check_bytes([content]).to_dict(),
    }


@dataclass
class Snapshot:
    rows: dict[str, int]
    paths: set[str]


async def snapshot(runtime: Runtime, settings: Settings) -> Snapshot:
    rows = {}
    async with runtime.db.session() as session:
        for model in (Job, JobStatusUpdate, StoredFile, Upload):
            statement = select(func.count()).select_from(model)
            rows[model.__name__] = int(await session.scalar(statement) or 0)
    root = settings.data_dir
    paths = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return Snapshot(rows=rows, paths={p for p in paths if not p.endswith((".db", "-wal", "-shm"))})


# --- a job that would be accepted -------------------------------------------------------------


async def test_a_fitting_job_is_described_and_nothing_is_written(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime, settings: Settings
) -> None:
    before = await snapshot(runtime, settings)
    body = job(
        input_file_ids=[world.file.id],
        files=[planned(GOOD, "chr21.vcf.gz")],
        description="  first run ",
        population="EUR",
        r2_filter=0.3,
    )
    response = await client.post(CHECK, json=body, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "chr20 study",
        "description": "first run",
        "service_id": world.michigan.id,
        "service_slug": "michigan",
        "reference_panel_id": world.hrc.id,
        "reference_panel_slug": "hrc",
        "build": "hg19",
        "phasing": "eagle",
        "population": "eur",
        "mode": "imputation",
        "r2_filter": 0.3,
        "input_files": [
            {"id": world.file.id, "filename": "stored.vcf.gz", "size": world.file.size},
            {"id": None, "filename": "chr21.vcf.gz", "size": len(GOOD)},
        ],
    }
    assert await snapshot(runtime, settings) == before
    listed = await client.get("/api/v1/jobs", headers=alice.headers)
    assert listed.json()["total"] == 0


async def test_files_still_to_upload_are_enough(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    files = [planned(GOOD, f"chr{i}.vcf.gz") for i in (1, 2)]
    response = await client.post(CHECK, json=job(files=files), headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["input_files"] == [
        {"id": None, "filename": "chr1.vcf.gz", "size": len(GOOD)},
        {"id": None, "filename": "chr2.vcf.gz", "size": len(GOOD)},
    ]


async def test_a_file_without_a_report_is_judged_by_its_size_only(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    files = [{"filename": "study.vcf.gz", "size": 10}]
    response = await client.post(
        CHECK, json=job(service_id="small", reference_panel_id="small-panel", files=files),
        headers=alice.headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    files = [{"filename": "study.vcf.gz", "size": 101}]
    response = await client.post(
        CHECK, json=job(service_id="small", reference_panel_id="small-panel", files=files),
        headers=alice.headers,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "file 'study.vcf.gz' (101 bytes) is larger than service 'small' accepts (100 bytes)"
    )


async def test_a_file_over_the_hubs_own_upload_limit_is_refused_as_its_upload_would_be(
    client: httpx.AsyncClient, alice: Actor, world: World, settings: Settings
) -> None:
    limit = settings.max_upload_size
    files = [{"filename": "huge.vcf.gz", "size": limit + 1}]
    response = await client.post(CHECK, json=job(files=files), headers=alice.headers)
    init = await client.post(
        "/api/v1/uploads/init", json={"filename": "huge.vcf.gz", "size": limit + 1},
        headers=alice.headers,
    )  # fmt: skip
    assert (response.status_code, init.status_code) == (413, 413)
    assert response.json()["code"] == init.json()["code"] == "payload_too_large"
    assert (
        response.json()["detail"]
        == init.json()["detail"]
        == (f"the file is larger than the limit of {limit} bytes")
    )


# --- qc_only needs no phasing; imputation does ------------------------------------------------


async def test_a_qc_only_job_needs_no_phasing_and_gets_the_servers_default(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    body = job(phasing=..., mode="qc_only", files=[planned(make_vcf(phased=False))])
    checked = await client.post(CHECK, json=body, headers=alice.headers)
    assert checked.status_code == 200, checked.text
    assert (checked.json()["mode"], checked.json()["phasing"]) == ("qc_only", "eagle")

    body = job(phasing=..., mode="qc_only", input_file_ids=[world.file.id])
    created = await client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert created.status_code == 201, created.text
    assert (created.json()["mode"], created.json()["phasing"]) == ("qc_only", "eagle")


async def test_imputation_without_phasing_is_refused_naming_the_field(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    for path, body in (
        (CHECK, job(phasing=..., files=[planned(GOOD)])),
        ("/api/v1/jobs", job(phasing=..., input_file_ids=[world.file.id])),
    ):
        response = await client.post(path, json=body, headers=alice.headers)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["detail"] == (
            "phasing is required in imputation mode: choose one of eagle, beagle, shapeit, "
            "no_phasing (only a qc_only job may leave it out)"
        )
        assert problem["field"] == "phasing"
        assert [error["field"] for error in problem["errors"]] == ["phasing"]
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


# --- every refusal of POST /jobs, foreseen --------------------------------------------------

REFUSALS: list[Any] = [
    pytest.param({"service_id": "nope"}, GOOD, id="unknown-service"),
    pytest.param({"reference_panel_id": "nope"}, GOOD, id="unknown-panel"),
    pytest.param({"reference_panel_id": "topmed-r3"}, GOOD, id="panel-of-another-service"),
    pytest.param({"reference_panel_id": "retired-panel"}, GOOD, id="inactive-panel"),
    pytest.param({"build": "hg38"}, make_vcf(build="hg38"), id="build-not-offered"),
    pytest.param({"population": "sas"}, GOOD, id="population"),
    pytest.param({"name": "   "}, GOOD, id="blank-name"),
    pytest.param(
        {"service_id": "small", "reference_panel_id": "small-panel"}, GOOD, id="too-large"
    ),
    pytest.param({}, make_vcf(samples=12), id="too-few-samples"),
    pytest.param({}, make_vcf(chrom="chr20", contig=False), id="chr-prefix-on-hg19"),
    pytest.param({}, make_vcf(build="hg38"), id="build-of-the-data"),
    pytest.param({"phasing": "no_phasing"}, make_vcf(phased=False), id="unphased"),
    pytest.param({}, vcf_text(), id="file-errors"),
]


@pytest.mark.parametrize(("changes", "content"), REFUSALS)
async def test_the_check_refuses_as_job_creation_does(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    changes: dict[str, Any],
    content: bytes,
) -> None:
    before = await snapshot(runtime, settings)
    checked = await client.post(
        CHECK, json=job(files=[planned(content)], **changes), headers=alice.headers
    )
    assert await snapshot(runtime, settings) == before

    record = await make_file(runtime, alice.id, content, filename="study.vcf.gz")
    created = await client.post(
        "/api/v1/jobs", json=job(input_file_ids=[record.id], **changes), headers=alice.headers
    )
    assert created.status_code == 422, created.text
    assert checked.status_code == created.status_code, checked.text
    fields = ("code", "detail", "field")
    assert {k: checked.json().get(k) for k in fields} == {k: created.json().get(k) for k in fields}


async def test_the_service_s_own_panel_id_names_the_panel_of_the_service_asked(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    # Two services offer a panel under the same id (e.g. two Michigan servers).
    mirror = await make_service(runtime, slug="mirror", api_type="michigan")
    twin = await make_panel(runtime, mirror, slug="mirror-hrc", panel_id=world.hrc.panel_id)
    files = [planned(GOOD)]

    at_michigan = await client.post(
        CHECK, json=job(reference_panel_id=world.hrc.panel_id, files=files), headers=alice.headers
    )
    at_mirror = await client.post(
        CHECK,
        json=job(service_id="mirror", reference_panel_id=world.hrc.panel_id, files=files),
        headers=alice.headers,
    )

    assert at_michigan.status_code == 200, at_michigan.text
    assert at_michigan.json()["reference_panel_id"] == world.hrc.id
    assert at_mirror.status_code == 200, at_mirror.text
    assert at_mirror.json()["reference_panel_id"] == twin.id
    assert at_mirror.json()["service_slug"] == "mirror"


async def test_the_active_job_limit_is_foreseen(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, world: World, runtime: Runtime
) -> None:
    for status in ("pending", "running"):
        await make_job(
            runtime,
            user_id=alice.id,
            service=world.michigan,
            panel=world.hrc,
            files=[world.file],
            status=status,
        )
    checked = await client.post(CHECK, json=job(files=[planned(GOOD)]), headers=alice.headers)
    created = await client.post(
        "/api/v1/jobs", json=job(input_file_ids=[world.file.id]), headers=alice.headers
    )
    assert checked.status_code == created.status_code == 429
    assert checked.json()["code"] == created.json()["code"] == "limit_exceeded"
    assert checked.json()["detail"] == created.json()["detail"]
    assert checked.json()["limit"] == ACTIVE_LIMIT
    # Bob has no active job.
    response = await client.post(CHECK, json=job(files=[planned(GOOD)]), headers=bob.headers)
    assert response.status_code == 200, response.text


async def test_the_clients_report_is_advice_the_real_job_is_checked_again(
    client: httpx.AsyncClient, alice: Actor, world: World, runtime: Runtime
) -> None:
    content = make_vcf(samples=12)
    flattering = {**planned(content), "report": check_bytes([GOOD]).to_dict()}
    checked = await client.post(CHECK, json=job(files=[flattering]), headers=alice.headers)
    assert checked.status_code == 200, checked.text

    record = await make_file(runtime, alice.id, content, filename="study.vcf.gz")
    created = await client.post(
        "/api/v1/jobs", json=job(input_file_ids=[record.id]), headers=alice.headers
    )
    assert created.status_code == 422
    assert "it has 12 sample(s)" in created.json()["detail"]


async def test_someone_elses_file_is_not_revealed(
    client: httpx.AsyncClient, alice: Actor, bob: Actor, runtime: Runtime, world: World
) -> None:
    bobs = await make_file(runtime, bob.id, GOOD)
    body = job(input_file_ids=[bobs.id], files=[planned(GOOD)])
    response = await client.post(CHECK, json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == f"file {bobs.id} not found"


@pytest.mark.parametrize(
    ("ids", "files", "message"),
    [
        pytest.param(0, 0, "the job needs at least one input file", id="none"),
        pytest.param(50, 51, "a job takes at most 100 input files", id="101-in-all"),
    ],
)
async def test_the_number_of_files_counts_both_kinds(
    client: httpx.AsyncClient, alice: Actor, world: World, ids: int, files: int, message: str
) -> None:
    body = job(
        input_file_ids=[f"id-{i}" for i in range(ids)],
        files=[{"filename": f"f{i}.vcf.gz", "size": 1} for i in range(files)],
    )
    response = await client.post(CHECK, json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == message


# --- who may ask, and what is not a request ------------------------------------------------


async def test_only_logged_in_users_may_check(client: httpx.AsyncClient, world: World) -> None:
    body = job(files=[planned(GOOD)])
    response = await client.post(CHECK, json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    response = await client.post(CHECK, json=body, headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401


BAD_BODIES: list[Any] = [
    pytest.param(b'{"name": "x",', "", id="malformed-json"),
    pytest.param(b"[]", "", id="not-an-object"),
    pytest.param(json.dumps(job(files="study.vcf.gz")).encode(), "files", id="files-not-a-list"),
    pytest.param(
        json.dumps(job(files=[{"filename": "a.vcf.gz"}])).encode(), "files.0.size", id="no-size"
    ),
    pytest.param(
        json.dumps(job(files=[{"filename": "a.vcf.gz", "size": -1}])).encode(),
        "files.0.size",
        id="negative-size",
    ),
    pytest.param(
        json.dumps(job(files=[{"filename": "", "size": 5}])).encode(),
        "files.0.filename",
        id="empty-name",
    ),
    pytest.param(
        json.dumps(job(files=[{"filename": "a", "size": 5, "path": "/etc"}])).encode(),
        "files.0.path",
        id="unknown-file-field",
    ),
    pytest.param(
        json.dumps(job(files=[{**planned(GOOD), "report": {"samples": "many"}}])).encode(),
        "files.0.report.samples",
        id="report-samples",
    ),
    pytest.param(
        json.dumps(
            job(files=[{**planned(GOOD), "report": {"samples": 30, "phased_share": 2}}])
        ).encode(),
        "files.0.report.phased_share",
        id="report-share",
    ),
    pytest.param(
        json.dumps(
            job(files=[{**planned(GOOD), "report": {"samples": 30, "problems": [{}]}}])
        ).encode(),
        "files.0.report.problems.0.severity",
        id="report-problem",
    ),
    pytest.param(json.dumps(job(phasing="magic", files=[])).encode(), "phasing", id="phasing"),
]


@pytest.mark.parametrize(("raw", "field"), BAD_BODIES)
async def test_malformed_bodies_are_422(
    client: httpx.AsyncClient,
    alice: Actor,
    world: World,
    runtime: Runtime,
    settings: Settings,
    raw: bytes,
    field: str,
) -> None:
    before = await snapshot(runtime, settings)
    response = await client.post(
        CHECK, content=raw, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"
    if field:
        assert field in [error["field"] for error in response.json()["errors"]]
    assert await snapshot(runtime, settings) == before


async def test_only_json_is_taken(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.post(
        CHECK, data={"name": "x"}, files={"input_file": ("a.vcf.gz", GOOD)}, headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "unsupported_media_type"


# --- hostile sizes: refused early, with a short answer --------------------------------------


async def test_a_ten_megabyte_report_is_413(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    report = {**check_bytes([GOOD]).to_dict(), "padding": "x" * (10 * 1024 * 1024)}
    body = json.dumps(job(files=[{**planned(GOOD), "report": report}])).encode()
    response = await client.post(
        CHECK, content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "at most 1048576 bytes" in response.json()["detail"]


async def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"name": "'
        while sent < 50 * 1024 * 1024:
            sent += 64 * 1024
            yield b"x" * 64 * 1024

    response = await client.post(
        CHECK, content=endless(), headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert sent < 4 * 1024 * 1024  # read no further than the limit (and a few chunks)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            job(files=[{"filename": "f.vcf.gz", "size": 1}] * 10_000), "files", id="10000-files"
        ),
        pytest.param(
            job(files=[{**planned(GOOD), "report": {"samples": 30, "chromosomes": ["1"] * 5000}}]),
            "files.0.report.chromosomes",
            id="5000-chromosomes",
        ),
        pytest.param(
            job(
                files=[
                    {
                        **planned(GOOD),
                        "report": {"samples": 30, "problems": [{"severity": "error"}] * 5000},
                    }
                ]
            ),
            "files.0.report.problems",
            id="5000-problems",
        ),
    ],
)
async def test_too_many_items_are_one_short_422(
    client: httpx.AsyncClient, alice: Actor, world: World, body: dict[str, Any], field: str
) -> None:
    raw = json.dumps(body).encode()
    assert len(raw) < 1024 * 1024  # within the size limit: the item limits must hold
    response = await client.post(
        CHECK, content=raw, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert len(response.content) < 2000
