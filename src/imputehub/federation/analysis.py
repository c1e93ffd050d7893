"""The one entry point the worker calls once a federated job has two or more finished children:
`analyse` compares the children's imputed dose VCFs and merges them, file in, file out.

Synchronous and self-contained (no database): it reads each child's `*.dose.vcf.gz` and the
user's input VCFs, and writes under `out_dir`:
- `comparison.tsv` and `comparison.html` (see `comparison_report`);
- per chromosome, `chr<N>.merged.dose.vcf.gz` and its `.tbi` (see `merge`).

One k-way walk per chromosome over all children's files feeds both the comparison and the
merge, so every dose file is decompressed once; the inputs are read once up front (see
`typed_sites`). Memory holds one position's records per child, whatever the file sizes.

Decisions: each dose file holds one chromosome (as the servers deliver them; a second
chromosome in a file, or two files of one child for one chromosome, is an `AnalysisError`);
all files of one child must list the same samples; chromosomes are matched without a leading
'chr'. Unreadable or unsorted files raise `AnalysisError` with a message for the user, and
the merged files already written are removed then.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from imputehub.federation.comparison import ChildInfo, Comparison, ComparisonAccumulator
from imputehub.federation.comparison_report import HTML_NAME, TSV_NAME, write_html, write_tsv
from imputehub.federation.dose_records import DoseFileError, DoseHeader, DoseReader, DoseRecord
from imputehub.federation.merge import (
    ChromosomeMerge,
    MergeChild,
    MergePlan,
    MergeToolError,
    plan_merge,
)
from imputehub.federation.site_walk import WalkCounts, walk_sites
from imputehub.federation.typed_sites import TypedCursor, TypedInputs, split_inputs

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
# Sort order of chromosomes: 1..22, X, Y, mitochondria, then the rest by name.
_ORDER = {str(n): n for n in range(1, 23)} | {"X": 23, "Y": 24, "M": 25, "MT": 25}


class AnalysisError(Exception):
    """Input the analysis cannot use; the message says why, for the user."""


@dataclass(frozen=True, kw_only=True)
class ChildDoses:
    key: str  # short safe id, e.g. "t1" (goes into INFO SRC)
    label: str  # for people, e.g. "Michigan (test) / HapMap 2 / EUR"
    files: tuple[Path, ...]  # the child's dose VCFs, any order, any number of chromosomes


@dataclass(frozen=True, kw_only=True)
class Analysis:
    files: tuple[Path, ...]  # everything written under out_dir
    notes: tuple[str, ...]  # things the user should know
    comparison: Comparison


@dataclass(frozen=True, kw_only=True)
class _ChildFiles:
    child: ChildDoses
    header: DoseHeader
    headers: tuple[DoseHeader, ...]
    by_chromosome: dict[str, Path]
    chr_prefix: bool


def _chromosome_rank(chrom: str) -> tuple[int, str]:
    return (_ORDER.get(chrom, 100), chrom)


def _survey(child: ChildDoses, bgzip: str, notes: list[str]) -> _ChildFiles:
    """Each file's header and first chromosome (one short read per file)."""
    if not child.files:
        raise AnalysisError(f"{child.label}: no dose files")
    headers: list[DoseHeader] = []
    by_chromosome: dict[str, Path] = {}
    chr_prefix: bool | None = None
    for path in child.files:
        try:
            with DoseReader(path, bgzip=bgzip) as reader:
                first = next(iter(reader), None)
                headers.append(reader.header)
        except DoseFileError as error:
            raise AnalysisError(f"{child.label}: {error}") from error
        if headers[0].samples != headers[-1].samples:
            raise AnalysisError(
                f"{child.label}: {path.name} lists other samples than {headers[0].path.name}"
            )
        if first is None:
            notes.append(f"{child.label}: {path.name} has no variants")
            continue
        if first.chrom in by_chromosome:
            raise AnalysisError(
                f"{child.label}: {path.name} and {by_chromosome[first.chrom].name} both hold "
                f"chromosome {first.chrom} (one file per chromosome expected)"
            )
        by_chromosome[first.chrom] = path
        if chr_prefix is None:
            chr_prefix = first.raw_chrom.lower().startswith("chr")
    return _ChildFiles(
        child=child,
        header=headers[0],
        headers=tuple(headers),
        by_chromosome=by_chromosome,
        chr_prefix=bool(chr_prefix),
    )


def _one_chromosome(reader: DoseReader, chrom: str, label: str) -> Iterator[DoseRecord]:
    for record in reader:
        if record.chrom != chrom:
            raise AnalysisError(
                f"{label}: {reader.path.name} holds chromosome {chrom} and {record.chrom} "
                "(one chromosome per dose file expected)"
            )
        yield record


def _typed_inputs(inputs: Sequence[Path], workdir: Path, bgzip: str) -> TypedInputs:
    try:
        return split_inputs(inputs, workdir, bgzip=bgzip)
    except DoseFileError as error:
        raise AnalysisError(f"input file {error}") from error


def analyse(
    children: Sequence[ChildDoses],
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    bgzip: str,
    tabix: str,
) -> Analysis:
    """Compare and merge the children's dose VCFs into `out_dir` (see the module docstring)."""
    if len(children) < 2:
        raise ValueError("a federated analysis needs at least two children")
    keys = [child.key for child in children]
    if len(set(keys)) != len(keys) or not all(_KEY.match(key) for key in keys):
        raise ValueError(f"child keys must be distinct and of [A-Za-z0-9_.-]: {keys}")
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    surveyed = [_survey(child, bgzip, notes) for child in children]
    plan = plan_merge(
        [
            MergeChild(
                key=item.child.key,
                label=item.child.label,
                header=item.header,
                headers=item.headers,
                chr_prefix=item.chr_prefix,
            )
            for item in surveyed
        ]
    )
    notes += plan.notes
    accumulator = ComparisonAccumulator(
        [
            ChildInfo(key=c.key, label=c.label, samples=s.header.samples)
            for c, s in zip(children, surveyed, strict=True)
        ]
    )
    chromosomes = sorted(
        {chrom for item in surveyed for chrom in item.by_chromosome}, key=_chromosome_rank
    )
    written: list[Path] = []
    counts = WalkCounts()
    try:
        with tempfile.TemporaryDirectory(prefix=".typed-", dir=out_dir) as workdir:
            typed = _typed_inputs(inputs, Path(workdir), bgzip)
            notes += typed.notes
            for chrom in chromosomes:
                present = [chrom in item.by_chromosome for item in surveyed]
                if sum(present) == 1:
                    only = surveyed[present.index(True)].child
                    notes.append(
                        f"chromosome {chrom}: only {only.label} ({only.key}) has it; "
                        "nothing to compare there"
                    )
                written += _walk_chromosome(
                    chrom,
                    surveyed,
                    present,
                    typed,
                    accumulator=accumulator,
                    counts=counts,
                    out_dir=out_dir,
                    plan=plan,
                    bgzip=bgzip,
                    tabix=tabix,
                    notes=notes,
                )
    except BaseException:
        for path in written:  # no half result left for someone to download
            path.unlink(missing_ok=True)
        raise
    for item, duplicates in zip(surveyed, counts.duplicates or [0] * len(surveyed), strict=True):
        if duplicates:
            notes.append(
                f"{item.child.label}: {duplicates} duplicate records of one site were ignored"
            )
    comparison = accumulator.result(counts.duplicates or None)
    if typed.sites and comparison.common_samples and not comparison.typed_samples:
        notes.append(
            "the uploaded files share no sample name with the results: "
            "no agreement with the typed genotypes"
        )
    written.append(write_tsv(out_dir / TSV_NAME, comparison, notes))
    written.append(write_html(out_dir / HTML_NAME, comparison, notes))
    return Analysis(files=tuple(written), notes=tuple(notes), comparison=comparison)


def _walk_chromosome(
    chrom: str,
    surveyed: Sequence[_ChildFiles],
    present: Sequence[bool],
    typed: TypedInputs,
    *,
    accumulator: ComparisonAccumulator,
    counts: WalkCounts,
    out_dir: Path,
    plan: MergePlan,
    bgzip: str,
    tabix: str,
    notes: list[str],
) -> list[Path]:
    readers: list[DoseReader | None] = []
    cursor: TypedCursor | None = None
    merge: ChromosomeMerge | None = None
    finished = False
    try:
        for item, here in zip(surveyed, present, strict=True):
            readers.append(DoseReader(item.by_chromosome[chrom], bgzip=bgzip) if here else None)
        typed_chrom = typed.chromosomes.get(chrom)
        cursor = TypedCursor(typed_chrom) if typed_chrom is not None else None
        accumulator.start_chromosome(
            chrom, present, cursor, typed_chrom.sites if typed_chrom is not None else 0
        )
        if any(here and ok for here, ok in zip(present, plan.eligible, strict=True)):
            merge = ChromosomeMerge(plan, chrom, out_dir, bgzip=bgzip, tabix=tabix)
        else:
            notes.append(f"chromosome {chrom}: no merged file (only left-out results have it)")
        sources = [
            _one_chromosome(reader, chrom, item.child.label) if reader is not None else None
            for reader, item in zip(readers, surveyed, strict=True)
        ]
        for site in walk_sites(sources, counts):
            accumulator.add_site(site)
            if merge is not None:
                merge.add_site(site)
        written: list[Path] = []
        if merge is not None:
            path = merge.finish()
            written = [path, path.with_name(path.name + ".tbi")]
        finished = True
        return written
    except DoseFileError as error:
        raise AnalysisError(str(error)) from error
    except MergeToolError as error:
        raise AnalysisError(f"writing the merged result failed: {error}") from error
    finally:
        for reader in readers:
            if reader is not None:
                reader.close()
        if cursor is not None:
            cursor.close()
        if merge is not None and not finished:
            merge.abort()
