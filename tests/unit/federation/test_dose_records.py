"""Reading dose VCFs: values per record, lazy dosages, unsorted files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imputehub.federation.dose_records import (
    DoseReader,
    UnsortedDoseFile,
    gt_ds_only,
    parse_dosages,
)
from tests.unit.federation.vcf_builders import BGZIP, MINIMAC_META, Row, write_vcf


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        (b"0|0:0\t0|1:1.25\t1|1:2", b"GT:DS", [0.0, 1.25, 2.0]),
        (b"0|0:0.001:0,0.001:1,0,0\t1|1:1.999:1,0.999:0,0,1", b"GT:DS:HDS:GP", [0.001, 1.999]),
        (b"./.:.\t0|1:0.5", b"GT:DS", [np.nan, 0.5]),  # missing
        (b"0|0\t0|1:1e-05", b"GT:DS", [np.nan, 1e-05]),  # dropped field, an exponent
        (b"0.5:0|1\t2:1|1", b"DS:GT", [0.5, 2.0]),  # DS first
        (b"0|1", b"GT", [np.nan]),  # no DS at all
    ],
)
def test_dosages_from_any_layout(text: bytes, fmt: bytes, expected: list[float]) -> None:
    found = parse_dosages(text, fmt, len(expected))
    np.testing.assert_allclose(found, expected, equal_nan=True)


def test_columns_cut_to_gt_and_ds() -> None:
    text = b"0|1:0.5:0.2,0.3:0.1,0.8,0.1\t1|1:1.9:1,0.9:0,0.1,0.9"
    assert gt_ds_only(text, b"GT:DS:HDS:GP", 2) == b"0|1:0.5\t1|1:1.9"
    # A sample with its trailing fields dropped: left to the caller's slower rebuild.
    assert gt_ds_only(b"0|1:0.5:0.2,0.3:0.1,0.8,0.1\t./.", b"GT:DS:HDS:GP", 2) is None


@pytest.mark.parametrize("bgzip", [BGZIP, None])
def test_records_carry_the_site_values(tmp_path: Path, bgzip: str | None) -> None:
    path = write_vcf(
        tmp_path / "x.vcf.gz",
        ["a", "b"],
        [
            Row(
                chrom="chr20",
                pos=5,
                ref="A",
                alt="G",
                info="AF=0.9;MAF=0.1;R2=0.7;IMPUTED",
                fmt="GT:DS",
                calls=["0|1:0.5", "1|1:1.9"],
            ),
            Row(
                chrom="chr20",
                pos=6,
                ref="C",
                alt="T",
                info="AF=0.2;MAF=0.2;TYPED",
                fmt="GT:DS",
                calls=["0|0:0", "0|0:0"],
            ),
            Row(
                chrom="chr20",
                pos=7,
                ref="C",
                alt="T",
                info="DR2=0.8;AF=0.2",
                fmt="GT:DS",
                calls=["0|0:0", "0|0:0"],
            ),
        ],
        meta=MINIMAC_META,
    )
    with DoseReader(path, bgzip=bgzip) as reader:
        assert reader.header.samples == ("a", "b")
        records = list(reader)
    first, second, third = records
    assert (first.chrom, first.raw_chrom, first.pos, first.ref, first.alt) == (
        "20",
        "chr20",
        5,
        "A",
        "G",
    )
    assert (first.r2, first.af, first.maf, first.typed) == (0.7, 0.9, 0.1, False)
    np.testing.assert_allclose(first.dosages(), [0.5, 1.9])
    assert (second.r2, second.typed, second.choice_r2()) == (None, True, 1.0)
    assert (third.r2, third.typed) == (0.8, True)  # Beagle: DR2 without IMP is typed


def test_a_chromosome_coming_back_is_unsorted(tmp_path: Path) -> None:
    rows = [
        Row(chrom=chrom, pos=pos, ref="A", alt="G", info="R2=1", calls=["0|0:0"])
        for chrom, pos in (("20", 1), ("21", 1), ("20", 2))
    ]
    path = write_vcf(tmp_path / "x.vcf.gz", ["a"], rows)
    with (
        DoseReader(path, bgzip=BGZIP) as reader,
        pytest.raises(UnsortedDoseFile, match=r"x\.vcf\.gz: not sorted: chromosome 20 comes back"),
    ):
        list(reader)
