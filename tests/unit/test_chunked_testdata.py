"""`imputehub testdata`: deterministic, valid, bgzipped VCFs that pass the VCF checks."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from imputehub.cli.main import run
from imputehub.cli.testdata import write_vcf
from imputehub.files.bgzf import BGZF_EOF
from imputehub.files.testdata import Spec
from imputehub.files.vcf_check import check_path


@pytest.mark.parametrize(
    ("build", "chrom", "named"),
    [("hg19", "20", "20"), ("hg38", "20", "chr20"), ("hg19", "chrX", "X"), ("hg38", "x", "chrX")],
)
def test_files_pass_the_vcf_checks_without_any_problem(
    tmp_path: Path, build: str, chrom: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["testdata", "--out", str(tmp_path), "--variants", "1000", "--samples", "30",
                "--chrom", chrom, "--build", build]) == 0  # fmt: skip
    (path,) = tmp_path.iterdir()
    assert path.name == f"testdata.{named}.{build}.1000.vcf.gz"
    assert str(path) in capsys.readouterr().out
    report = check_path(path)
    assert report.problems == ()
    assert (report.format, report.bgzf_eof) == ("bgzf", True)
    assert (report.samples, report.variants, report.snps) == (30, 1000, 1000)
    assert report.chromosomes == (named,)
    assert report.build == build
    assert report.phased_share == 1.0
    assert report.missing_share == 0.0
    assert report.sorted


def test_the_same_options_give_the_same_bytes(tmp_path: Path) -> None:
    spec = Spec(samples=20, variants=500, chrom="20", build="hg19")
    first = write_vcf(tmp_path / "a", spec).read_bytes()
    assert write_vcf(tmp_path / "b", spec).read_bytes() == first
    other = Spec(samples=20, variants=500, chrom="20", build="hg19", seed=2)
    assert write_vcf(tmp_path / "c", other).read_bytes() != first


def test_content_looks_like_real_data(tmp_path: Path) -> None:
    path = write_vcf(tmp_path, Spec(samples=100, variants=2000, chrom="20", build="hg19"))
    raw = path.read_bytes()
    assert raw.endswith(BGZF_EOF)
    lines = gzip.decompress(raw).decode().splitlines()
    body = [line.split("\t") for line in lines if not line.startswith("#")]
    positions = [int(row[1]) for row in body]
    assert positions == sorted(set(positions))
    assert all(row[3] != row[4] and {row[3], row[4]} <= set("ACGT") for row in body)
    transitions = sum({row[3], row[4]} in ({"A", "G"}, {"C", "T"}) for row in body)
    assert 0.55 < transitions / len(body) < 0.8  # about two in three, as in real genomes
    calls = [call for row in body for call in row[9:]]
    assert set(calls) <= {"0|0", "0|1", "1|0", "1|1"}
    frequencies = sorted(sum(call.count("1") for call in row[9:]) / 200 for row in body)
    assert frequencies[len(frequencies) // 2] < 0.3  # rare alleles are the common case


def test_several_files_in_one_run(tmp_path: Path) -> None:
    assert run(["testdata", "--out", str(tmp_path), "--variants", "100,1000"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "testdata.20.hg19.100.vcf.gz",
        "testdata.20.hg19.1000.vcf.gz",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variants", "ten"], "--variants must be numbers"),
        (["--variants", "0"], "at least one positive number"),
        (["--chrom", "Y"], "--chrom must be one of 1-22 or X"),
        (["--chrom", "chr99"], "--chrom must be one of 1-22 or X"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(["testdata", "--out", str(tmp_path), *args]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
