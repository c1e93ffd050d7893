"""The end-to-end self-test of a service: a tiny bundled job, followed, its results checked.

Starting one (`start_self_test`, admins only, audited `service_self_test_started`) makes a
real hub job, owned by the admin who asked, that the worker runs like any other:

- on the service's first active panel (by slug), or the panel the admin names;
- with a tiny phased, bgzipped VCF: for a local-engine panel the hub holds, cut from that
  panel (`panel_chunks`: the engine must find the sites it is given); else made by the
  generator behind `imputehub testdata`
  (SAMPLES samples x VARIANTS variants, fixed seed) for the panel's build and one of its
  contigs (chromosome 20 when the panel has it or lists none, else its first autosome or
  X), named as Michigan-type services insist (`20` on hg19, `chr20` on hg38), for other
  services as the panel names it.
  The bytes are streamed straight into the admin's files (no temporary file), checked as
  every upload is, and recorded in the same transaction as the job;
- submitted with the service's PLATFORM credential, never the admin's own: the job is
  created with `credential_source = "platform"`, which `registry.credentials
  .credential_for_job` then keeps for the job's life. A Michigan-type or DNAstack service
  without a platform credential is refused at once (they answer nothing without one); a
  WES server or the built-in engine may need none, and is tested as it is;
- named "self-test of <service name>", its description saying who started it.

A job is a self-test when its start was audited (`audit_log.action =
"service_self_test_started"`, target the job): the mark cannot be forged by giving an
ordinary job the same name. `recent_self_tests` lists them per service from that join.

The report (`report`) reads the job's status history into steps - created, submitted (the
worker's "submitted to ..." update), queued (at the service, after the submission),
running, fetching (the service finished; the hub fetches the results) and the final state -
each with its time, seconds since the start and since the step before; steps the job did
not pass through (a service that runs a job at once is never "queued") have no time. Once
the job completed, its results are checked: files present, their count and sizes, and each
VCF (`.vcf.gz`, `.vcf.bgz`) read from storage in a streaming way - only its first
HEAD_BYTES, until its `#CHROM` line, and its last 28 bytes - to see a BGZF file with a VCF
header and the BGZF end-of-file block. The verdict is "passed" only when the job completed
and every check holds (at least one result file, at least one VCF, every VCF readable);
"failed" when the job failed, was cancelled, or its results do not check out; "running"
while the job is active.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.db.models import (
    AuditEntry,
    Job,
    JobStatusUpdate,
    ReferencePanel,
    Service,
    StoredFile,
    User,
)
from imputehub.domain.errors import ImputehubError, InvalidInput, NotFound
from imputehub.domain.jobs import TERMINAL, Build, JobMode, JobStatus, Phasing
from imputehub.domain.vcf import LENGTHS, bare_chromosome, has_chr_prefix
from imputehub.engine.panel_store import PanelNotFound, PanelStore
from imputehub.files import records, testdata
from imputehub.files.bgzf import BGZF_EOF, BgzfWriter, BlockReader, Compression, CompressionError
from imputehub.files.uploads import UploadBudget, discard, record_uploads, stage_upload
from imputehub.jobs import create
from imputehub.monitoring import audit
from imputehub.registry import credentials, lookup, rules
from imputehub.registry.local_engine import LOCAL_API_TYPE
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

ACTION = "service_self_test_started"
SAMPLES = 50  # Michigan-type services refuse fewer than 20
VARIANTS = 1000
SEED = 1
PREFERRED_CHROMOSOME = "20"  # the chromosome the services' own examples use
# Services that answer nothing without a token; a WES server may run open, and the built-in
# engine runs in the hub's own processes.
CREDENTIAL_REQUIRED = frozenset({"michigan", "dnastack"})
MICHIGAN_NAMING = frozenset({"michigan"})  # services that refuse another chromosome naming
SUBMITTED_PREFIX = "submitted to "  # the worker's note when the service took the job
FETCHING_PREFIX = "finished at "  # the worker's note when the service finished it
VCF_SUFFIXES = (".vcf.gz", ".vcf.bgz")
HEAD_BYTES = 4 * 1024 * 1024  # compressed bytes read at most to find a VCF's #CHROM line
MAX_HEADER_TEXT = 16 * 1024 * 1024  # decompressed header text kept at most
FLUSH_BYTES = 256 * 1024
DEFAULT_RECENT = 10
OWN_FILES_SHOWN = 50
MAX_RECENT = 100

PASSED = "passed"
FAILED = "failed"
RUNNING = "running"

_TERMINAL = frozenset(status.value for status in TERMINAL)


# ---- the bundled input ------------------------------------------------------------------


def input_spec(build: str, contigs: Sequence[object], *, api_type: str) -> testdata.Spec:
    """The tiny VCF for a panel of `build` listing `contigs` (see the module docstring).

    Michigan-type services insist on their own naming (`20` on hg19, `chr20` on hg38) and
    job creation enforces it for them; other services get the panel's own naming.
    """
    lengths = LENGTHS[build]
    named: dict[str, str] = {}
    for contig in contigs:
        text = str(contig).strip()
        bare = bare_chromosome(text)
        if bare in lengths and bare != "Y" and bare not in named:
            named[bare] = text
    # Chromosome 20 unless the panel lists contigs without it.
    bare = PREFERRED_CHROMOSOME if not named or PREFERRED_CHROMOSOME in named else next(iter(named))
    if bare in named and api_type not in MICHIGAN_NAMING:
        chrom = f"chr{bare}" if has_chr_prefix(named[bare]) else bare
    else:
        chrom = f"chr{bare}" if build == Build.HG38 else bare
    return testdata.Spec(samples=SAMPLES, variants=VARIANTS, chrom=chrom, build=build, seed=SEED)


async def input_chunks(spec: testdata.Spec) -> AsyncIterator[bytes]:
    """The file's BGZF bytes, compressed a bounded piece at a time."""
    writer = BgzfWriter()
    pending = bytearray(testdata.header(spec))
    for line in testdata.records(spec):
        pending += line
        if len(pending) >= FLUSH_BYTES:
            yield writer.write(bytes(pending))
            pending.clear()
    yield writer.write(bytes(pending))
    yield writer.close()


PANEL_SAMPLES = 20  # samples taken from a local panel (its first ones, renamed)
PANEL_EVERY = 5  # one site in this many, so the engine has sites to impute
PANEL_SITES = 1000  # sites taken at most, from the panel's first chromosome


async def panel_chunks(vcf: Path) -> AsyncIterator[bytes]:
    """A target VCF cut from a local-engine panel: its first chromosome's sites, one in
    PANEL_EVERY (at most PANEL_SITES), with its first PANEL_SAMPLES samples' phased
    genotypes, so the engine finds every site it is given. The bundled random input would
    share almost no site with a real panel, and Beagle would have nothing to do.

    Reads the panel line by line (a few thousand lines of it), compresses as it goes."""
    writer = BgzfWriter()
    pending = bytearray()
    sites = 0
    chromosome: bytes | None = None
    with gzip.open(vcf, "rb") as panel:
        seen = 0
        for line in panel:
            if line.startswith(b"##"):
                if line.startswith((b"##fileformat", b"##contig", b"##FORMAT=<ID=GT")):
                    pending += line
                continue
            fields = line.rstrip(b"\n").split(b"\t")
            if line.startswith(b"#"):
                names = [b"self_test_%d" % n for n in range(1, PANEL_SAMPLES + 1)]
                pending += b"\t".join(fields[:9] + names[: len(fields) - 9]) + b"\n"
                continue
            if chromosome is None:
                chromosome = fields[0]
            if fields[0] != chromosome or sites >= PANEL_SITES:
                break
            seen += 1
            if (seen - 1) % PANEL_EVERY:
                continue
            pending += b"\t".join([*fields[:8], b"GT", *fields[9 : 9 + PANEL_SAMPLES]]) + b"\n"
            sites += 1
            if len(pending) >= FLUSH_BYTES:
                yield writer.write(bytes(pending))
                pending.clear()
    if sites == 0:
        raise InvalidInput("the local panel has no sites to cut a self-test input from")
    yield writer.write(bytes(pending))
    yield writer.close()


def choose_phasing(service: Service) -> Phasing:
    """The input is phased: no phasing when the service offers that (or says nothing), else
    the first method it offers."""
    offered = rules.offered_phasing(service.api_config or {})
    if not offered or Phasing.NO_PHASING.value in offered:
        return Phasing.NO_PHASING
    for value in offered:
        if value in {member.value for member in Phasing}:
            return Phasing(value)
    return Phasing.NO_PHASING  # nothing we know: job creation says what it offers


# ---- starting one -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Plan:
    service_id: str
    service_slug: str
    service_name: str
    panel_id: str
    panel_slug: str
    build: str
    phasing: Phasing
    spec: testdata.Spec
    # A local-engine panel the hub holds: the input is cut from it (panel_chunks).
    local_panel_vcf: Path | None = None

    @property
    def filename(self) -> str:
        return f"self-test.{self.panel_slug}.vcf.gz" if self.local_panel_vcf else self.spec.filename

    def chunks(self) -> AsyncIterator[bytes]:
        if self.local_panel_vcf is not None:
            return panel_chunks(self.local_panel_vcf)
        return input_chunks(self.spec)

    @property
    def input_summary(self) -> str:
        if self.local_panel_vcf is not None:
            return f"cut from the panel ({PANEL_SAMPLES} of its samples, up to {PANEL_SITES} sites)"
        return f"{SAMPLES} samples, {VARIANTS} variants"


async def _plan(
    session: AsyncSession, service_ref: str, panel_ref: str | None, *, engine_dir: Path
) -> _Plan:
    service = await lookup.get_service(session, service_ref, include_inactive=True)
    if not service.is_active:
        raise InvalidInput(f"service '{service.slug}' is not active", field="service")
    if service.credential_encrypted is None and service.api_type in CREDENTIAL_REQUIRED:
        raise InvalidInput(
            f"service '{service.slug}' has no platform credential: the self-test runs with "
            "it, so set it first",
            code="no_platform_credential",
        )
    panel: ReferencePanel | None
    if panel_ref:
        try:
            panel = await lookup.get_panel(session, panel_ref, service_id=service.id)
        except NotFound:
            raise InvalidInput(f"unknown reference panel '{panel_ref}'", field="panel") from None
        if panel.service_id != service.id:
            raise InvalidInput(
                f"reference panel '{panel.slug}' belongs to another service, not '{service.slug}'",
                field="panel",
            )
    else:
        panel = await session.scalar(
            select(ReferencePanel)
            .where(ReferencePanel.service_id == service.id, ReferencePanel.is_active)
            .order_by(ReferencePanel.slug)
            .limit(1)
        )
        if panel is None:
            raise InvalidInput(
                f"service '{service.slug}' has no active reference panel to test with",
                field="panel",
            )
    if panel.build not in LENGTHS:
        raise InvalidInput(f"reference panel '{panel.slug}' has no known build", field="panel")
    return _Plan(
        service_id=service.id,
        service_slug=service.slug,
        service_name=service.name,
        panel_id=panel.id,
        panel_slug=panel.slug,
        build=panel.build,
        phasing=choose_phasing(service),
        spec=input_spec(panel.build, list(panel.contigs or ()), api_type=service.api_type),
        local_panel_vcf=_local_panel(service, panel, engine_dir),
    )


def _local_panel(service: Service, panel: ReferencePanel, engine_dir: Path) -> Path | None:
    if service.api_type != LOCAL_API_TYPE:
        return None
    store = PanelStore.in_engine_dir(engine_dir)
    try:
        return store.vcf(panel.panel_id) if store.is_offered(panel.panel_id) else None
    except PanelNotFound:  # not a panel id the engine could hold
        return None


async def start_self_test(
    runtime: Runtime,
    admin: User,
    service_ref: str,
    *,
    panel_ref: str | None = None,
    input_file_id: str | None = None,
    origin: audit.Origin | None = None,
    now: datetime,
) -> Job:
    """Create the self-test job of a service (see the module docstring) and wake the worker.

    `input_file_id`: one of the admin's own uploaded files to test with instead of the
    bundled input — for a remote server whose QC wants real panel sites (the bundled VCF's
    random sites share few with a real panel).

    NotFound for an unknown service; PermissionDenied for a non-admin; InvalidInput when
    the service cannot be tested (inactive, no platform credential, no panel) or the job
    would be refused (job creation's own checks, e.g. the admin's active-job limit).
    """
    require_admin(admin)
    async with runtime.db.sessionmaker() as session:
        plan = await _plan(
            session, service_ref, panel_ref, engine_dir=runtime.settings.resolved_engine_dir
        )
    if input_file_id is not None:
        async with runtime.db.sessionmaker() as session:
            own = await records.get_file(session, admin, input_file_id)
            own_name = own.filename
        staged_files = []
    else:
        staged_files = [
            await stage_upload(
                runtime.storage,
                user_id=admin.id,
                client_name=plan.filename,
                chunks=plan.chunks(),
                budget=UploadBudget(runtime.settings.max_upload_size),
                now=now,
            )
        ]
    summary = (
        f"{own_name} (your file)"
        if input_file_id is not None
        else f"{plan.filename} ({plan.input_summary})"
    )
    request = create.JobRequest(
        name=f"self-test of {plan.service_name}",
        description=(
            f"End-to-end self-test of {plan.service_name} started by {admin.username}: "
            f"{summary} on panel "
            f"{plan.panel_slug}, sent with the hub's platform credential."
        ),
        service=plan.service_id,
        reference_panel=plan.panel_id,
        build=plan.build,
        phasing=plan.phasing.value,
        mode=JobMode.IMPUTATION.value,
    )
    try:
        async with runtime.db.session() as session:
            if input_file_id is None:
                stored = await record_uploads(
                    session,
                    user_id=admin.id,
                    staged=staged_files,
                    now=now,
                    quota=runtime.settings.storage_quota_bytes,
                )
                await session.flush()
                input_file_id = stored[0].id
            request = dataclasses.replace(request, input_file_ids=(input_file_id,))
            job = await create.create_job(
                session,
                owner_id=admin.id,
                request=request,
                now=now,
                max_active_jobs=runtime.settings.max_active_jobs_per_user,
                # The worker keeps this source for the job's life.
                credential_source=credentials.PLATFORM,
            )
            await audit.record(
                session,
                action=ACTION,
                actor=admin,
                now=now,
                target_type="job",
                target_id=job.id,
                origin=origin,
                details={
                    "service_id": plan.service_id,
                    "service": plan.service_slug,
                    "panel": plan.panel_slug,
                },
            )
    except BaseException:
        await discard(runtime.storage, staged_files)
        raise
    runtime.wake_workers()  # committed: a worker in this process may start at once
    log.info(
        "service self-test started",
        extra={"action": ACTION, "job_id": job.id, "service_id": plan.service_id},
    )
    return job


# ---- finding them ---------------------------------------------------------------------------


async def _service(session: AsyncSession, admin: User, service_ref: str) -> Service:
    require_admin(admin)
    return await lookup.get_service(session, service_ref, include_inactive=True)


async def recent_self_tests(
    session: AsyncSession, admin: User, service_ref: str, *, limit: int = DEFAULT_RECENT
) -> tuple[Service, list[Job]]:
    """The service and its latest self-test jobs, newest first."""
    service = await _service(session, admin, service_ref)
    limit = max(1, min(limit, MAX_RECENT))
    statement = (
        select(Job)
        .join(AuditEntry, (AuditEntry.target_id == Job.id) & (AuditEntry.action == ACTION))
        .where(AuditEntry.target_type == "job", Job.service_id == service.id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return service, list(await session.scalars(statement))


async def get_self_test(
    session: AsyncSession, admin: User, service_ref: str, job_id: str
) -> tuple[Service, Job]:
    """The service and one of its self-test jobs; NotFound for any other job."""
    service = await _service(session, admin, service_ref)
    job = await session.scalar(
        select(Job)
        .join(AuditEntry, (AuditEntry.target_id == Job.id) & (AuditEntry.action == ACTION))
        .where(AuditEntry.target_type == "job", Job.service_id == service.id, Job.id == job_id)
        .limit(1)
    )
    if job is None:
        raise NotFound(f"no self-test {job_id} of service '{service.slug}'")
    return service, job


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
