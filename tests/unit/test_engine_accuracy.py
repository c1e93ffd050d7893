"""Pooled dosage r² against the truth, on tiny hand-made VCFs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from imputehub.cli.main import run
from imputehub.engine.accuracy import dosage_r2, score

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{}\n"


def vcf(path: Path, samples: list[str], rows: list[str]) -> Path:
    with gzip.open(path, "wt") as out:
        out.write(HEADER.format("\t".join(samples)))
        for row in rows:
            chrom, pos, ref, alt, fmt, *calls = row.split()
            out.write("\t".join([chrom, pos, ".", ref, alt, ".", "PASS", ".", fmt, *calls]) + "\n")
    return path


TRUTH = [
    "20 100 A G GT 0|0 0|1 1|1 0|1",
    "20 200 C T GT 0|1 0|0 0|0 1|0",
    "20 300 G A GT 0|0 0|0 0|0 0|1",  # MAF 1/8
]


def test_dosages_equal_to_the_truth_give_one(tmp_path: Path) -> None:
    truth = vcf(tmp_path / "truth.vcf.gz", ["a", "b", "c", "d"], TRUTH)
    imputed = vcf(
        tmp_path / "imputed.vcf.gz",
        ["a", "b", "c", "d"],
        [
            "chr20 100 A G GT:DS 0|0:0 0|1:1 1|1:2 0|1:1",
            "chr20 200 C T GT:DS 0|1:1 0|0:0 0|0:0 1|0:1",
            "chr20 300 G A GT:DS:GP 0|0:0:1,0,0 0|0:0:1,0,0 0|0:0:1,0,0 0|1:1:0,1,0",
        ],
    )
    assert dosage_r2(imputed, truth) == pytest.approx(1.0)


def test_a_known_value_over_pooled_sites_samples_matched_by_name(tmp_path: Path) -> None:
    truth = vcf(tmp_path / "truth.vcf.gz", ["a", "b", "c", "d"], TRUTH)
    # Samples in another order, one unknown to the truth (ignored); a site the truth lacks.
    imputed = vcf(
        tmp_path / "imputed.vcf.gz",
        ["d", "c", "x", "b", "a"],
        [
            "20 50 T C GT:DS 0|0:0 0|0:0 0|0:2 0|0:1 0|0:0",
            "20 100 A G DS:GT 0.5:0|1 2:1|1 0:0|0 1:0|1 0:0|0",
            "20 200 C T GT:DS 0|1:1 0|0:0.5 0|0:2 0|0:0 0|1:1",
            "20 300 G A GT:DS 0|0:1 0|0:0 0|0:0 0|0:0 0|0:0",
        ],
    )
    # Pairs (dosage, truth) at MAF >= 0.05: site 100 a(0,0) b(1,1) c(2,2) d(0.5,1);
    # site 200 a(1,1) b(0,0) c(0.5,0) d(1,1); site 300 a(0,0) b(0,0) c(0,0) d(1,1).
    x = [0, 1, 2, 0.5, 1, 0, 0.5, 1, 0, 0, 0, 1]
    y = [0, 1, 2, 1, 1, 0, 0, 1, 0, 0, 0, 1]
    n = len(x)
    sxy = sum(a * b for a, b in zip(x, y, strict=True))
    sxx, syy = sum(a * a for a in x), sum(b * b for b in y)
    expected = (n * sxy - sum(x) * sum(y)) ** 2 / (
        (n * sxx - sum(x) ** 2) * (n * syy - sum(y) ** 2)
    )
    assert dosage_r2(imputed, truth) == pytest.approx(expected)
    assert 0.5 < expected < 0.95
    # Site 300 (MAF 1/8) drops out at min_maf 0.2: only the first eight pairs count.
    n8 = 8
    x8, y8 = x[:n8], y[:n8]
    sxy8 = sum(a * b for a, b in zip(x8, y8, strict=True))
    num = (n8 * sxy8 - sum(x8) * sum(y8)) ** 2
    den = (n8 * sum(a * a for a in x8) - sum(x8) ** 2) * (
        n8 * sum(b * b for b in y8) - sum(y8) ** 2
    )
    assert dosage_r2(imputed, truth, min_maf=0.2) == pytest.approx(num / den)


def test_sites_match_on_alleles_not_just_position(tmp_path: Path) -> None:
    truth = vcf(
        tmp_path / "truth.vcf.gz",
        ["a", "b"],
        ["20 100 A G GT 0|1 0|0", "20 100 A T GT 1|1 0|1", "20 200 C T GT 0|1 1|1"],
    )
    imputed = vcf(
        tmp_path / "imputed.vcf.gz",
        ["a", "b"],
        ["20 100 A T GT:DS 1|1:2 0|1:1", "20 200 C T GT:DS 0|1:1 1|1:2"],
    )
    assert dosage_r2(imputed, truth) == pytest.approx(1.0)


def test_missing_truth_calls_are_skipped(tmp_path: Path) -> None:
    truth = vcf(tmp_path / "truth.vcf.gz", ["a", "b", "c"], ["20 100 A G GT 0|1 .|. 1|1"])
    imputed = vcf(
        tmp_path / "imputed.vcf.gz", ["a", "b", "c"], ["20 100 A G GT:DS 0|1:1 0|0:2 1|1:2"]
    )
    assert dosage_r2(imputed, truth) == pytest.approx(1.0)


def test_no_qualifying_site_or_no_shared_sample_is_an_error(tmp_path: Path) -> None:
    truth = vcf(tmp_path / "truth.vcf.gz", ["a", "b", "c", "d"], TRUTH)
    imputed = vcf(
        tmp_path / "imputed.vcf.gz",
        ["a", "b", "c", "d"],
        ["20 300 G A GT:DS 0|0:0 0|0:0 0|0:0 0|1:1"],
    )
    assert dosage_r2(imputed, truth) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no site"):
        dosage_r2(imputed, truth, min_maf=0.2)
    others = vcf(tmp_path / "others.vcf.gz", ["x"], ["20 100 A G GT:DS 0|0:0"])
    with pytest.raises(ValueError, match="share no sample"):
        dosage_r2(others, truth)


def test_engine_score_prints_r2_sites_and_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = vcf(tmp_path / "truth.vcf.gz", ["a", "b", "c", "d"], TRUTH)
    imputed = vcf(
        tmp_path / "imputed.vcf.gz",
        ["a", "b", "c", "x"],
        [
            "20 100 A G GT:DS 0|0:0.1 0|1:1 1|1:1.9 0|0:0",
            "20 200 C T GT:DS 0|1:1 0|0:0 0|0:0 0|0:0",
        ],
    )
    expected = score(imputed, truth)
    assert (expected.sites, expected.samples) == (2, 3)
    assert run(["engine", "score", str(imputed), str(truth)]) == 0
    assert capsys.readouterr().out == (
        f"dosage r² {expected.r2:.3f} over 2 sites, 3 samples (true MAF ≥ 0.05)\n"
    )
    assert run(["engine", "score", str(imputed), str(truth), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "r2": pytest.approx(expected.r2),
        "sites": 2,
        "samples": 3,
        "min_maf": 0.05,
    }


def test_engine_score_of_files_it_cannot_read_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = vcf(tmp_path / "truth.vcf.gz", ["a", "b", "c", "d"], TRUTH)
    plain = tmp_path / "plain.vcf.gz"
    plain.write_text("not gzip at all\n")
    assert run(["engine", "score", str(plain), str(truth)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot score {plain} against {truth}: ")
    assert err.count("\n") == 1
    assert run(["engine", "score", str(tmp_path / "none.vcf.gz"), str(truth)]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'none.vcf.gz'}: no such file\n"
