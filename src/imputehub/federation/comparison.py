"""The comparison of a federated job's children: numbers gathered in one walk over the sites.

`ComparisonAccumulator` is fed every `Site` of the k-way walk (see `site_walk`) and, per
chromosome, the typed sites of the user's input; `result()` gives the frozen `Comparison`.
Nothing is stored per site: every statistic is a running count or sum.

Definitions (the report states them too):
- Estimated r² is INFO `R2` (Minimac4) or `DR2` (Beagle). Per-bin means use only records
  that carry one: typed sites without it are left out of the means (they are counted in
  `typed_without_r2`). For the counts with r² ≥ 0.3 / ≥ 0.8, a typed site without r²
  counts as 1.0 (it was measured; filters keep typed sites) and an imputed one without r²
  as 0.0.
- MAF: INFO `MAF`, else min(AF, 1 - AF) from INFO `AF`, else mean dosage / 2 over the
  child's samples; a sites-only child without AF/MAF puts the site in `unknown_maf`.
  Bins: [0, 0.5 %), [0.5 %, 1 %), [1 %, 5 %), [5 %, 50 %].
- Dosage comparisons use the samples common to every child that has samples (matched by
  name, in the first such child's order); a child without samples has no dosages, so its
  correlations are None ('n/a').
- Pairs: a shared site has the same chromosome, position and alleles, REF/ALT swapped
  counting as the same site (the swapped child's dosage is taken as 2 - DS). The Pearson
  correlation r is pooled over shared sites x common samples; a value missing in either
  child drops that one pair of values.
- Typed agreement: sites of the input with a GT, matched by position and alleles (swaps
  handled the same way), over the common samples that the input has too; allele count from
  GT (missing calls skipped). Pooled Pearson r² of DS against the count, and the share of
  genotypes whose rounded dosage (floor(DS + 0.5)) equals the count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imputehub.federation.dose_records import DoseRecord, FloatArray
from imputehub.federation.site_walk import Site
from imputehub.federation.typed_sites import MISSING, TypedCursor, TypedSite

IntArray = np.ndarray[tuple[int], np.dtype[np.intp]]

# (label, low, high): MAF in [low, high), the last bin closed at 0.5.
MAF_BINS = (
    ("<0.5%", 0.0, 0.005),
    ("0.5-1%", 0.005, 0.01),
    ("1-5%", 0.01, 0.05),
    ("5-50%", 0.05, 0.5),
)
R2_THRESHOLDS = (0.3, 0.8)


@dataclass(frozen=True, kw_only=True)
class ChildInfo:
    """A child as the comparison needs it."""

    key: str
    label: str
    samples: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class MafBin:
    label: str
    low: float
    high: float
    sites: int  # every site of the child in this bin
    r2_sites: int  # those with an estimated r² (the mean is over these)
    mean_r2: float | None


@dataclass(frozen=True, kw_only=True)
class ChildSummary:
    key: str
    label: str
    samples: int
    chromosomes: tuple[str, ...]
    variants: int
    typed_variants: int  # records flagged typed
    typed_without_r2: int
    imputed_without_r2: int
    unknown_maf: int
    duplicates: int  # second records of one site in one child, ignored
    bins: tuple[MafBin, ...]
    r2_at_least_0_3: int
    r2_at_least_0_8: int


@dataclass(frozen=True, kw_only=True)
class PairComparison:
    first: str  # child keys
    second: str
    shared_sites: int
    swapped_sites: int  # of the shared ones, with REF/ALT the other way round
    dosage_values: int  # (site, sample) pairs in the correlation
    correlation: float | None  # Pearson r; None without dosages or variance


@dataclass(frozen=True, kw_only=True)
class TypedAgreement:
    key: str
    matched_sites: int
    genotypes: int  # (site, sample) pairs compared
    r2: float | None  # Pearson r² of DS against the allele count
    concordance: float | None  # share with floor(DS + 0.5) == allele count


@dataclass(frozen=True, kw_only=True)
class Comparison:
    children: tuple[ChildSummary, ...]
    pairs: tuple[PairComparison, ...]
    typed: tuple[TypedAgreement, ...]
    common_samples: int  # samples in every child that has samples
    typed_samples: int  # of those, the ones the input has too (varies per chromosome: max)
    input_sites: int  # biallelic sites of the input files
    chromosomes: tuple[str, ...]


class _Sums:
    """Running sums for a pooled Pearson correlation."""

    __slots__ = ("n", "x", "xx", "xy", "y", "yy")

    def __init__(self) -> None:
        self.n = 0
        self.x = self.y = self.xx = self.yy = self.xy = 0.0

    def add(self, x: FloatArray, y: FloatArray) -> None:
        keep = ~(np.isnan(x) | np.isnan(y))
        if not keep.all():
            x, y = x[keep], y[keep]
        self.n += len(x)
        self.x += float(x.sum())
        self.y += float(y.sum())
        self.xx += float(np.dot(x, x))
        self.yy += float(np.dot(y, y))
        self.xy += float(np.dot(x, y))

    def correlation(self) -> float | None:
        if self.n < 2:
            return None
        covariance = self.n * self.xy - self.x * self.y
        variances = (self.n * self.xx - self.x**2) * (self.n * self.yy - self.y**2)
        if variances <= 0:
            return None
        return max(-1.0, min(1.0, covariance / math.sqrt(variances)))


class _ChildTally:
    def __init__(self) -> None:
        self.variants = self.typed = self.typed_without_r2 = self.imputed_without_r2 = 0
        self.unknown_maf = 0
        self.bin_sites = [0] * len(MAF_BINS)
        self.bin_r2_sites = [0] * len(MAF_BINS)
        self.bin_r2_sum = [0.0] * len(MAF_BINS)
        self.at_least = [0] * len(R2_THRESHOLDS)
        self.chromosomes: list[str] = []
        self.typed_sites = 0
        self.typed_concordant = 0
        self.typed_sums = _Sums()

    def add(self, record: DoseRecord) -> None:
        self.variants += 1
        if record.typed:
            self.typed += 1
        if record.r2 is None:
            if record.typed:
                self.typed_without_r2 += 1
            else:
                self.imputed_without_r2 += 1
        choice = record.choice_r2()
        for index, threshold in enumerate(R2_THRESHOLDS):
            if choice >= threshold:
                self.at_least[index] += 1
        maf = record.minor_allele_frequency()
        if maf is None:
            self.unknown_maf += 1
            return
        index = _maf_bin(maf)
        self.bin_sites[index] += 1
        if record.r2 is not None:
            self.bin_r2_sites[index] += 1
            self.bin_r2_sum[index] += record.r2


def _maf_bin(maf: float) -> int:
    for index, (_, _, high) in enumerate(MAF_BINS[:-1]):
        if maf < high:
            return index
    return len(MAF_BINS) - 1


class ComparisonAccumulator:
    """Feed `start_chromosome`, then every `add_site` of that chromosome; `result()` at the end."""

    def __init__(self, children: Sequence[ChildInfo]) -> None:
        self.children = tuple(children)
        with_samples = [child for child in self.children if child.samples]
        common: list[str] = []
        if with_samples:
            others = [set(child.samples) for child in with_samples[1:]]
            common = [name for name in with_samples[0].samples if all(name in s for s in others)]
        self.common = tuple(common)
        # Each child's column of every common sample (None: a child without samples).
        self._columns: list[IntArray | None] = []
        for child in self.children:
            if child.samples:
                where = {name: index for index, name in enumerate(child.samples)}
                self._columns.append(np.array([where[name] for name in common], np.intp))
            else:
                self._columns.append(None)
        self._tallies = [_ChildTally() for _ in self.children]
        width = len(self.children)
        self._pairs = [(i, j) for i in range(width) for j in range(i + 1, width)]
        self._shared = {pair: 0 for pair in self._pairs}
        self._swapped = {pair: 0 for pair in self._pairs}
        self._pair_sums = {pair: _Sums() for pair in self._pairs}
        self._chromosomes: list[str] = []
        self._cursor: TypedCursor | None = None
        self._cursor_pos = -1
        self._cursor_sites: list[TypedSite] = []
        self._typed_child_columns: list[IntArray | None] = []
        self._typed_columns: IntArray | None = None
        self._typed_samples = 0
        self._input_sites = 0

    def start_chromosome(
        self, chrom: str, present: Sequence[bool], typed: TypedCursor | None, input_sites: int
    ) -> None:
        """A new chromosome; `present[i]`: child i has it; `typed`: the input's sites."""
        self._chromosomes.append(chrom)
        for tally, here in zip(self._tallies, present, strict=True):
            if here:
                tally.chromosomes.append(chrom)
        self._cursor, self._cursor_pos, self._cursor_sites = typed, -1, []
        self._typed_child_columns = []
        self._typed_columns = None
        self._input_sites += input_sites
        if typed is None:
            return
        where = {name: index for index, name in enumerate(typed.samples)}
        shared = [index for index, name in enumerate(self.common) if name in where]
        self._typed_samples = max(self._typed_samples, len(shared))
        self._typed_columns = np.array([where[self.common[i]] for i in shared], np.intp)
        for columns in self._columns:
            self._typed_child_columns.append(
                None if columns is None else columns[np.array(shared, np.intp)]
            )

    def add_site(self, site: Site) -> None:
        records = site.records
        oriented: list[FloatArray | None] = [None] * len(records)
        for index, record in enumerate(records):
            if record is None:
                continue
            self._tallies[index].add(record)
            columns = self._columns[index]
            if columns is not None and len(columns) and record.sample_count:
                values = record.dosages()[columns]
                oriented[index] = 2.0 - values if site.swapped[index] else values
        for pair in self._pairs:
            first, second = pair
            if records[first] is None or records[second] is None:
                continue
            self._shared[pair] += 1
            if site.swapped[first] != site.swapped[second]:
                self._swapped[pair] += 1
            x, y = oriented[first], oriented[second]
            if x is not None and y is not None:
                self._pair_sums[pair].add(x, y)
        if self._cursor is not None:
            self._add_typed(site)

    def _add_typed(self, site: Site) -> None:
        assert self._cursor is not None
        if site.pos != self._cursor_pos:
            self._cursor_pos = site.pos
            self._cursor_sites = self._cursor.at(site.pos)
        match = None
        for typed in self._cursor_sites:
            if {typed.ref, typed.alt} == {site.ref, site.alt}:
                match = typed
                break
        if match is None:
            return
        counts: FloatArray | None = None
        for index, record in enumerate(site.records):
            if record is None:
                continue
            tally = self._tallies[index]
            tally.typed_sites += 1
            columns = self._typed_child_columns[index]
            if columns is None or not len(columns) or not record.sample_count:
                continue
            if counts is None:
                assert self._typed_columns is not None
                raw = np.frombuffer(match.counts, np.uint8)[self._typed_columns]
                counts = np.where(raw == MISSING, np.nan, raw.astype(np.float64) - 48.0)
            values = record.dosages()[columns]
            if record.ref != match.ref:
                values = 2.0 - values
            keep = ~(np.isnan(values) | np.isnan(counts))
            x, y = values[keep], counts[keep]
            tally.typed_sums.add(x, y)
            tally.typed_concordant += int(np.count_nonzero(np.floor(x + 0.5) == y))

    def result(self, duplicates: Sequence[int] | None = None) -> Comparison:
        children = []
        for index, (child, tally) in enumerate(zip(self.children, self._tallies, strict=True)):
            bins = tuple(
                MafBin(
                    label=label,
                    low=low,
                    high=high,
                    sites=tally.bin_sites[b],
                    r2_sites=tally.bin_r2_sites[b],
                    mean_r2=(
                        tally.bin_r2_sum[b] / tally.bin_r2_sites[b]
                        if tally.bin_r2_sites[b]
                        else None
                    ),
                )
                for b, (label, low, high) in enumerate(MAF_BINS)
            )
            children.append(
                ChildSummary(
                    key=child.key,
                    label=child.label,
                    samples=len(child.samples),
                    chromosomes=tuple(tally.chromosomes),
                    variants=tally.variants,
                    typed_variants=tally.typed,
                    typed_without_r2=tally.typed_without_r2,
                    imputed_without_r2=tally.imputed_without_r2,
                    unknown_maf=tally.unknown_maf,
                    duplicates=duplicates[index] if duplicates else 0,
                    bins=bins,
                    r2_at_least_0_3=tally.at_least[0],
                    r2_at_least_0_8=tally.at_least[1],
                )
            )
        pairs = tuple(
            PairComparison(
                first=self.children[i].key,
                second=self.children[j].key,
                shared_sites=self._shared[(i, j)],
                swapped_sites=self._swapped[(i, j)],
                dosage_values=self._pair_sums[(i, j)].n,
                correlation=self._pair_sums[(i, j)].correlation(),
            )
            for i, j in self._pairs
        )
        typed = []
        for child, tally in zip(self.children, self._tallies, strict=True):
            sums = tally.typed_sums
            r = sums.correlation()
            typed.append(
                TypedAgreement(
                    key=child.key,
                    matched_sites=tally.typed_sites,
                    genotypes=sums.n,
                    r2=None if r is None else r * r,
                    concordance=tally.typed_concordant / sums.n if sums.n else None,
                )
            )
        return Comparison(
            children=tuple(children),
            pairs=pairs,
            typed=tuple(typed),
            common_samples=len(self.common),
            typed_samples=self._typed_samples,
            input_sites=self._input_sites,
            chromosomes=tuple(self._chromosomes),
        )
