"""Pre-flight VCF checks through the API: on upload, in the file record, at job creation."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from imputehub.config import Settings
from imputehub.db.models import Job, ReferencePanel, Service, StoredFile
from imputehub.files import bgzf
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_panel, make_service
from tests.support.vcf import make_vcf, vcf_text


@dataclass
class World:
    michigan: Service
    michigan_panel: ReferencePanel
    local: Service
    local_panel: ReferencePanel


@pytest.fixture
async def world(runtime: Runtime) -> World:
    michigan = await make_service(runtime, slug="michigan", api_type="michigan")
    local = await make_service(runtime, slug="local", api_type="local")
    return World(
        michigan=michigan,
        michigan_panel=await make_panel(runtime, michigan, slug="hrc", build="hg19"),
        local=local,
        local_panel=await make_panel(runtime, local, slug="local-panel", build="hg19"),
    )


def stored_paths(settings: Settings) -> set[str]:
    root = settings.data_dir / "files"
    return (
        {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else set()
    )


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def upload(
    client: httpx.AsyncClient, actor: Actor, name: str, content: bytes
) -> httpx.Response:
    return await client.post(
        "/api/v1/files", files={"file": (name, content, "application/gzip")}, headers=actor.headers
    )


def job_body(service: str, panel: str, file_ids: list[str], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "chr20 study",
        "service_id": service,
        "reference_panel_id": panel,
        "input_file_ids": file_ids,
        "build": "hg19",
        "phasing": "eagle",
        "population": "eur",
    }
    body.update(changes)
    return body


# --- upload: the report is stored and shown -------------------------------------------------


async def test_upload_stores_the_report_and_the_record_shows_it(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await upload(client, alice, "study.vcf.gz", make_vcf(samples=25, variants=40))
    assert response.status_code == 201, response.text
    report = response.json()["validation"]
    assert report["format"] == "bgzf"
    assert (report["samples"], report["variants"], report["chromosomes"]) == (25, 40, ["20"])
    assert (report["build"], report["phased_share"], report["problems"]) == ("hg19", 1.0, [])

    shown = await client.get(f"/api/v1/files/{response.json()['id']}", headers=alice.headers)
    assert shown.json()["validation"] == report
    listed = await client.get("/api/v1/files", headers=alice.headers)
    assert listed.json()["items"][0]["validation"] == report


async def test_a_file_with_errors_is_stored_with_them(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await upload(client, alice, "study.vcf", vcf_text())
    assert response.status_code == 201, response.text
    report = response.json()["validation"]
    assert report["format"] == "uncompressed"
    assert report["problems"] == [
        {
            "severity": "error",
            "code": "uncompressed",
            "message": "the file is not compressed; imputation servers need a bgzipped VCF: "
            "compress it with `bgzip`",
        }
    ]


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        pytest.param(b"%PDF-1.7\n" + bytes(range(256)) * 40, "not_vcf", "not a VCF", id="pdf"),
        pytest.param(b"sample,genotype\nA,0/1\n", "not_vcf", "(found 'sample,genotype')", id="csv"),
        pytest.param(make_vcf(variants=400)[:-3000], "truncated_gzip", "truncated", id="truncated"),
        pytest.param(
            gzip.compress(b"\x00" * 10_000), "not_vcf", "binary data", id="gzipped-binary"
        ),
        pytest.param(b"##fileformat=VCFv4.2\n", "bad_header", "#CHROM", id="header-only-meta"),
    ],
)
async def test_unreadable_files_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    alice: Actor,
    runtime: Runtime,
    settings: Settings,
    content: bytes,
    code: str,
    fragment: str,
) -> None:
    response = await upload(client, alice, "study.vcf.gz", content)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_vcf"
    assert body["detail"].startswith("'study.vcf.gz' is not a VCF the hub can use: ")
    assert fragment in body["detail"]
    assert body["report"]["fatal"] is True
    assert [p["code"] for p in body["report"]["problems"]] == [code]
    assert await count(runtime, StoredFile) == 0
    assert stored_paths(settings) == set()


async def test_junk_is_refused_without_reading_all_of_it(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, settings: Settings
) -> None:
    """Not a VCF from its first line on: the upload stops there, not at its end."""
    boundary = "vcf-boundary"
    sent = 0

    async def body() -> Any:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.vcf"\r\n\r\n'
        ).encode()
        for _ in range(200):
            sent += 1
            yield b"MZ this is a program, not a VCF\n" * 2048

    response = await client.post(
        "/api/v1/files",
        content=body(),
        headers={**alice.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_vcf"
    assert sent < 200
    assert stored_paths(settings) == set()


async def test_multipart_job_with_an_unreadable_file_keeps_nothing(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, settings: Settings, world: World
) -> None:
    fields = job_body("michigan", "hrc", [])
    fields.pop("input_file_ids")
    response = await client.post(
        "/api/v1/jobs",
        data=fields,
        files=[
            ("input_file", ("good.vcf.gz", make_vcf(), "application/gzip")),
            ("input_file", ("bad.vcf.gz", b"not a vcf\n", "application/gzip")),
        ],
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_vcf"
    assert "'bad.vcf.gz'" in response.json()["detail"]
    assert (await count(runtime, Job), await count(runtime, StoredFile)) == (0, 0)
    assert stored_paths(settings) == set()


async def test_multipart_job_files_carry_their_report(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    fields = job_body("michigan", "hrc", [])
    fields.pop("input_file_ids")
    response = await client.post(
        "/api/v1/jobs",
        data=fields,
        files=[("input_file", ("chr20.vcf.gz", make_vcf(samples=21), "application/gzip"))],
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    file_id = response.json()["input_files"][0]["id"]
    record = await client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
    assert record.json()["validation"]["samples"] == 21


# --- job creation: refused before anything is queued ----------------------------------------


REFUSALS = [
    pytest.param(
        "michigan",
        {"content": make_vcf(compression="none")},
        {},
        "file 'study.vcf.gz': the file has errors: the file is not compressed",
        id="errors",
    ),
    pytest.param(
        "michigan",
        {"content": make_vcf(samples=30, chrom="20", build="hg38")},
        {},
        "file 'study.vcf.gz': the file looks like hg38 data (from its ##contig lengths), but "
        "the job's build is hg19",
        id="build-differs",
    ),
    pytest.param(
        "michigan",
        {"content": make_vcf(samples=12)},
        {},
        "file 'study.vcf.gz': it has 12 sample(s). At least 20 samples must be uploaded.",
        id="too-few-samples",
    ),
    pytest.param(
        "michigan",
        {"content": make_vcf(chrom="chr20", contig=False)},
        {},
        "file 'study.vcf.gz': Your upload data contains chromosome 'chr20'. This is not a valid "
        "hg19 encoding.",
        id="chr-prefix-on-hg19",
    ),
    pytest.param(
        "michigan",
        {"content": make_vcf(phased=False)},
        {"phasing": "no_phasing"},
        "file 'study.vcf.gz': Your input data is unphased. Please select an algorithm for phasing.",
        id="unphased-without-phasing",
    ),
    pytest.param(
        "local",
        {"content": make_vcf(phased=False)},
        {"phasing": "no_phasing"},
        "Your input data is unphased.",
        id="unphased-on-any-service",
    ),
    pytest.param(
        "michigan",
        {"validation": None},
        {},
        "file 'study.vcf.gz': the file was not checked; upload it again",
        id="never-checked",
    ),
    pytest.param(
        "michigan",
        {
            "content": gzip.compress(
                vcf_text(samples=20) + b"21\t5\t.\tA\tG\t.\t.\t.\tGT" + b"\t0|1" * 20 + b"\n"
            )
        },
        {},
        "the file has errors: the file is gzip-compressed but not with bgzip; recompress with "
        "`bgzip`; The provided VCF file contains more than one chromosome.",
        id="first-errors-named",
    ),
]


@pytest.mark.parametrize(("service", "file_fields", "changes", "message"), REFUSALS)
async def test_job_creation_refuses_unfit_inputs(
    client: httpx.AsyncClient,
    alice: Actor,
    runtime: Runtime,
    world: World,
    service: str,
    file_fields: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    record = await make_file(runtime, alice.id, filename="study.vcf.gz", **file_fields)
    panel = "hrc" if service == "michigan" else "local-panel"
    response = await client.post(
        "/api/v1/jobs",
        json=job_body(service, panel, [record.id], **changes),
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert message in body["detail"], body["detail"]
    assert body["code"] == "input_file_rejected"
    assert body["field"] == "input_file_ids"
    if record.validation is not None:
        assert body["report"] == record.validation
    assert await count(runtime, Job) == 0


ACCEPTED = [
    pytest.param("local", {"content": make_vcf(samples=5)}, {}, id="few-samples-elsewhere"),
    pytest.param(
        "michigan", {"content": make_vcf(phased=False)}, {"phasing": "eagle"}, id="unphased-eagle"
    ),
    pytest.param(
        "michigan",
        {"content": make_vcf(phased=False)},
        {"phasing": "no_phasing", "mode": "qc_only"},
        id="unphased-qc-only",
    ),
    pytest.param(
        "michigan", {"content": make_vcf(chrom="20", contig=False)}, {}, id="build-unknown"
    ),
    pytest.param(
        "michigan",
        {"content": make_vcf()[: -len(bgzf.BGZF_EOF)]},
        {},
        id="warnings-only",
    ),
    pytest.param(
        "local",
        {"content": make_vcf(chrom="chr20", build="hg19")},
        {},
        id="chr-prefix-elsewhere",
    ),
]


@pytest.mark.parametrize(("service", "file_fields", "changes"), ACCEPTED)
async def test_job_creation_accepts_fit_inputs(
    client: httpx.AsyncClient,
    alice: Actor,
    runtime: Runtime,
    world: World,
    service: str,
    file_fields: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    record = await make_file(runtime, alice.id, **file_fields)
    panel = "hrc" if service == "michigan" else "local-panel"
    response = await client.post(
        "/api/v1/jobs",
        json=job_body(service, panel, [record.id], **changes),
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"


async def test_every_input_is_checked_and_the_bad_one_is_named(
    client: httpx.AsyncClient, alice: Actor, runtime: Runtime, world: World
) -> None:
    good = await make_file(runtime, alice.id, filename="chr20.vcf.gz")
    bad = await make_file(runtime, alice.id, make_vcf(samples=3), filename="chr21.vcf.gz")
    response = await client.post(
        "/api/v1/jobs", json=job_body("michigan", "hrc", [good.id, bad.id]), headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("file 'chr21.vcf.gz': it has 3 sample(s).")
    assert await count(runtime, Job) == 0


async def test_a_file_uploaded_through_the_api_makes_a_job(
    client: httpx.AsyncClient, alice: Actor, world: World
) -> None:
    uploaded = await upload(client, alice, "chr20.vcf.gz", make_vcf(samples=20))
    assert uploaded.status_code == 201, uploaded.text
    response = await client.post(
        "/api/v1/jobs",
        json=job_body("michigan", "hrc", [uploaded.json()["id"]], phasing="no_phasing"),
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
