"""Imputation accuracy: pooled r² between imputed dosages and the true genotypes.

Both files are streamed side by side (sorted VCFs, gzip or bgzip), so memory holds one
position's records at a time whatever the file sizes. Sites are matched by chromosome
(with or without 'chr'), position, REF and ALT; samples by name. Each site's true minor
allele frequency (over the matched samples) decides whether it counts.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imputehub.domain.vcf import bare_chromosome

# Sort order of chromosomes in a VCF: 1..22, X, Y, then mitochondria and the rest.
_ORDER = {str(n): n for n in range(1, 23)} | {"X": 23, "Y": 24, "M": 25, "MT": 25}


@dataclass
class _Sums:
    """Running sums for a Pearson correlation over (dosage, true count) pairs."""

    n: int = 0
    sites: int = 0
    x: float = 0.0
    y: float = 0.0
    xx: float = 0.0
    yy: float = 0.0
    xy: float = 0.0

    def add(self, dosage: float, truth: float) -> None:
        self.n += 1
        self.x += dosage
        self.y += truth
        self.xx += dosage * dosage
        self.yy += truth * truth
        self.xy += dosage * truth

    def r2(self) -> float:
        covariance = self.n * self.xy - self.x * self.y
        variances = (self.n * self.xx - self.x**2) * (self.n * self.yy - self.y**2)
        if variances <= 0:
            raise ValueError("the dosages or the true genotypes do not vary: r² is undefined")
        return covariance * covariance / variances


@dataclass(frozen=True)
class _Record:
    alleles: tuple[str, str]
    format: list[str]
    samples: list[str]


def _samples(path: Path) -> tuple[Iterator[str], list[str]]:
    handle = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed by the generator

    def lines() -> Iterator[str]:
        with handle:
            yield from handle

    stream = lines()
    for line in stream:
        if line.startswith("#CHROM"):
            return stream, line.rstrip("\n").split("\t")[9:]
        if not line.startswith("##"):
            break
    raise ValueError(f"{path.name} has no '#CHROM' header line")


def _positions(
    stream: Iterator[str],
) -> Iterator[tuple[tuple[int, str, int], list[_Record]]]:
    """Records grouped by (chromosome rank, chromosome, position), in file order."""
    key: tuple[int, str, int] | None = None
    group: list[_Record] = []
    for line in stream:
        fields = line.rstrip("\n").split("\t")
        chrom = bare_chromosome(fields[0])
        here = (_ORDER.get(chrom, 100), chrom, int(fields[1]))
        if here != key:
            if key is not None:
                yield key, group
            key, group = here, []
        record = _Record((fields[3], fields[4]), fields[8].split(":"), fields[9:])
        group.append(record)
    if key is not None:
        yield key, group


def _allele_count(genotype: str) -> int | None:
    """'0|1' -> 1; None when any allele is missing or not 0/1 (not a biallelic call)."""
    call = genotype.split(":", 1)[0].replace("|", "/").split("/")
    if any(allele not in ("0", "1") for allele in call):
        return None
    return sum(allele == "1" for allele in call)


def _score_site(
    imputed: _Record, truth: _Record, pairs: list[tuple[int, int]], min_maf: float, sums: _Sums
) -> None:
    if "DS" not in imputed.format:
        raise ValueError("the imputed file has a record without a DS (dosage) field")
    ds = imputed.format.index("DS")
    values: list[tuple[float, int]] = []
    for imputed_index, truth_index in pairs:
        count = _allele_count(truth.samples[truth_index])
        parts = imputed.samples[imputed_index].split(":")
        if count is None or len(parts) <= ds or parts[ds] == ".":
            continue
        values.append((float(parts[ds]), count))
    if not values:
        return
    frequency = sum(count for _, count in values) / (2 * len(values))
    if min(frequency, 1 - frequency) < min_maf:
        return
    sums.sites += 1
    for dosage, count in values:
        sums.add(dosage, count)


@dataclass(frozen=True, kw_only=True)
class Score:
    """How well imputed dosages agree with the truth, and over what."""

    r2: float
    sites: int  # sites in both files with a true MAF of at least min_maf
    samples: int  # samples in both files
    min_maf: float


def dosage_r2(imputed_vcf: Path, truth_vcf: Path, *, min_maf: float = 0.05) -> float:
    """Pooled r² of imputed dosage (FORMAT DS) against true allele counts (GT), over the
    sites in both files whose true MAF is at least `min_maf`, and the samples in both.

    Raises ValueError when the files share no samples, or no site qualifies."""
    return score(imputed_vcf, truth_vcf, min_maf=min_maf).r2


def score(imputed_vcf: Path, truth_vcf: Path, *, min_maf: float = 0.05) -> Score:
    """`dosage_r2`, with the number of sites and samples it was computed over."""
    imputed_lines, imputed_names = _samples(imputed_vcf)
    truth_lines, truth_names = _samples(truth_vcf)
    truth_index = {name: index for index, name in enumerate(truth_names)}
    pairs = [(i, truth_index[name]) for i, name in enumerate(imputed_names) if name in truth_index]
    if not pairs:
        raise ValueError("the imputed and the truth file share no sample")
    sums = _Sums()
    imputed_sites = _positions(imputed_lines)
    truth_sites = _positions(truth_lines)
    imputed_next = next(imputed_sites, None)
    truth_next = next(truth_sites, None)
    while imputed_next is not None and truth_next is not None:
        (imputed_key, imputed_group), (truth_key, truth_group) = imputed_next, truth_next
        if imputed_key < truth_key:
            imputed_next = next(imputed_sites, None)
        elif truth_key < imputed_key:
            truth_next = next(truth_sites, None)
        else:
            by_alleles = {record.alleles: record for record in truth_group}
            for record in imputed_group:
                if (match := by_alleles.get(record.alleles)) is not None:
                    _score_site(record, match, pairs, min_maf, sums)
            imputed_next = next(imputed_sites, None)
            truth_next = next(truth_sites, None)
    if sums.n == 0:
        raise ValueError(f"no site in both files has a true MAF of at least {min_maf}")
    return Score(r2=sums.r2(), sites=sums.sites, samples=len(pairs), min_maf=min_maf)
