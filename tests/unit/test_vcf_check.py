"""The streaming VCF checker: each rule on hand-made files, counts, and chunking."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imputehub.files import bgzf
from imputehub.files.vcf_check import (
    MAX_LINE,
    VcfChecker,
    VcfReport,
    check_bytes,
    check_path,
    check_stream,
)
from tests.support.vcf import make_vcf, vcf_text

HEADER = (
    b"##fileformat=VCFv4.2\n"
    b"##contig=<ID=20,length=63025520>\n"
    b'##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    b'##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">\n'
    b'##FORMAT=<ID=PGT,Number=1,Type=String,Description="Physical phasing">\n'
)
COLUMNS = b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"


def vcf(records: list[str], samples: tuple[str, ...] = ("A", "B"), header: bytes = HEADER) -> bytes:
    """A bgzipped VCF from record lines written with spaces for tabs."""
    columns = COLUMNS + (b"\tFORMAT\t" + "\t".join(samples).encode() if samples else b"")
    body = "".join(" ".join(r.split()).replace(" ", "\t") + "\n" for r in records)
    return bgzf.compress(header + columns + b"\n" + body.encode())


def codes(report: VcfReport) -> set[str]:
    return {p.code for p in report.problems}


GOOD = ["20 100 . A G . PASS . GT 0|1 1|1", "20 200 . C T . PASS . GT 0|0 0|1"]


def test_a_good_file_has_no_problems_and_the_right_figures() -> None:
    report = check_bytes([make_vcf(samples=30, variants=120)])
    assert report.problems == ()
    assert not report.fatal
    assert report.to_dict() == {
        "version": 1,
        "format": "bgzf",
        "bgzf_eof": True,
        "fileformat": "VCFv4.2",
        "samples": 30,
        "duplicate_samples": [],
        "variants": 120,
        "chromosomes": ["20"],
        "chr_prefix": False,
        "sorted": True,
        "duplicate_records": 0,
        "phased_share": 1.0,
        "missing_share": 0.0,
        "snps": 120,
        "indels": 0,
        "multiallelic": 0,
        "other": 0,
        "build": "hg19",
        "build_source": "contig_lengths",
        "fatal": False,
        "errors": 0,
        "warnings": 0,
        "problems": [],
    }
    json.dumps(report.to_dict())  # JSON-safe: stored as is


# (id, file bytes, problem codes expected, fatal)
CASES = [
    ("good", vcf(GOOD), set(), False),
    (
        "unsorted",
        vcf(["20 300 . A G . . . GT 0|1 0|1", "20 200 . A G . . . GT 0|1 0|1", *GOOD[1:]]),
        {"unsorted"},
        False,
    ),
    (
        "two-chromosomes",
        vcf([*GOOD, "21 100 . A G . . . GT 0|1 0|1"]),
        {"multiple_chromosomes"},
        False,
    ),
    (
        "chromosome-comes-back",
        vcf(["20 100 . A G . . . GT 0|1 0|1", "21 5 . A G . . . GT 0|1 0|1", GOOD[1]]),
        {"multiple_chromosomes", "unsorted"},
        False,
    ),
    ("duplicate-samples", vcf(GOOD, samples=("A", "A")), {"duplicate_samples"}, False),
    ("duplicate-records", vcf([GOOD[0], GOOD[0], GOOD[1]]), {"duplicate_records"}, False),
    ("header-only", vcf([]), {"no_variants"}, False),
    ("no-samples", vcf(["20 100 . A G . . ."], samples=()), {"no_samples"}, False),
    ("no-gt", vcf(["20 100 . A G . . . DS 0.1 0.2"]), {"no_genotypes"}, False),
    (
        "missing-sample-column",
        vcf([GOOD[0], "20 150 . A G . . . GT 0|1", GOOD[1]]),
        {"malformed_records"},
        False,
    ),
    (
        "pos-not-a-number",
        vcf([GOOD[0], "20 x1 . A G . . . GT 0|1 0|1"]),
        {"malformed_records"},
        False,
    ),
    (
        "no-fileformat",
        vcf(GOOD, header=HEADER.split(b"\n", 1)[1]),
        {"no_fileformat"},
        False,
    ),
    ("plain-gzip", gzip.compress(gzip.decompress(vcf(GOOD)), mtime=0), {"not_bgzf"}, False),
    ("uncompressed", gzip.decompress(vcf(GOOD)), {"uncompressed"}, False),
    ("missing-eof", vcf(GOOD)[: -len(bgzf.BGZF_EOF)], {"missing_eof"}, False),
    (
        "crlf",
        bgzf.compress(gzip.decompress(vcf(GOOD)).replace(b"\n", b"\r\n")),
        {"crlf_line_ends"},
        False,
    ),
    ("empty", b"", {"empty_file"}, True),
    ("empty-bgzf", bgzf.BGZF_EOF, {"empty_file"}, True),
    ("binary-junk", bytes(random.Random(1).randrange(256) for _ in range(5000)), {"not_vcf"}, True),
    ("text-junk", b"hello, this is a spreadsheet\n1,2,3\n", {"not_vcf"}, True),
    ("gzipped-junk", gzip.compress(b"\x00\x01\x02" * 1000, mtime=0), {"not_vcf"}, True),
    ("truncated-bgzf", vcf(GOOD * 50)[:-60], {"truncated_gzip"}, True),
    (
        "truncated-gzip",
        gzip.compress(gzip.decompress(vcf(GOOD * 50)), mtime=0)[:-20],
        {"truncated_gzip"},
        True,
    ),
    ("corrupt-gzip", vcf(GOOD)[:30] + b"\xff" * 20 + vcf(GOOD)[50:], {"corrupt_gzip"}, True),
    ("no-columns-line", bgzf.compress(HEADER), {"bad_header"}, True),
    (
        "record-before-columns",
        bgzf.compress(HEADER + b"20\t1\t.\tA\tG\t.\t.\t.\n"),
        {"bad_header"},
        True,
    ),
    (
        "spaces-not-tabs",
        bgzf.compress(HEADER + b"#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT A\n"),
        {"bad_header"},
        True,
    ),
    (
        "missing-format-column",
        bgzf.compress(HEADER + COLUMNS + b"\tA\tB\n20\t1\t.\tA\tG\t.\t.\t.\t0|1\t1|1\n"),
        {"bad_header"},
        True,
    ),
    (
        "stray-hash-line",
        bgzf.compress(HEADER + b"#comment\n" + COLUMNS + b"\n"),
        {"bad_header"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("data", "expected", "fatal"), [pytest.param(*case[1:], id=case[0]) for case in CASES]
)
def test_rules(data: bytes, expected: set[str], fatal: bool) -> None:
    report = check_bytes([data])
    assert codes(report) == expected, report.problems
    assert report.fatal is fatal
    if fatal:
        assert len(report.problems) == 1  # one clear reason
    json.dumps(report.to_dict())


@pytest.mark.parametrize(("data", "expected", "fatal"), [case[1:] for case in CASES])
def test_any_chunking_gives_the_same_report(data: bytes, expected: set[str], fatal: bool) -> None:
    whole = check_bytes([data])
    rng = random.Random(len(data))
    pieces = []
    start = 0
    while start < len(data):
        step = rng.choice([1, 2, 5, 33, 700, 70_000])
        pieces.append(data[start : start + step])
        start += step
    assert check_bytes(pieces) == whole


def test_messages_are_plain_and_name_what_is_wrong() -> None:
    report = check_bytes([vcf([*GOOD, "21 100 . A G . . . GT 0|1 0|1"])])
    (problem,) = report.problems
    assert problem.message == (
        "The provided VCF file contains more than one chromosome. Please split your input "
        "VCF file by chromosome (found '20', '21')"
    )
    report = check_bytes([vcf(["20 300 . A G . . . GT 0|1 0|1", "20 200 . A G . . . GT 0|1 0|1"])])
    assert report.problems[0].message == (
        "the records are not sorted by position (1 out of order; first at line 8: 20:200 "
        "after 20:300); sort with `bcftools sort`"
    )
    assert not report.sorted
    report = check_bytes([vcf(GOOD, samples=("A", "B", "A", "C", "B"))])
    assert report.duplicate_samples == ("A", "B")
    assert "2 sample ID(s) appear more than once: 'A', 'B'" in report.problems[0].message
    report = check_bytes([vcf([GOOD[0], "20 150 . A G . . . GT 0|1", GOOD[1]])])
    assert report.problems[0].message == (
        "1 record(s) are malformed (first at line 8: 10 columns, the header has 11)"
    )
    report = check_bytes([b"\x89PNG\r\n\x1a\n" + b"\x00" * 100])
    assert report.problems[0].message == (
        "this is not a VCF file: it must start with a '##fileformat=VCF' line (found binary data)"
    )


def test_duplicates_are_counted_per_position() -> None:
    report = check_bytes(
        [
            vcf(
                [
                    "20 100 . A G . . . GT 0|1 0|1",
                    "20 100 . A T . . . GT 0|1 0|1",  # other allele: not a duplicate
                    "20 100 . A G . . . GT 1|1 0|0",  # same as the first
                    "20 100 . A T . . . GT 0|1 0|1",  # same as the second
                    "20 101 . A G . . . GT 0|1 0|1",  # next position
                ]
            )
        ]
    )
    assert report.duplicate_records == 2
    assert report.problems[0].message == (
        "2 record(s) repeat an earlier record's CHROM, POS, REF and ALT"
    )
    assert report.sorted


def test_phased_and_missing_shares() -> None:
    report = check_bytes(
        [
            vcf(
                [
                    "20 100 . A G . . . GT 0|1 0/1 ./. 1|1",
                    "20 200 . A G . . . GT .|. 0|0 0/. 1",  # a haploid call too
                ],
                samples=("A", "B", "C", "D"),
            )
        ]
    )
    # Phased: 0|1, 1|1, .|., 0|0 -> 4; unphased: 0/1, 0/. -> 2 ('./.' is only missing).
    assert report.phased_share == pytest.approx(4 / 6, abs=1e-6)
    # Missing: ./., .|., 0/. -> 3 of 8 calls.
    assert report.missing_share == pytest.approx(3 / 8)


def test_genotypes_with_other_subfields() -> None:
    records = [
        "20 100 . A G . . . GT:DS 0|1:1.0 ./.:. 1|1:2.0",  # numeric subfields: counted as is
        "20 200 . A G . . . GT:PGT 0/1:0|1 0|1:0|1 1|1:.",  # a text subfield: cut away first
        "20 300 . A G . . . GT 0|0 0|1 .|.",
    ]
    report = check_bytes([vcf(records, samples=("A", "B", "C"))])
    assert codes(report) == set()
    # Phased: 0|1, 1|1, 0|1, 1|1, 0|0, 0|1, .|. = 7; unphased: 0/1 = 1.
    assert report.phased_share == pytest.approx(7 / 8)
    assert report.missing_share == pytest.approx(2 / 9)


def test_variant_kinds_are_counted() -> None:
    report = check_bytes(
        [
            vcf(
                [
                    "20 100 . A G . . . GT 0|1 0|1",
                    "20 101 . A G,T . . . GT 0|1 0|2",
                    "20 102 . AT A . . . GT 0|1 0|1",
                    "20 103 . A <DEL> . . . GT 0|1 0|1",
                    "20 104 . A . . . . GT 0|0 0|0",
                ]
            )
        ]
    )
    assert (report.snps, report.indels, report.multiallelic, report.other) == (2, 1, 1, 2)


C19 = b"##contig=<ID=20,length=63025520>\n"
C38 = b"##contig=<ID=chr20,length=64444167>\n"
CHR_HG19 = b"##contig=<ID=chr20,length=63025520>\n"
HG38_NO_CHR = b"##contig=<ID=20,length=64444167>\n"
BOTH = C19 + b"##contig=<ID=21,length=46709983>\n"
LENGTHS = "contig_lengths"
BUILD_CASES = [
    # (id, header lines, chromosome, position, build, source, extra problem codes)
    ("hg19-lengths", C19, "20", 100, "hg19", LENGTHS, set()),
    ("hg38-lengths", C38, "chr20", 100, "hg38", LENGTHS, set()),
    ("assembly", b"##contig=<ID=20,assembly=GRCh37>\n", "20", 100, "hg19", "assembly", set()),
    ("reference-line", b"##reference=GRCh38.fa\n", "chr20", 100, "hg38", "assembly", set()),
    ("positions", b"", "chr20", 64_000_000, "hg38", "positions", set()),
    ("unknown", b"", "20", 100, None, None, {"build_unknown"}),
    ("chr-on-hg19", CHR_HG19, "chr20", 100, "hg19", LENGTHS, {"build_encoding"}),
    ("no-chr-on-hg38", HG38_NO_CHR, "20", 100, "hg38", LENGTHS, {"build_encoding"}),
    ("beyond-hg19-end", C19, "20", 64_000_000, "hg19", LENGTHS, {"build_conflict"}),
    ("both-builds", BOTH, "22", 100, None, None, {"build_conflict"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("contigs", "chrom", "pos", "build", "source", "extra"),
    [pytest.param(*case[1:], id=case[0]) for case in BUILD_CASES],
)
def test_genome_build(
    contigs: bytes, chrom: str, pos: int, build: str | None, source: str | None, extra: set[str]
) -> None:
    header = b"##fileformat=VCFv4.2\n" + contigs
    report = check_bytes([vcf([f"{chrom} {pos} . A G . . . GT 0|1 0|1"], header=header)])
    assert (report.build, report.build_source) == (build, source)
    assert codes(report) == extra
    assert report.chr_prefix is chrom.startswith("chr")


def test_the_build_warning_uses_michigans_wording() -> None:
    report = check_bytes([make_vcf(chrom="chr20", build="hg19")])
    assert [p.message for p in report.problems] == [
        "Your upload data contains chromosome 'chr20'. This is not a valid hg19 encoding."
    ]


def test_crlf_files_are_still_read_correctly() -> None:
    text = vcf_text(samples=3, variants=4).replace(b"\n", b"\r\n")
    report = check_bytes([bgzf.compress(text)])
    assert codes(report) == {"crlf_line_ends"}
    assert (report.samples, report.variants, report.phased_share) == (3, 4, 1.0)
    assert report.duplicate_samples == ()


def test_a_line_without_end_is_refused_before_memory_runs_out() -> None:
    checker = VcfChecker()
    checker.feed(b"##fileformat=VCFv4.2\n##x=")
    piece = b"a" * (1024 * 1024)
    fed = 0
    while not checker.failed:
        checker.feed(piece)
        fed += len(piece)
        assert fed <= MAX_LINE + len(piece)
    report = checker.finish()
    assert codes(report) == {"line_too_long"}
    assert report.fatal


def test_junk_fails_at_once_and_later_bytes_are_ignored() -> None:
    checker = VcfChecker()
    checker.feed(b"PK\x03\x04 a zip file\n")
    assert checker.failed
    checker.feed(b"##fileformat=VCFv4.2\n")
    assert codes(checker.finish()) == {"not_vcf"}
    assert checker.finish() is checker.finish()


def test_a_last_line_without_newline_still_counts() -> None:
    text = vcf_text(samples=2, variants=3).rstrip(b"\n")
    report = check_bytes([bgzf.compress(text)])
    assert (report.variants, codes(report)) == (3, set())


async def test_check_path_and_check_stream_agree(tmp_path: Path) -> None:
    data = make_vcf(samples=25, variants=300)
    path = tmp_path / "x.vcf.gz"
    path.write_bytes(data)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    assert check_path(path, read_size=777) == check_bytes([data])
    assert await check_stream(chunks()) == check_bytes([data])


def test_many_records_keep_memory_flat() -> None:
    """The checker keeps counters, not records: its state does not grow with the file."""
    checker = VcfChecker()
    writer = bgzf.BgzfWriter()
    head = vcf_text(samples=5, variants=0)
    checker.feed(writer.write(head))
    row = "\t".join(["0|1"] * 5)
    for block in range(50):
        lines = "".join(
            f"20\t{block * 2000 + i + 1}\t.\tA\tG\t.\t.\t.\tGT\t{row}\n" for i in range(2000)
        )
        checker.feed(writer.write(lines.encode()))
        assert len(checker._pending) <= 1
        assert checker._pending_size < 64 * 1024
        assert len(checker._chromosomes) == 1
    checker.feed(writer.close())
    report = checker.finish()
    assert report.variants == 100_000
    assert report.problems == ()


@pytest.mark.parametrize("seed", range(40))
def test_damaged_files_always_get_a_report(seed: int) -> None:
    """Whatever the damage, the answer is a report (never an exception)."""
    rng = random.Random(seed)
    data = bytearray(
        make_vcf(
            samples=4, variants=300, seed=seed, compression=rng.choice(["bgzf", "gzip", "none"])
        )
    )
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
        del data[rng.randrange(len(data)) :]
    report = check_bytes([bytes(data)])
    json.dumps(report.to_dict())
    assert report.problems or report.variants
