"""The Michigan connector against the emulated Cloudgene 3 server, over real HTTP."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.connectors.base import (
    ExternalRef,
    ExternalState,
    ExternalStatus,
    HealthStatus,
    InputFile,
    JobSpec,
    ResultFile,
    ServiceInfo,
)
from imputehub.connectors.michigan import MichiganConnector
from imputehub.connectors.michigan.answers import JOB_LIMIT_RETRY_SECONDS
from imputehub.domain.errors import (
    CredentialRejected,
    JobLost,
    NotFound,
    PermanentServiceError,
    ServiceBusy,
    ServiceInMaintenance,
    TransientServiceError,
)
from tests.support.michigan_emulator import (
    APP_ID,
    DOSE,
    EXCLUDED,
    INFO,
    QC_REPORT,
    MichiganEmulator,
    bgzipped_vcf,
    running_emulator,
)

TOKEN = "alice-api-token-0123456789"
SECRET = "Zk3q9Xw2Lm8Pb4Rt6Vy1Hn5Jc7Ds0Fa2"
PANEL = "apps@1000g-phase-3-v5@2.0.0"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN)
        yield server


@pytest.fixture
def service(emulator: MichiganEmulator) -> ServiceInfo:
    return ServiceInfo(id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url)


connector = MichiganConnector()


def input_file(name: str, content: bytes) -> InputFile:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    return InputFile(
        name=name, size=len(content), sha256=hashlib.sha256(content).hexdigest(), open=chunks
    )


def spec(job_id: str = "job-hub-1", **fields: object) -> JobSpec:
    values: dict[str, object] = {
        "job_id": job_id,
        "name": "study 1",
        "panel_id": PANEL,
        "build": "hg19",
        "phasing": "eagle",
        "population": "eur",
        "mode": "imputation",
        "r2_filter": 0.3,
        "inputs": [input_file("chr20.vcf.gz", bgzipped_vcf())],
        "secret": SECRET,
    }
    values.update(fields)
    return JobSpec(**values)  # type: ignore[arg-type]


class MemoryKept:
    """Our KeptDownload, in memory: what a StorageSink keeps in storage."""

    def __init__(self) -> None:
        self.saved: dict[str, Any] | None = None
        self.segments: dict[int, bytes] = {}

    async def notes(self) -> dict[str, Any] | None:
        return None if self.saved is None else dict(self.saved)

    async def save_notes(self, notes: Mapping[str, Any]) -> None:
        self.saved = json.loads(json.dumps(notes))

    async def write_segment(self, index: int, chunks: AsyncIterator[bytes]) -> int:
        data = b"".join([chunk async for chunk in chunks])
        self.segments[index] = data
        return len(data)

    async def read_segment(self, index: int) -> AsyncIterator[bytes]:
        if index not in self.segments:
            raise NotFound("no such segment")
        yield self.segments[index]

    async def drop_segments(self) -> None:
        self.segments.clear()

    async def forget(self) -> None:
        self.segments.clear()
        self.saved = None

    def content(self) -> bytes:
        return b"".join(self.segments[i] for i in sorted(self.segments))


class MemorySink:
    """Our ResultSink, keeping what it is given (the results here are small)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.marks: dict[str, list[ResultFile]] = {}
        self.kept: dict[str, MemoryKept] = {}

    def kept_download(self, source: str) -> MemoryKept:
        return self.kept.setdefault(source, MemoryKept())

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        data = b"".join([chunk async for chunk in chunks])
        self.files[name] = data
        return ResultFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def fetched(self, source: str) -> list[ResultFile] | None:
        return self.marks.get(source)

    async def mark_fetched(self, source: str, files: Sequence[ResultFile]) -> None:
        self.marks[source] = list(files)


async def submit(service: ServiceInfo, job: JobSpec | None = None) -> ExternalRef:
    job = job or spec()
    return await connector.submit(service, job, TOKEN, job.job_id)


async def poll_until(
    service: ServiceInfo, ref: ExternalRef, done: Callable[[ExternalStatus], bool]
) -> list[ExternalStatus]:
    seen: list[ExternalStatus] = []
    for _ in range(10):
        seen.append(await connector.poll(service, ref, TOKEN))
        if done(seen[-1]):
            return seen
    raise AssertionError(f"still {seen[-1].state} after 10 polls")


def finished(status: ExternalStatus) -> bool:
    return status.state not in (ExternalState.QUEUED, ExternalState.RUNNING)


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# ---- submit ---------------------------------------------------------------------------


async def test_submit_sends_exactly_the_fields_the_server_knows(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    first, second = bgzipped_vcf(samples=25), bgzipped_vcf(samples=30)
    job = spec(inputs=[input_file("a.chr20.vcf.gz", first), input_file("b.chr20.vcf.gz", second)])

    ref = await submit(service, job)

    [submission] = emulator.accepted("job-hub-1")
    assert submission["fields"] == {
        "refpanel": [PANEL],
        "build": ["hg19"],
        "phasing": ["eagle"],
        "population": ["eur"],
        "mode": ["imputation"],
        "r2Filter": ["0.3"],
        "password": [SECRET],
        "job-name": ["job-hub-1"],
    }
    assert [(f["field"], f["filename"], f["sha256"], f["size"]) for f in submission["files"]] == [
        ("files", "a.chr20.vcf.gz", hashlib.sha256(first).hexdigest(), len(first)),
        ("files", "b.chr20.vcf.gz", hashlib.sha256(second).hexdigest(), len(second)),
    ]
    assert ref.external_id == emulator.job_named("job-hub-1").id
    assert ref.secret == SECRET


@pytest.mark.parametrize(
    ("api_config", "sent"),
    [({"aes_encryption": True}, ["true"]), ({"aes_encryption": False}, None), ({}, None)],
    ids=["on", "off", "unset"],
)
async def test_aes_encryption_is_a_checkbox_sent_only_when_on(
    emulator: MichiganEmulator, api_config: dict[str, object], sent: list[str] | None
) -> None:
    service = ServiceInfo(
        id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url,
        api_config=api_config,
    )  # fmt: skip

    await submit(service)

    [submission] = emulator.accepted()
    assert submission["fields"].get("aesEncryption") == sent


async def test_the_server_refuses_a_field_it_does_not_know(emulator: MichiganEmulator) -> None:
    # What the connector must never do, checked on the emulator itself.
    async with httpx.AsyncClient(base_url=emulator.base_url) as client:
        response = await client.post(
            "/api/v2/jobs/submit/imputationserver2",
            headers={"X-Auth-Token": TOKEN},
            data={"refpanel": PANEL, "aesEncryption": "true", "encryption": "aes"},
            files={"files": ("chr20.vcf.gz", bgzipped_vcf())},
        )

    assert response.status_code == 400
    assert response.json() == {"message": "Parameter 'encryption' not found.", "success": False}
    assert emulator.jobs == {}


async def test_unset_options_are_left_out_and_qc_only_is_qconly(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    await submit(service, spec(population=None, r2_filter=None, mode="qc_only"))

    [submission] = emulator.accepted()
    assert submission["fields"] == {
        "refpanel": [PANEL],
        "build": ["hg19"],
        "phasing": ["eagle"],
        "mode": ["qconly"],
        "password": [SECRET],
        "job-name": ["job-hub-1"],
    }


async def test_find_recognises_a_job_by_its_hub_id_across_pages(emulator: MichiganEmulator) -> None:
    emulator.job_limit = 100
    service = ServiceInfo(
        id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url,
        api_config={"max_jobs_per_user": 100},
    )  # fmt: skip
    for index in range(17):
        await submit(service, spec(job_id=f"job-{index}"))

    # Newest first, 15 a page: job-0 is on page 2.
    found = await connector.find(service, "job-0", TOKEN)
    assert found is not None
    assert found.external_id == emulator.job_named("job-0").id
    assert await connector.find(service, "job-never-sent", TOKEN) is None
    assert ("GET", "/api/v2/jobs") in emulator.calls


async def test_find_after_an_interrupted_submit_stops_at_jobs_older_than_the_intent(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    # A user with a long history: 60 finished jobs from last week, four pages of them.
    emulator.occupy("alice", 60, age_seconds=7 * 24 * 3600, state=4)
    intent = datetime.now(UTC)
    await submit(service, spec(job_id="job-after-intent"))

    found = await connector.find(service, "job-after-intent", TOKEN, submitted_after=intent)
    assert found is not None
    assert found.external_id == emulator.job_named("job-after-intent").id

    # Never sent: the first page's week-old jobs end the search (one request, not five).
    before = emulator.calls.count(("GET", "/api/v2/jobs"))
    assert await connector.find(service, "job-never-sent", TOKEN, submitted_after=intent) is None
    assert emulator.calls.count(("GET", "/api/v2/jobs")) - before == 1

    # A server clock up to an hour behind the hub's still finds the job.
    early = intent + timedelta(minutes=50)
    assert await connector.find(service, "job-after-intent", TOKEN, submitted_after=early)


# ---- following ------------------------------------------------------------------------


async def test_a_job_is_followed_from_the_queue_to_success(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await submit(service)

    # The emulator moves a job on one step with every status call.
    statuses = await poll_until(service, ref, finished)

    assert [s.state for s in statuses] == [
        ExternalState.RUNNING,
        ExternalState.RUNNING,
        ExternalState.COMPLETED,
    ]
    assert statuses[-1].progress == 100.0
    assert statuses[0].progress is not None
    assert 0 < statuses[0].progress < 100
    # Step messages arrive as HTML; the hub gets plain text.
    assert statuses[0].logs == (
        "Input Validation: Samples: 50\nChromosomes: 20\nBuild: hg19",
        "Quality Control: Remaining sites in total: 400",
    )
    assert "Phasing and Imputation: Imputation of chr20 & export of results" in statuses[1].logs
    assert statuses[-1].logs[-1] == "Summary: Imputation finished.\nResults are ready."


async def test_a_waiting_job_reports_its_place_in_the_queue(emulator: MichiganEmulator) -> None:
    emulator.job_limit = 5
    service = ServiceInfo(
        id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url,
        api_config={"max_jobs_per_user": 5},
    )  # fmt: skip
    emulator.steps_to_finish = 100  # jobs never move on from running
    await submit(service, spec(job_id="job-earlier"))
    ref = await submit(service)
    emulator.jobs[ref.external_id].status_calls = -5  # still waiting after this call

    status = await connector.poll(service, ref, TOKEN)

    assert status.state is ExternalState.QUEUED
    assert status.queue_position == 2  # one job ahead of it
    assert status.progress == 0.0


async def test_a_failed_job_carries_the_service_s_own_message(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.fail_job("job-hub-1", "At least 20 samples must be uploaded.")
    ref = await submit(service)

    final = (await poll_until(service, ref, finished))[-1]

    assert final.state is ExternalState.FAILED
    assert final.message == "Error: At least 20 samples must be uploaded."
    assert "Input Validation: Error: At least 20 samples must be uploaded." in final.logs


async def test_a_retired_job_fails_because_its_results_are_gone(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.retire_job("job-hub-1")
    ref = await submit(service)

    final = (await poll_until(service, ref, finished))[-1]

    assert final.state is ExternalState.FAILED
    assert final.message == "the service deleted the results"
    with pytest.raises(PermanentServiceError, match="the service deleted the results"):
        await connector.fetch_results(service, ref, TOKEN, MemorySink())
    assert emulator.downloads == []


async def test_cancel_stops_the_job_at_the_service_and_may_be_repeated(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await submit(service)

    await connector.cancel(service, ref, TOKEN)
    await connector.cancel(service, ref, TOKEN)  # already cancelled: harmless

    assert ("GET", f"/api/v2/jobs/{ref.external_id}/cancel") in emulator.calls
    assert (await connector.poll(service, ref, TOKEN)).state is ExternalState.CANCELLED


# ---- results --------------------------------------------------------------------------


async def completed(service: ServiceInfo) -> ExternalRef:
    ref = await submit(service)
    await poll_until(service, ref, finished)
    return ref


@pytest.mark.parametrize("redirect", [False, True], ids=["direct", "redirected"])
async def test_results_are_downloaded_once_each_and_the_zip_decrypted(
    service: ServiceInfo, emulator: MichiganEmulator, redirect: bool
) -> None:
    emulator.redirect = redirect
    ref = await completed(service)
    sink = MemorySink()

    stored = await connector.fetch_results(service, ref, TOKEN, sink)

    assert sorted(f.name for f in stored) == [
        "chr20.dose.vcf.gz",
        "chr20.info.gz",
        "qc_report.txt",
        "snps-excluded.txt",
    ]
    assert gzip.decompress(sink.files["chr20.dose.vcf.gz"]) == DOSE
    assert gzip.decompress(sink.files["chr20.info.gz"]) == INFO
    assert sink.files["qc_report.txt"] == QC_REPORT
    assert sink.files["snps-excluded.txt"] == EXCLUDED
    # Each file spent exactly one download, with no size probe; log outputs are skipped.
    assert sorted(d["name"] for d in emulator.downloads) == [
        "chr_20.zip",
        "qc_report.txt",
        "snps-excluded.txt",
    ]
    assert {m for m, path in emulator.calls if path.startswith("/share/")} == {"GET"}


async def test_a_download_dropped_by_the_server_ends_the_attempt_and_is_kept(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    # Another GET would spend another download, and the server would send it all again:
    # the attempt ends; the retry (test_michigan_downloads.py) takes it from there.
    ref = await completed(service)
    emulator.drop_after["chr_20.zip"] = 700
    sink = MemorySink()

    with pytest.raises(
        TransientServiceError,
        match=r"download of chr_20\.zip broke off after 700 of \d+ bytes .*9 more downloads",
    ):
        await connector.fetch_results(service, ref, TOKEN, sink)

    assert [d["range"] for d in emulator.downloads] == [None]
    [kept] = [k for source, k in sink.kept.items() if source.endswith("chr_20.zip")]
    assert len(kept.content()) == 700


async def test_aes_zips_are_decrypted_with_the_job_s_password(emulator: MichiganEmulator) -> None:
    service = ServiceInfo(
        id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url,
        api_config={"aes_encryption": True},
    )  # fmt: skip
    ref = await completed(service)
    sink = MemorySink()

    await connector.fetch_results(service, ref, TOKEN, sink)

    [zipped] = [blob for (_, name), blob in emulator.blobs.items() if name == "chr_20.zip"]
    with zipfile.ZipFile(zipped.path) as archive:  # 99: WinZip AES, which zipfile cannot read
        assert {member.compress_type for member in archive.infolist()} == {99}
    assert gzip.decompress(sink.files["chr20.dose.vcf.gz"]) == DOSE
    assert gzip.decompress(sink.files["chr20.info.gz"]) == INFO


@pytest.mark.parametrize("aes", [False, True], ids=["zipcrypto", "aes"])
async def test_a_zip_that_will_not_decrypt_fails_plainly(
    emulator: MichiganEmulator, aes: bool
) -> None:
    service = ServiceInfo(
        id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url,
        api_config={"aes_encryption": aes},
    )  # fmt: skip
    ref = await completed(service)
    wrong = ExternalRef(external_id=ref.external_id, secret="NotTheRightPassword123")

    with pytest.raises(PermanentServiceError, match=r"could not decrypt chr_20\.zip"):
        await connector.fetch_results(service, wrong, TOKEN, MemorySink())


async def test_a_retried_fetch_skips_the_files_already_stored(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    emulator.download_failures["qc_report.txt"] = 1
    sink = MemorySink()

    with pytest.raises(TransientServiceError, match=r"download of qc_report\.txt .* HTTP 500"):
        await connector.fetch_results(service, ref, TOKEN, sink)
    stored = await connector.fetch_results(service, ref, TOKEN, sink)

    assert sorted(f.name for f in stored) == [
        "chr20.dose.vcf.gz",
        "chr20.info.gz",
        "qc_report.txt",
        "snps-excluded.txt",
    ]
    assert [d["name"] for d in emulator.downloads] == [
        "chr_20.zip",
        "qc_report.txt",
        "snps-excluded.txt",
    ]
    assert sink.files["qc_report.txt"] == QC_REPORT


async def test_used_up_downloads_are_reported_not_retried(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.download_count = 0
    ref = await completed(service)

    with pytest.raises(PermanentServiceError, match="downloads are used up"):
        await connector.fetch_results(service, ref, TOKEN, MemorySink())


# ---- errors ---------------------------------------------------------------------------


async def test_an_expired_or_unknown_token_is_rejected(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.add_token("old-token", expires_in_days=-1)

    with pytest.raises(CredentialRejected, match="invalid or expired"):
        await connector.submit(service, spec(), "old-token", "job-hub-1")
    with pytest.raises(CredentialRejected):
        await connector.find(service, "job-hub-1", "no-such-token")
    assert emulator.accepted() == []


async def test_at_the_job_limit_nothing_is_uploaded_until_a_slot_frees(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    await submit(service, spec(job_id="job-a"))
    await submit(service, spec(job_id="job-b"))
    uploaded = emulator.submit_bytes

    with pytest.raises(ServiceBusy, match="Only 2 jobs per user") as caught:
        await submit(service, spec(job_id="job-c"))

    assert caught.value.retry_after == JOB_LIMIT_RETRY_SECONDS
    assert "2 are waiting or running" in caught.value.message
    assert emulator.submit_posts() == 2
    assert emulator.submit_bytes == uploaded  # not one byte of job-c
    emulator.job_named("job-a").state = 4  # a slot frees
    await submit(service, spec(job_id="job-c"))
    assert [s["fields"]["job-name"] for s in emulator.submissions] == [
        ["job-a"],
        ["job-b"],
        ["job-c"],
    ]
    assert [s["status"] for s in emulator.submissions] == [200, 200, 200]


async def test_active_jobs_behind_newer_finished_ones_still_count(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.occupy("alice", 2)  # running for days...
    emulator.occupy("alice", 15, state=4)  # ...while 15 newer jobs finished: on page 2

    with pytest.raises(ServiceBusy, match="Only 2 jobs per user"):
        await submit(service)

    assert emulator.submit_posts() == 0
    assert emulator.submit_bytes == 0


async def test_the_limit_comes_from_api_config(emulator: MichiganEmulator) -> None:
    emulator.like_topmed()  # 3 jobs per user
    service = ServiceInfo(
        id="svc-1", slug="topmed", api_type="michigan", base_url=emulator.base_url,
        api_config={"max_jobs_per_user": 3},
    )  # fmt: skip
    emulator.occupy("alice", 2)

    await submit(service, spec(job_id="job-third"))
    with pytest.raises(ServiceBusy, match="Only 3 jobs per user"):
        await submit(service, spec(job_id="job-fourth"))

    assert [s["fields"]["job-name"] for s in emulator.submissions] == [["job-third"]]


async def test_a_limit_the_hub_does_not_know_is_still_answered_after_the_upload(
    emulator: MichiganEmulator,
) -> None:
    # The admin says 5, the server allows 2: the server's own answer, after the upload,
    # still makes the job wait.
    service = ServiceInfo(
        id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url,
        api_config={"max_jobs_per_user": 5},
    )  # fmt: skip
    emulator.occupy("alice", 2)

    with pytest.raises(ServiceBusy, match="Only 2 jobs per user") as caught:
        await submit(service)

    assert caught.value.retry_after == JOB_LIMIT_RETRY_SECONDS
    assert [s["status"] for s in emulator.submissions] == [400]


async def test_in_maintenance_nothing_is_uploaded_until_the_service_is_back(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.maintenance = True

    with pytest.raises(ServiceInMaintenance, match="maintenance"):
        await submit(service)

    assert emulator.submit_posts() == 0
    assert emulator.submit_bytes == 0
    health = await connector.check_health(service)
    assert health.status is HealthStatus.MAINTENANCE

    emulator.maintenance = False
    job = spec()
    await submit(service, job)
    assert len(emulator.accepted()) == 1
    assert emulator.submit_posts() == 1
    assert emulator.submit_bytes > sum(f.size for f in job.inputs)


@pytest.mark.parametrize("refusal", ["maintenance", "job limit"])
async def test_the_server_reads_the_whole_upload_before_it_refuses(
    emulator: MichiganEmulator, refusal: str
) -> None:
    # Why the connector asks first, checked on the emulator itself: the refusal comes only
    # after every byte has been sent.
    if refusal == "maintenance":
        emulator.maintenance = True
    else:
        emulator.occupy("alice", 2)
    content = bgzipped_vcf(samples=200)
    async with httpx.AsyncClient(base_url=emulator.base_url) as client:
        response = await client.post(
            "/api/v2/jobs/submit/imputationserver2",
            headers={"X-Auth-Token": TOKEN},
            data={"refpanel": PANEL},
            files={"files": ("chr20.vcf.gz", content)},
        )

    assert response.status_code == (503 if refusal == "maintenance" else 400)
    assert emulator.submit_bytes > len(content)
    [refused] = emulator.submissions
    assert refused["files"][0]["size"] == len(content)
    assert len(emulator.jobs) == (0 if refusal == "maintenance" else 2)  # no new job


async def test_server_errors_and_network_failures_are_transient(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await submit(service)
    emulator.status_failures = [500]

    with pytest.raises(TransientServiceError, match="HTTP 500"):
        await connector.poll(service, ref, TOKEN)
    assert (await connector.poll(service, ref, TOKEN)).state is not None

    gone = ServiceInfo(id="svc-2", slug="gone", api_type="michigan", base_url=closed_port())
    with pytest.raises(TransientServiceError, match="could not reach the service"):
        await connector.poll(gone, ref, TOKEN)


async def test_an_unknown_job_is_lost(service: ServiceInfo) -> None:
    with pytest.raises(JobLost, match="job-19990101-000000-001"):
        await connector.poll(service, ExternalRef(external_id="job-19990101-000000-001"), TOKEN)


async def test_other_refusals_are_permanent_with_the_server_s_message(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    with pytest.raises(PermanentServiceError, match="Reference panel 'apps@nope@1' not found"):
        await submit(service, spec(panel_id="apps@nope@1"))
    other_app = ServiceInfo(
        id="svc-3",
        slug="hla",
        api_type="michigan",
        base_url=emulator.base_url,
        api_config={"app": "imputationserver2-hla"},
    )
    with pytest.raises(PermanentServiceError, match="Application 'imputationserver2-hla'"):
        await submit(other_app)


# ---- discovery, health, credentials ---------------------------------------------------


async def test_panels_are_read_from_the_server_with_their_populations(
    service: ServiceInfo,
) -> None:
    panels = {p.panel_id: p for p in await connector.list_panels(service, TOKEN)}

    assert sorted(panels) == [
        "apps@1000g-phase-3-v5@2.0.0",
        "apps@hapmap-2@2.0.0",
        "apps@topmed-r3@1.0.0",
    ]
    thousand = panels["apps@1000g-phase-3-v5@2.0.0"]
    assert thousand.display_name == "1000 Genomes Phase 3 (Version 5) (GRCh37/hg19)"
    assert thousand.build == "hg19"
    assert thousand.populations == ("eur", "afr", "amr", "eas", "sas", "mixed", "off")
    assert panels["apps@hapmap-2@2.0.0"].populations == ("eur", "mixed", "off")
    assert panels["apps@topmed-r3@1.0.0"].populations == ("all",)
    assert panels["apps@topmed-r3@1.0.0"].build == "hg38"
    # The app's choices, the same for every panel.
    assert {p.phasing for p in panels.values()} == {("beagle", "eagle", "no_phasing")}
    assert {p.r2_filters for p in panels.values()} == {(0.0, 0.001, 0.1, 0.2, 0.3)}


async def test_a_server_like_topmed_offers_no_beagle(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.like_topmed()

    panels = await connector.list_panels(service, TOKEN)

    assert {p.phasing for p in panels} == {("eagle", "no_phasing")}


async def test_server_info_app_params_and_counters_need_no_token(
    emulator: MichiganEmulator,
) -> None:
    # What Cloudgene 3 serves anonymously; the job list is not among it.
    async with httpx.AsyncClient(base_url=emulator.base_url) as client:
        server = await client.get("/api/v2/server")
        app = await client.get(f"/api/v2/server/apps/{APP_ID}")
        counters = await client.get("/api/v2/server/counters")
        jobs = await client.get("/api/v2/jobs")

    assert server.status_code == 200
    assert server.json()["user"] is None
    assert server.json()["maintenace"] is False
    assert app.status_code == 200
    [population] = [p for p in app.json()["params"] if p["id"] == "population"]
    assert population["type"] == "binded_list"
    assert population["bind"] == "refpanel"
    assert population["values"][0] == {
        "key": "apps@1000g-phase-3-v5@2.0.0",
        "label": "1000 Genomes Phase 3 (Version 5) (GRCh37/hg19)",
        "value": None,
        "values": [
            {"key": p, "value": p.upper()}
            for p in ("eur", "afr", "amr", "eas", "sas", "mixed", "off")
        ],
    }
    assert counters.status_code == 200
    assert counters.json()["queue"] == {"size": 0}
    assert jobs.status_code == 401


async def test_health_reports_response_time_or_why_not(service: ServiceInfo) -> None:
    health = await connector.check_health(service)
    assert health.status is HealthStatus.HEALTHY
    assert health.response_time_ms is not None

    gone = ServiceInfo(id="svc-2", slug="gone", api_type="michigan", base_url=closed_port())
    down = await connector.check_health(gone)
    assert down.status is HealthStatus.UNHEALTHY
    assert down.message is not None
    assert "could not reach" in down.message


async def test_a_token_is_verified_with_its_expiry(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    checked = await connector.verify_credential(service, TOKEN)
    assert checked.valid is True
    assert checked.expires_at is not None
    in_30_days = datetime.now(UTC) + timedelta(days=30)
    assert abs((checked.expires_at - in_30_days).total_seconds()) < 3600

    wrong = await connector.verify_credential(service, "no-such-token")
    assert wrong.valid is False
    assert wrong.message == "Invalid API Token."
