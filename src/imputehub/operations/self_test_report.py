"""What a service self-test shows (operations/self_test.py starts and finds them): its
report — the steps with their times, the results read back, the verdict — and the data of
the console's self-test page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from imputehub.db.models import (
    Job,
    JobStatusUpdate,
    ReferencePanel,
    StoredFile,
    User,
)
from imputehub.domain.errors import ImputehubError
from imputehub.domain.jobs import JobStatus
from imputehub.files.bgzf import BGZF_EOF, BlockReader, Compression, CompressionError
from imputehub.operations.self_test import (
    _TERMINAL,
    FAILED,
    FETCHING_PREFIX,
    HEAD_BYTES,
    MAX_HEADER_TEXT,
    OWN_FILES_SHOWN,
    PASSED,
    RUNNING,
    SUBMITTED_PREFIX,
    VCF_SUFFIXES,
    get_self_test,
    recent_self_tests,
)
from imputehub.runtime import Runtime

# ---- the report -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the job's way; `at` None when the job did not (yet) pass through it."""

    name: str
    at: datetime | None
    seconds_from_start: float | None
    seconds_from_previous: float | None
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class ResultCheck:
    """One result file as found in storage."""

    filename: str
    size: int
    vcf: bool
    ok: bool
    problem: str | None = None


@dataclass(frozen=True, kw_only=True)
class Report:
    job_id: str
    service_slug: str
    service_name: str
    panel_slug: str | None
    status: str
    progress: float
    verdict: str  # passed | failed | running
    message: str  # one sentence: why, for a person or a monitoring log
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    total_seconds: float
    steps: tuple[Step, ...]
    results: tuple[ResultCheck, ...]

    @property
    def result_bytes(self) -> int:
        return sum(item.size for item in self.results)


def _seconds(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


def steps_of(created_at: datetime, updates: Sequence[JobStatusUpdate]) -> tuple[Step, ...]:
    """The job's steps from its status history (in order of the rows)."""
    found: dict[str, JobStatusUpdate] = {}
    submitted_index: int | None = None
    for index, row in enumerate(updates):
        if "created" not in found:
            found["created"] = row
        if submitted_index is None and row.message.startswith(SUBMITTED_PREFIX):
            submitted_index = index
            found["submitted"] = row
        elif (
            row.status == JobStatus.QUEUED.value
            and submitted_index is not None
            and "queued" not in found
        ):
            found["queued"] = row
        if row.status == JobStatus.RUNNING.value and "running" not in found:
            found["running"] = row
        if row.message.startswith(FETCHING_PREFIX) and "fetching" not in found:
            found["fetching"] = row
        if row.status in _TERMINAL and "final" not in found:
            found["final"] = row
    final = found.get("final")
    names = ("created", "submitted", "queued", "running", "fetching", "final")
    start = found["created"].created_at if "created" in found else created_at
    steps: list[Step] = []
    previous: datetime | None = None
    for name in names:
        reached = found.get(name)
        label = name
        if name == "final":
            label = final.status if final is not None else JobStatus.COMPLETED.value
        at = (
            reached.created_at
            if reached is not None
            else (created_at if name == "created" else None)
        )
        steps.append(
            Step(
                name=label,
                at=at,
                seconds_from_start=None if at is None else _seconds(at, start),
                seconds_from_previous=(
                    None if at is None or previous is None else _seconds(at, previous)
                ),
                message=reached.message if reached is not None else "",
            )
        )
        previous = at or previous
    return tuple(steps)


def is_vcf(filename: str) -> bool:
    return filename.lower().endswith(VCF_SUFFIXES)


async def check_vcf(runtime: Runtime, storage_key: str, size: int) -> str | None:
    """None when the stored file reads as a bgzipped VCF with a header; else the problem.

    Reads only the file's first bytes (at most HEAD_BYTES, stopping at its `#CHROM` line)
    and its last 28: never the whole file.
    """
    if size < len(BGZF_EOF):
        return "the file is too short to be a bgzipped VCF"
    reader = BlockReader()
    text = bytearray()
    head = runtime.storage.read(storage_key, start=0, end=min(size, HEAD_BYTES))
    try:
        try:
            async for chunk in head:
                for piece in reader.feed(chunk):
                    text += piece[: max(0, MAX_HEADER_TEXT - len(text))]
                if reader.compression is not Compression.BGZF:
                    return "the file is not bgzipped (BGZF)"
                if _has_columns(text):
                    break
        finally:
            # Stopped early: let the storage close what it opened now, not at collection.
            close = getattr(head, "aclose", None)
            if close is not None:
                await close()
        tail = b"".join([c async for c in runtime.storage.read(storage_key, start=size - 28)])
    except CompressionError as exc:
        return f"the file cannot be decompressed: {exc.message}"
    except ImputehubError as exc:
        return f"the file cannot be read: {exc.message}"
    if reader.compression is not Compression.BGZF:
        return "the file is not bgzipped (BGZF)"
    if not text.startswith(b"##fileformat=VCF"):
        return "the file does not start with a VCF header (##fileformat=VCF...)"
    if not _has_columns(text):
        return "the file has no #CHROM header line"
    if tail != BGZF_EOF:
        return "the file lacks the BGZF end-of-file block (cut short?)"
    return None


def _has_columns(text: bytes | bytearray) -> bool:
    start = text.find(b"\n#CHROM\t")
    return start >= 0 and text.find(b"\n", start + 1) >= 0


async def _check_results(runtime: Runtime, job: Job) -> tuple[ResultCheck, ...]:
    async with runtime.db.sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(StoredFile)
                .where(StoredFile.job_id == job.id, StoredFile.kind == "result")
                .order_by(StoredFile.filename)
            )
        )
    checks: list[ResultCheck] = []
    for row in rows:
        vcf = is_vcf(row.filename)
        problem = await check_vcf(runtime, row.storage_key, row.size) if vcf else None
        checks.append(
            ResultCheck(
                filename=row.filename, size=row.size, vcf=vcf, ok=problem is None, problem=problem
            )
        )
    return tuple(checks)


def verdict_of(status: str, error: str | None, results: Sequence[ResultCheck]) -> tuple[str, str]:
    """The verdict and its one-sentence reason."""
    if status not in _TERMINAL:
        return RUNNING, f"the job is {status}"
    if status != JobStatus.COMPLETED.value:
        reason = f": {error}" if error else ""
        return FAILED, f"the job {status}{reason}"
    if not results:
        return FAILED, "the job completed without result files"
    bad = [item for item in results if not item.ok]
    if bad:
        return FAILED, f"result {bad[0].filename} does not check out: {bad[0].problem}"
    if not any(item.vcf for item in results):
        return FAILED, "the job completed without a VCF result"
    vcfs = sum(1 for item in results if item.vcf)
    return PASSED, f"the job completed and its {vcfs} VCF result(s) read as bgzipped VCFs"


async def report(runtime: Runtime, admin: User, service_ref: str, job_id: str) -> Report:
    """The self-test's report (see the module docstring); NotFound for any other job."""
    async with runtime.db.sessionmaker() as session:
        service, job = await get_self_test(session, admin, service_ref, job_id)
        panel = await session.get(ReferencePanel, job.reference_panel_id)
        updates = list(
            await session.scalars(
                select(JobStatusUpdate)
                .where(JobStatusUpdate.job_id == job.id)
                .order_by(JobStatusUpdate.id)
            )
        )
        service_slug, service_name = service.slug, service.name
    return await build_report(
        runtime,
        job,
        updates,
        service_slug=service_slug,
        service_name=service_name,
        panel_slug=panel.slug if panel is not None else None,
    )


async def build_report(
    runtime: Runtime,
    job: Job,
    updates: Sequence[JobStatusUpdate],
    *,
    service_slug: str,
    service_name: str,
    panel_slug: str | None,
) -> Report:
    steps = steps_of(job.created_at, updates)
    results = await _check_results(runtime, job) if job.status == "completed" else ()
    verdict, message = verdict_of(job.status, job.error_message, results)
    final = steps[-1].at
    now = runtime.clock.now()
    end = final if final is not None and job.status in _TERMINAL else now
    return Report(
        job_id=job.id,
        service_slug=service_slug,
        service_name=service_name,
        panel_slug=panel_slug,
        status=job.status,
        progress=job.progress,
        verdict=verdict,
        message=message,
        error=job.error_message,
        created_at=job.created_at,
        finished_at=final if job.status in _TERMINAL else None,
        total_seconds=max(0.0, _seconds(end, steps[0].at or job.created_at)),
        steps=steps,
        results=results,
    )


# ---- the console's page ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PanelChoice:
    id: str
    slug: str
    display_name: str
    build: str


@dataclass(frozen=True, kw_only=True)
class PastTest:
    job_id: str
    status: str
    created_at: datetime
    seconds: float | None  # created to finished; None while it runs


@dataclass(frozen=True, kw_only=True)
class FileChoice:
    id: str
    filename: str
    size: int


@dataclass(frozen=True, kw_only=True)
class SelfTestPage:
    """What the console shows of a service's self-tests: its panels to choose from, its
    latest self-tests, and one report in full (the asked-for one, else the latest)."""

    service_slug: str
    service_name: str
    api_type: str
    panels: tuple[PanelChoice, ...]
    own_files: tuple[FileChoice, ...]  # the admin's latest uploads, to test with instead
    recent: tuple[PastTest, ...]
    shown: Report | None


async def page(
    runtime: Runtime, admin: User, service_ref: str, *, job_id: str | None = None
) -> SelfTestPage:
    """The page's data; NotFound for an unknown service, or a job that is not one of its
    self-tests."""
    async with runtime.db.sessionmaker() as session:
        service, jobs = await recent_self_tests(session, admin, service_ref)
        panels = await session.scalars(
            select(ReferencePanel)
            .where(ReferencePanel.service_id == service.id, ReferencePanel.is_active)
            .order_by(ReferencePanel.slug)
        )
        choices = tuple(
            PanelChoice(id=p.id, slug=p.slug, display_name=p.display_name, build=p.build)
            for p in panels
        )
        slug, name, api_type = service.slug, service.name, service.api_type
        files = await session.scalars(
            select(StoredFile)
            .where(StoredFile.user_id == admin.id, StoredFile.kind == "input")
            .order_by(StoredFile.created_at.desc())
            .limit(OWN_FILES_SHOWN)
        )
        own_files = tuple(FileChoice(id=f.id, filename=f.filename, size=f.size) for f in files)
    recent = tuple(
        PastTest(
            job_id=job.id,
            status=job.status,
            created_at=job.created_at,
            seconds=(
                _seconds(job.completed_at, job.created_at)
                if job.completed_at is not None and job.status in _TERMINAL
                else None
            ),
        )
        for job in jobs
    )
    wanted = job_id or (recent[0].job_id if recent else None)
    shown = await report(runtime, admin, slug, wanted) if wanted else None
    return SelfTestPage(
        service_slug=slug,
        service_name=name,
        api_type=api_type,
        panels=choices,
        own_files=own_files,
        recent=recent,
        shown=shown,
    )
