"""The pure VCF rules: chromosome names, genome builds, allele kinds, problem wording."""

from __future__ import annotations

import pytest

from imputehub.domain import vcf
from imputehub.domain.vcf import HG19, HG38, Severity


@pytest.mark.parametrize(
    ("name", "prefixed", "bare"),
    [
        ("20", False, "20"),
        ("chr20", True, "20"),
        ("Chr20", True, "20"),
        ("chrX", True, "X"),
        ("x", False, "X"),
        ("chry", True, "Y"),
        ("MT", False, "MT"),
        ("chrUn_gl000220", True, "Un_gl000220"),
    ],
)
def test_chromosome_names(name: str, prefixed: bool, bare: str) -> None:
    assert vcf.has_chr_prefix(name) is prefixed
    assert vcf.bare_chromosome(name) == bare


def test_length_tables_cover_the_same_chromosomes_and_always_differ() -> None:
    assert (
        set(vcf.HG19_LENGTHS)
        == set(vcf.HG38_LENGTHS)
        == {
            *(str(n) for n in range(1, 23)),
            "X",
            "Y",
        }
    )
    for name, length in vcf.HG19_LENGTHS.items():
        assert vcf.HG38_LENGTHS[name] != length, name


@pytest.mark.parametrize(
    ("contigs", "builds"),
    [
        ({"20": 63_025_520}, {HG19}),
        ({"chr20": 64_444_167}, {HG38}),
        ({"1": 249_250_621, "22": 51_304_566}, {HG19}),
        ({"chr1": 248_956_422, "chrX": 156_040_895}, {HG38}),
        ({"20": 63_025_520, "21": 46_709_983}, {HG19, HG38}),  # a mixed-up header
        ({"20": 12345}, set()),
        ({"GL000192.1": 547_496}, set()),
        ({}, set()),
    ],
)
def test_build_from_contig_lengths(contigs: dict[str, int], builds: set[str]) -> None:
    assert vcf.build_from_lengths(contigs) == builds


@pytest.mark.parametrize(
    ("value", "build"),
    [
        ("GRCh37", HG19),
        ("b37", HG19),
        ("hg19", HG19),
        ("file:///ref/hs37d5.fa.gz", HG19),
        ("human_g1k_v37.fasta", HG19),
        ("GRCh38", HG38),
        ("hg38", HG38),
        ("GRCh38_full_analysis_set_plus_decoy_hla.fa", HG38),
        ("CanFam3.1", None),
        ("", None),
    ],
)
def test_build_from_assembly(value: str, build: str | None) -> None:
    assert vcf.build_from_assembly(value) == build


@pytest.mark.parametrize(
    ("positions", "build"),
    [
        ({"20": 64_000_000}, HG38),  # past hg19's end of chr20, within hg38's
        ({"chr20": 64_000_000}, HG38),
        ({"1": 249_000_000}, HG19),  # past hg38's end of chr1, within hg19's
        ({"20": 60_000_000}, None),  # fits both
        ({"20": 70_000_000}, None),  # fits neither
        ({"20": 64_000_000, "1": 249_000_000}, None),  # contradicts itself
        ({"MT": 16_000}, None),
        ({}, None),
    ],
)
def test_build_from_positions(positions: dict[str, int], build: str | None) -> None:
    assert vcf.build_from_positions(positions) == build


def test_positions_beyond_the_end_of_a_build() -> None:
    assert vcf.positions_beyond(HG19, {"20": 64_000_000, "21": 10}) == ["20"]
    assert vcf.positions_beyond(HG38, {"20": 64_000_000}) == []
    assert vcf.positions_beyond(HG19, {"MT": 10**9}) == []


MICHIGAN = "Your upload data contains chromosome '{}'. This is not a valid {} encoding."


@pytest.mark.parametrize(
    ("chrom", "build", "message"),
    [
        ("chr20", HG19, MICHIGAN.format("chr20", "hg19")),
        ("20", HG38, MICHIGAN.format("20", "hg38")),
        ("20", HG19, None),
        ("chr20", HG38, None),
    ],
)
def test_encoding_uses_michigans_wording(chrom: str, build: str, message: str | None) -> None:
    found = vcf.encoding_problem(chrom, build)
    assert (found.message if found else None) == message
    if found:
        assert (found.severity, found.code, found.fatal) == (
            Severity.WARNING,
            "build_encoding",
            False,
        )


@pytest.mark.parametrize(
    ("ref", "alts", "kind"),
    [
        (b"A", [b"G"], "snp"),
        (b"a", [b"t"], "snp"),
        (b"A", [b"G", b"T"], "snp"),
        (b"A", [b"AT"], "indel"),
        (b"ATG", [b"A"], "indel"),
        (b"A", [b"G", b"AT"], "indel"),  # one site, one kind: an indel allele decides
        (b"AT", [b"GC"], "other"),  # MNP
        (b"A", [b"<DEL>"], "other"),
        (b"A", [b"."], "other"),
        (b"A", [b"<*>"], "other"),
        (b"A", [b"G", b"<*>"], "snp"),  # gVCF placeholder left out
        (b"A", [b"G", b"*"], "snp"),
        (b"A", [b"G]17:198982]"], "other"),  # breakend
        (b"N", [b"A"], "snp"),
        (b"", [b"A"], "other"),
    ],
)
def test_variant_kind(ref: bytes, alts: list[bytes], kind: str) -> None:
    assert vcf.variant_kind(ref, alts) == kind


# Every rule, with sample values for its placeholders: each must format to a plain message.
PARAMS = {
    "found": "'x'",
    "detail": "something",
    "line": 3,
    "limit": 10,
    "count": 2,
    "names": "'a', 'b'",
    "chrom": "20",
    "pos": 5,
    "previous": "20:9",
    "build": "hg19",
}


@pytest.mark.parametrize("code", sorted(vcf.RULES))
def test_every_rule_formats_to_a_plain_message(code: str) -> None:
    found = vcf.problem(code, **PARAMS)
    assert found.code == code
    assert found.message
    assert "{" not in found.message
    assert found.to_dict() == {
        "severity": found.severity.value,
        "code": code,
        "message": found.message,
    }
    if found.fatal:
        assert found.severity is Severity.ERROR


@pytest.mark.parametrize(
    ("code", "severity", "fatal"),
    [
        ("empty_file", "error", True),
        ("not_vcf", "error", True),
        ("bad_header", "error", True),
        ("truncated_gzip", "error", True),
        ("corrupt_gzip", "error", True),
        ("uncompressed", "error", False),
        ("not_bgzf", "error", False),
        ("duplicate_samples", "error", False),
        ("multiple_chromosomes", "error", False),
        ("unsorted", "error", False),
        ("no_samples", "error", False),
        ("missing_eof", "warning", False),
        ("duplicate_records", "warning", False),
        ("build_encoding", "warning", False),
        ("build_unknown", "warning", False),
    ],
)
def test_severities(code: str, severity: str, fatal: bool) -> None:
    rule = vcf.RULES[code]
    assert (rule.severity.value, rule.fatal) == (severity, fatal)


def test_michigan_wordings() -> None:
    assert vcf.problem("multiple_chromosomes", names="'1', '2'").message.startswith(
        "The provided VCF file contains more than one chromosome. Please split your input "
        "VCF file by chromosome"
    )
    assert vcf.problem("not_bgzf").message == (
        "the file is gzip-compressed but not with bgzip; recompress with `bgzip`"
    )
    assert "may be truncated" in vcf.problem("missing_eof").message


def test_shown_lists_are_short() -> None:
    assert vcf.shown(["a", "b"]) == "'a', 'b'"
    assert vcf.shown([str(i) for i in range(8)]) == "'0', '1', '2', '3', '4' and 3 more"
