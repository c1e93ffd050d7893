"""The comparison's numbers against a plain in-memory computation on seeded random data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from imputehub.federation.analysis import ChildDoses, analyse
from imputehub.federation.comparison import MAF_BINS
from tests.unit.federation.vcf_builders import (
    BGZIP,
    INPUT_META,
    MINIMAC_META,
    TABIX,
    Row,
    gt_ds,
    minimac_calls,
    write_vcf,
)

SAMPLES = [f"p{n:02d}" for n in range(20)]


@dataclass
class Record:
    """One child's record as the test knows it (dosages by sample name)."""

    pos: int
    ref: str
    alt: str
    r2: float | None
    af: float | None
    maf: float | None
    typed: bool
    ds: dict[str, float]


def _alleles(rng: np.random.Generator) -> tuple[str, str]:
    ref, alt = rng.choice(list("ACGT"), size=2, replace=False)
    return str(ref), str(alt)


def _frequency(rng: np.random.Generator) -> float:
    maf = float(10 ** rng.uniform(-3, math.log10(0.5)))
    return maf if rng.random() < 0.5 else 1 - maf


def make_data(rng: np.random.Generator) -> tuple[list[Record], list[Record], list[Record]]:
    a: list[Record] = []
    b: list[Record] = []
    c: list[Record] = []
    pos = 1000
    for _ in range(300):
        pos += int(rng.integers(1, 50))
        ref, alt = _alleles(rng)
        truth = rng.uniform(0, 2, size=len(SAMPLES))
        af = _frequency(rng)
        if rng.random() < 0.8:
            ds = np.round(truth, 3)
            ds[rng.random(len(ds)) < 0.03] = np.nan  # a few missing dosages
            typed = rng.random() < 0.1
            a.append(
                Record(
                    pos,
                    ref,
                    alt,
                    round(float(rng.random()), 4),
                    None if rng.random() < 0.1 else round(af, 5),
                    None,
                    typed,
                    dict(zip(SAMPLES, ds.tolist(), strict=True)),
                )
            )
        if rng.random() < 0.8:
            noisy = np.clip(truth + rng.normal(0, 0.3, len(truth)), 0, 2)
            swap = rng.random() < 0.2
            values = 2 - noisy if swap else noisy
            typed = rng.random() < 0.1
            b_af = 1 - af if swap else af
            b.append(
                Record(
                    pos,
                    alt if swap else ref,
                    ref if swap else alt,
                    None if typed and rng.random() < 0.5 else round(float(rng.random()), 4),
                    round(b_af, 5),
                    round(min(b_af, 1 - b_af), 5),
                    typed,
                    dict(zip(SAMPLES, np.round(values, 3).tolist(), strict=True)),
                )
            )
        if rng.random() < 0.6:
            c.append(
                Record(
                    pos,
                    ref,
                    alt,
                    round(float(rng.random()), 4),
                    None if rng.random() < 0.3 else round(af, 5),
                    None,
                    False,
                    {},
                )
            )
    return a, b, c


def write_children(tmp_path: Path, a: list[Record], b: list[Record], c: list[Record]) -> None:
    def beagle_info(r: Record) -> str:
        parts = [f"DR2={r.r2}"] + ([f"AF={r.af}"] if r.af is not None else [])
        return ";".join(parts + ([] if r.typed else ["IMP"]))

    write_vcf(
        tmp_path / "a.dose.vcf.gz",
        SAMPLES,
        [
            Row(
                chrom="chr20",
                pos=r.pos,
                ref=r.ref,
                alt=r.alt,
                info=beagle_info(r),
                calls=gt_ds([r.ds[s] for s in SAMPLES]),
            )
            for r in a
        ],
    )
    b_order = [*SAMPLES[::-1], "only_in_b"]

    def minimac_info(r: Record) -> str:
        parts = [f"AF={r.af}", f"MAF={r.maf}"] + ([f"R2={r.r2}"] if r.r2 is not None else [])
        return ";".join([*parts, "TYPED" if r.typed else "IMPUTED"])

    write_vcf(
        tmp_path / "b.dose.vcf.gz",
        b_order,
        [
            Row(
                chrom="20",
                pos=r.pos,
                ref=r.ref,
                alt=r.alt,
                info=minimac_info(r),
                fmt="GT:DS:HDS:GP",
                calls=minimac_calls([r.ds[s] for s in SAMPLES[::-1]] + [1.0]),
            )
            for r in b
        ],
        meta=MINIMAC_META,
    )
    write_vcf(
        tmp_path / "c.dose.vcf.gz",
        [],
        [
            Row(
                chrom="20",
                pos=r.pos,
                ref=r.ref,
                alt=r.alt,
                info=";".join(
                    [f"R2={r.r2}"] + ([f"AF={r.af}"] if r.af is not None else []) + ["IMPUTED"]
                ),
            )
            for r in c
        ],
        meta=MINIMAC_META,
    )


@dataclass
class Typed:
    pos: int
    ref: str
    alt: str
    counts: dict[str, int | None]


def make_input(rng: np.random.Generator, a: list[Record], b: list[Record]) -> list[Typed]:
    """Genotypes at a quarter of A's or B's sites (some REF/ALT swapped), plus sites no child
    has; an input-only sample; a few missing calls."""
    sites: dict[int, Typed] = {}
    for record in [*a, *b]:
        if record.pos in sites or rng.random() > 0.25:
            continue
        swap = rng.random() < 0.3
        values = {name: record.ds[name] for name in SAMPLES}
        counts: dict[str, int | None] = {}
        for name, value in values.items():
            if math.isnan(value) or rng.random() < 0.05:
                counts[name] = None
                continue
            count = int(min(2, max(0, round(value + rng.normal(0, 0.4)))))
            counts[name] = 2 - count if swap else count
        counts["input_only"] = 1
        ref, alt = (record.alt, record.ref) if swap else (record.ref, record.alt)
        sites[record.pos] = Typed(record.pos, ref, alt, counts)
    for pos in (5, 10, 15):  # before every child's first site
        sites[pos] = Typed(pos, "A", "C", dict.fromkeys([*SAMPLES, "input_only"], 1))
    return [sites[pos] for pos in sorted(sites)]


def write_input(path: Path, typed: list[Typed]) -> Path:
    names = ["input_only", *SAMPLES[5:], *SAMPLES[:5]]
    gt = {None: "./.", 0: "0/0", 1: "0/1", 2: "1/1"}
    return write_vcf(
        path,
        names,
        [
            Row(
                chrom="chr20",
                pos=t.pos,
                ref=t.ref,
                alt=t.alt,
                fmt="GT",
                calls=[gt[t.counts[name]] for name in names],
            )
            for t in typed
        ],
        meta=INPUT_META,
    )


def choice(r: Record) -> float:
    return r.r2 if r.r2 is not None else (1.0 if r.typed else 0.0)


def maf_of(r: Record) -> float | None:
    if r.maf is not None:
        return r.maf
    if r.af is not None:
        return min(r.af, 1 - r.af)
    values = [v for v in r.ds.values() if not math.isnan(v)]
    if not values:
        return None
    af = float(np.mean(values)) / 2
    return min(af, 1 - af)


def pearson(x: list[float], y: list[float]) -> float:
    return float(np.corrcoef(np.array(x), np.array(y))[0, 1])


def test_the_numbers_match_a_plain_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(20260)
    a, b, c = make_data(rng)
    write_children(tmp_path, a, b, c)
    typed = make_input(rng, a, b)
    inputs = [write_input(tmp_path / "input.vcf.gz", typed)]
    children = [
        ChildDoses(key="a", label="A", files=(tmp_path / "a.dose.vcf.gz",)),
        ChildDoses(key="b", label="B", files=(tmp_path / "b.dose.vcf.gz",)),
        ChildDoses(key="c", label="C", files=(tmp_path / "c.dose.vcf.gz",)),
    ]
    result = analyse(children, inputs, tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    comparison = result.comparison
    assert comparison.common_samples == len(SAMPLES)
    assert comparison.typed_samples == len(SAMPLES)
    assert comparison.input_sites == len(typed)

    # Per child: variants, bins, thresholds.
    for summary, records in zip(comparison.children, (a, b, c), strict=True):
        assert summary.variants == len(records)
        assert summary.r2_at_least_0_3 == sum(choice(r) >= 0.3 for r in records)
        assert summary.r2_at_least_0_8 == sum(choice(r) >= 0.8 for r in records)
        assert summary.typed_without_r2 == sum(r.typed and r.r2 is None for r in records)
        assert summary.unknown_maf == sum(maf_of(r) is None for r in records)
        for found, (label, low, high) in zip(summary.bins, MAF_BINS, strict=True):
            inside = [
                r
                for r in records
                if (maf := maf_of(r)) is not None
                and low <= maf
                and (maf < high or (high == 0.5 and maf <= 0.5))
            ]
            assert found.label == label
            assert found.sites == len(inside), label
            with_r2 = [r.r2 for r in inside if r.r2 is not None]
            assert found.r2_sites == len(with_r2)
            if with_r2:
                assert found.mean_r2 == pytest.approx(float(np.mean(with_r2)))
            else:
                assert found.mean_r2 is None

    # Pairs: shared sites (REF/ALT swaps included) and the pooled dosage correlation.
    def keyed(records: list[Record]) -> dict[tuple[int, frozenset[str]], Record]:
        return {(r.pos, frozenset((r.ref, r.alt))): r for r in records}

    ka, kb, kc = keyed(a), keyed(b), keyed(c)
    pairs = {(p.first, p.second): p for p in comparison.pairs}
    shared_ab = sorted(set(ka) & set(kb), key=lambda k: k[0])
    assert pairs[("a", "b")].shared_sites == len(shared_ab)
    assert pairs[("a", "b")].swapped_sites == sum(ka[k].ref != kb[k].ref for k in shared_ab)
    xs: list[float] = []
    ys: list[float] = []
    for key in shared_ab:
        ra, rb = ka[key], kb[key]
        for name in SAMPLES:
            x = ra.ds[name]
            y = rb.ds[name] if rb.ref == ra.ref else 2 - rb.ds[name]
            if not (math.isnan(x) or math.isnan(y)):
                xs.append(x)
                ys.append(y)
    assert pairs[("a", "b")].swapped_sites > 10  # the data exercise the swaps
    assert pairs[("a", "b")].dosage_values == len(xs)
    assert pairs[("a", "b")].correlation == pytest.approx(pearson(xs, ys), abs=1e-9)
    assert pairs[("a", "c")].shared_sites == len(set(ka) & set(kc))
    assert pairs[("b", "c")].shared_sites == len(set(kb) & set(kc))
    assert pairs[("a", "c")].correlation is None
    assert pairs[("b", "c")].correlation is None

    # Typed agreement: each child's dosages against the input's allele counts.
    agreement = {t.key: t for t in comparison.typed}
    for child_key, by_key in (("a", ka), ("b", kb), ("c", kc)):
        xs, ys = [], []
        matched = 0
        for site in typed:
            record = by_key.get((site.pos, frozenset((site.ref, site.alt))))
            if record is None:
                continue
            matched += 1
            for name in SAMPLES:
                count = site.counts[name]
                if count is None or not record.ds:
                    continue
                value = record.ds[name] if record.ref == site.ref else 2 - record.ds[name]
                if math.isnan(value):
                    continue
                xs.append(value)
                ys.append(count)
        agreed = agreement[child_key]
        assert agreed.matched_sites == matched, child_key
        assert agreed.genotypes == len(xs), child_key
        if xs:
            assert agreed.r2 == pytest.approx(pearson(xs, ys) ** 2, abs=1e-9)
            hits = sum(math.floor(x + 0.5) == y for x, y in zip(xs, ys, strict=True))
            assert agreed.concordance == pytest.approx(hits / len(xs))
        else:
            assert agreed.r2 is None
            assert agreed.concordance is None
    assert agreement["a"].matched_sites > 20
    assert agreement["b"].genotypes > 200


def test_one_input_file_with_two_chromosomes_serves_both(tmp_path: Path) -> None:
    def child(name: str, chrom: str, ds: list[float]) -> Path:
        return write_vcf(
            tmp_path / name,
            ["s1", "s2"],
            [Row(chrom=chrom, pos=100, ref="A", alt="G", info="DR2=0.9;IMP", calls=gt_ds(ds))],
        )

    children = [
        ChildDoses(
            key="a",
            label="A",
            files=(child("a21.vcf.gz", "21", [0, 2]), child("a20.vcf.gz", "20", [1, 1])),
        ),
        ChildDoses(
            key="b",
            label="B",
            files=(child("b20.vcf.gz", "chr20", [1, 1]), child("b21.vcf.gz", "chr21", [0, 2])),
        ),
    ]
    source = write_vcf(
        tmp_path / "input.vcf.gz",
        ["s2", "s1"],
        [
            Row(chrom="chr20", pos=100, ref="A", alt="G", fmt="GT", calls=["0/1", "0/1"]),
            Row(chrom="chr21", pos=100, ref="G", alt="A", fmt="GT", calls=["0/0", "./."]),
        ],
        meta=INPUT_META,
    )
    result = analyse(children, [source], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    assert result.comparison.chromosomes == ("20", "21")
    assert result.comparison.input_sites == 2
    typed = {t.key: t for t in result.comparison.typed}
    # chr20: both samples 1 = 1; chr21 swapped: s2 has A/A (count 0 of A) = 2 - DS(2) = 0.
    assert (typed["a"].matched_sites, typed["a"].genotypes, typed["a"].concordance) == (2, 3, 1.0)
    assert (tmp_path / "out" / "chr21.merged.dose.vcf.gz.tbi").is_file()
