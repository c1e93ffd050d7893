"""The checker on a corpus of real and odd VCFs: htslib's own test files (Debian package
`htslib-test`), plain, bgzipped by `bgzip` and gzipped, cross-checked against bcftools."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imputehub.files.vcf_check import VcfReport, check_path

CORPUS_DIR = Path("/usr/share/htslib-test/test")
CORPUS = sorted(CORPUS_DIR.rglob("*.vcf")) if CORPUS_DIR.is_dir() else []
IDS = [str(path.relative_to(CORPUS_DIR)) for path in CORPUS]


def codes(report: VcfReport) -> set[str]:
    return {p.code for p in report.problems}


def bgzipped(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / (path.name + ".gz")
    with out.open("wb") as handle:
        subprocess.run(["bgzip", "-c", str(path)], stdout=handle, check=True)
    return out


def test_the_corpus_is_installed() -> None:
    assert len(CORPUS) >= 8, f"install the Debian package htslib-test ({CORPUS_DIR} is missing)"
    assert shutil.which("bgzip"), "install the Debian package tabix"
    assert shutil.which("bcftools"), "install the Debian package bcftools"


@pytest.mark.parametrize("path", CORPUS, ids=IDS)
def test_every_corpus_file_gets_a_report(path: Path, tmp_path: Path) -> None:
    plain = check_path(path)
    json.dumps(plain.to_dict())
    assert plain.format == "uncompressed"
    assert plain.problems, "an uncompressed file always has at least that error"

    packed = check_path(bgzipped(path, tmp_path))
    json.dumps(packed.to_dict())
    assert packed.format == "bgzf"
    assert packed.bgzf_eof is (None if plain.fatal else True)
    if plain.fatal:
        assert codes(packed) == codes(plain)
    else:
        # Compression changes nothing else that the check sees.
        assert codes(packed) == codes(plain) - {"uncompressed"}
        assert packed.to_dict() | {"format": "", "bgzf_eof": None, "problems": [], "errors": 0} == (
            plain.to_dict() | {"format": "", "bgzf_eof": None, "problems": [], "errors": 0}
        )

    zipped_path = tmp_path / (path.name + ".plain.gz")
    zipped_path.write_bytes(gzip.compress(path.read_bytes()))
    zipped = check_path(zipped_path)
    assert zipped.format == "gzip"
    if not plain.fatal:
        assert codes(zipped) == codes(plain) - {"uncompressed"} | {"not_bgzf"}
        assert zipped.variants == plain.variants


@pytest.mark.parametrize("path", CORPUS, ids=IDS)
def test_counts_agree_with_bcftools(path: Path) -> None:
    report = check_path(path)
    records = subprocess.run(
        ["bcftools", "view", "--no-header", str(path)], capture_output=True, check=False
    )
    samples = subprocess.run(
        ["bcftools", "query", "--list-samples", str(path)], capture_output=True, check=False
    )
    if report.fatal:
        return
    if records.returncode == 0 and "malformed_records" not in codes(report):
        assert report.variants == records.stdout.count(b"\n")
    if samples.returncode == 0:
        assert report.samples == samples.stdout.count(b"\n")


KNOWN = {
    # The tabix test file: 2 samples, 15 records on chromosomes 1-4, unphased, b37 lengths.
    "tabix/vcf_file.vcf": {
        "samples": 2,
        "variants": 15,
        "chromosomes": ["1", "2", "3", "4"],
        "build": "hg19",
        "build_source": "contig_lengths",
        "phased_share": 0.0,
        "multiallelic": 5,
        "indels": 10,
        "problems": {"uncompressed", "multiple_chromosomes"},
    },
    # A gVCF-like file of one sample with PL only: no genotypes to impute.
    "index.vcf": {
        "samples": 1,
        "variants": 621,
        "build": "hg19",
        "problems": {"uncompressed", "multiple_chromosomes", "no_genotypes"},
    },
    # The header names hs37d5, the records span chromosomes 1, 16 and 4.
    "test-vcf-hdr-in.vcf": {
        "samples": 1,
        "variants": 10,
        "build": "hg19",
        "build_source": "assembly",
        "problems": {"uncompressed", "multiple_chromosomes"},
    },
    # A sites-only file: no FORMAT, no samples.
    "vcf_meta_meta.vcf": {
        "samples": 0,
        "variants": 1,
        "problems": {"uncompressed", "no_samples", "build_unknown"},
    },
    # Two names per contig line and chromosomes named chr11 and chr20.
    "tabix/large_chr.vcf": {
        "chr_prefix": True,
        "problems": {"uncompressed", "no_samples", "multiple_chromosomes", "build_unknown"},
    },
    # The expected output of an index query: records without any header.
    "longrefs/index.expected1.vcf": {"fatal": True, "problems": {"not_vcf"}},
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_corpus_files(name: str) -> None:
    expected = dict(KNOWN[name])
    report = check_path(CORPUS_DIR / name)
    assert codes(report) == expected.pop("problems")
    actual = report.to_dict()
    assert {key: actual[key] for key in expected} == expected
