"""Which services and panels an uploaded file fits, before any job is made of it.

For each file and each panel a user may choose: fits, or does not with the reasons. The
reasons are the refusals POST /jobs would give (jobs/validation.py, create.fits_service,
the credential's panel access), each rule asked on its own so a file collects every
reason, not only the first; plus one advisory rule of its own: a panel that lists its
chromosomes and shares none with the file would leave nothing to impute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import ReferencePanel, Service, StoredFile, User
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import JobMode, Phasing
from imputehub.domain.vcf import bare_chromosome
from imputehub.jobs import create, validation
from imputehub.registry import credentials, panels, rules, services

# What to do about a report's problems whose own message does not say it already.
FIXES: dict[str, str] = {
    "empty_file": "Upload the VCF itself, not an empty file.",
    "corrupt_gzip": "Compress the VCF again with `bgzip` and upload the new file.",
    "bad_header": "Repair the header (`bcftools view -h` shows it) and upload again.",
    "no_fileformat": "Put a '##fileformat=VCFv4.2' line first (`bcftools view` writes one).",
    "no_samples": "Upload the VCF with its genotype columns, not a sites-only file.",
    "duplicate_samples": "Give every sample its own ID (`bcftools reheader --samples`).",
    "no_variants": "Check the export: the file needs variant records, not only a header.",
    "malformed_records": "Normalise the file (`bcftools norm`) or fix the lines named.",
    "no_genotypes": "Export genotypes (the GT field), not only dosages or sites.",
    "missing_eof": "Upload the whole file; recompress with `bgzip` if it is complete.",
    "duplicate_records": "Drop the duplicates with `bcftools norm --rm-dup exact`.",
    "build_encoding": "Rename the chromosomes (`bcftools annotate --rename-chrs`): hg19 "
    "without 'chr', hg38 with it.",
    "build_unknown": "Check that the file's build is the panel's; add ##contig lines with "
    "lengths so it can be told.",
}


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One file against one service's panel: `reasons` empty means it fits."""

    service: Service
    panel: ReferencePanel
    reasons: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, kw_only=True)
class FileFit:
    file: StoredFile
    fixes: dict[str, str]  # problem code in the file's report -> what to do
    verdicts: tuple[Verdict, ...]


def shared_chromosomes(report: Mapping[str, Any], panel_contigs: Sequence[str]) -> str | None:
    """Advisory: why no chromosome of the file is in the panel, or None (also when either
    side's list is unknown). Names compare without 'chr': the local engine renames them."""
    chromosomes = [str(c) for c in report.get("chromosomes") or ()]
    if not chromosomes or not panel_contigs:
        return None
    covered = {bare_chromosome(str(c)) for c in panel_contigs}
    if any(bare_chromosome(c) in covered for c in chromosomes):
        return None
    return (
        f"the panel covers chromosome(s) {', '.join(sorted(covered))}; "
        f"the file has {', '.join(chromosomes[:5])}{' ...' if len(chromosomes) > 5 else ''}"
    )


def judge(
    *,
    filename: str,
    size: int,
    report: Mapping[str, Any] | None,
    service: Service,
    panel: ReferencePanel,
    phasing: str | None,
    mode: str,
) -> tuple[str, ...]:
    """Every reason POST /jobs would refuse this file with this panel (plus the advisory
    chromosome rule); () when it fits. `phasing` None: not chosen yet, not judged."""
    reasons: list[str] = []
    prefix = f"file '{filename}': "

    def collect(check: Callable[[], object]) -> None:
        try:
            check()
        except InvalidInput as exc:
            reasons.append(exc.message.removeprefix(prefix))

    config = service.api_config or {}
    collect(
        lambda: validation.build(
            panel.build,
            panel_slug=panel.slug,
            panel_build=panel.build,
            service_builds=service.supported_builds or (),
        )
    )
    collect(lambda: create.fits_service(filename, size, service))
    if phasing is not None:
        collect(
            lambda: validation.offered_phasing(
                Phasing(phasing), service_slug=service.slug, offered=rules.offered_phasing(config)
            )
        )
    collect(
        lambda: validation.input_report(
            filename,
            report,
            build=panel.build,
            phasing=phasing or validation.QC_ONLY_PHASING.value,
            mode=mode,
            api_type=service.api_type,
        )
    )
    if report is not None:
        missing = shared_chromosomes(report, [str(c) for c in panel.contigs or ()])
        if missing is not None:
            reasons.append(missing)
    return tuple(reasons)


async def candidates(session: AsyncSession, user: User) -> list[tuple[Service, ReferencePanel]]:
    """The panels a user may choose now, with their services (active and healthy ones)."""
    offered = {s.id: s for s in await services.list_services(session, user)}
    listed = await panels.list_panels(session, user)
    return [(offered[p.service_id], p) for p in listed if p.service_id in offered]


async def file_fits(
    session: AsyncSession,
    user: User,
    file_ids: Sequence[str],
    *,
    phasing: str | None = None,
    mode: str = JobMode.IMPUTATION.value,
) -> list[FileFit]:
    """Each of the caller's own files (anyone else's is "not found") against every panel
    on offer; the files' problems with what to do about them."""
    if phasing is not None:
        validation.choice(Phasing, phasing, field="phasing")
    validation.choice(JobMode, mode, field="mode")
    validation.input_file_ids(file_ids)
    files = []
    for file_id in file_ids:
        record = await session.get(StoredFile, file_id)
        if record is None or record.user_id != user.id:
            # As POST /jobs words it: missing or someone else's (admins' too) look alike.
            raise InvalidInput(f"file {file_id} not found", field="input_file_ids")
        if record.kind != "input":
            raise InvalidInput(
                f"file {file_id} is a job result; only uploaded files can be job inputs",
                field="input_file_ids",
            )
        files.append(record)
    offered = await candidates(session, user)
    # Whether the user's own credential sees a panel does not depend on the file.
    access: dict[str, str] = {}
    for service, panel in offered:
        try:
            await credentials.ensure_panel_visible(
                session, user_id=user.id, service=service, panel=panel
            )
        except InvalidInput as exc:
            access[panel.id] = exc.message
    fits: list[FileFit] = []
    for record in files:
        report = record.validation
        verdicts = []
        for service, panel in offered:
            reasons = list(
                judge(
                    filename=record.filename,
                    size=record.size,
                    report=report,
                    service=service,
                    panel=panel,
                    phasing=phasing,
                    mode=mode,
                )
            )
            if panel.id in access:
                reasons.append(access[panel.id])
            verdicts.append(Verdict(service=service, panel=panel, reasons=tuple(reasons)))
        codes = {str(p.get("code")) for p in (report or {}).get("problems", ())}
        fits.append(
            FileFit(
                file=record,
                fixes={code: FIXES[code] for code in sorted(codes) if code in FIXES},
                verdicts=tuple(verdicts),
            )
        )
    return fits
