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
    ReferencePanel,
    Service,
    User,
)
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.domain.jobs import TERMINAL, Build, JobMode, Phasing
from imputehub.domain.vcf import LENGTHS, bare_chromosome, has_chr_prefix
from imputehub.engine.panel_store import PanelNotFound, PanelStore
from imputehub.files import records, testdata
from imputehub.files.bgzf import BgzfWriter
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
