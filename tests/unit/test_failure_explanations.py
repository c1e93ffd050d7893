"""Known failure messages -> a plain cause and what to do: one table of real messages."""

from __future__ import annotations

import pytest

from imputehub.domain.failure_explanations import Remedy, codes, explain

CASES = [
    # Michigan / Cloudgene's literal step errors (shared/reference/michigan-api.md).
    ("At least 20 samples must be uploaded.", "too_few_samples"),
    (
        "The provided VCF file contains more than one chromosome. Please split your input "
        "VCF file by chromosome",
        "multiple_chromosomes",
    ),
    (
        "Your upload data contains chromosome 'chr20'. This is not a valid hg19 encoding.",
        "chromosome_naming",
    ),
    ("Your input data is unphased. Please select an algorithm for phasing.", "unphased"),
    ("Error: No chunks passed the QC step. Imputation cannot be started!", "no_chunks_passed_qc"),
    ("Quality Control: 1520 allele switches; 30 strand flips", "strand_flips"),
    ("Quality Control: 812 allele switches found", "allele_switches"),
    # Michigan states the connector turns into fixed messages.
    ("the service deleted the results", "results_expired"),
    ("the service deleted the job", "results_expired"),
    ("the job died at the service", "service_side"),
    ("the job failed at the service", "service_side"),
    (
        "the service refused to send chr_20.zip: number of max downloads exceeded.",
        "results_expired",
    ),
    ("the service no longer has the result file chr_20.zip", "results_expired"),
    # The local engine's pipeline messages.
    (
        "study.vcf.gz: chromosome 'chr7' is not in the reference panel (panel chromosomes: 20)",
        "chromosome_naming",
    ),
    (
        "study.vcf.gz: no typed site on chromosome '20' matches the panel by position and "
        "alleles; check the genome build and strand",
        "no_chunks_passed_qc",
    ),
    (
        "study.vcf.gz: the records are not sorted by position; sort the file first (bcftools sort)",
        "malformed_vcf",
    ),
    ("study.vcf.gz: the file has no samples to impute", "too_few_samples"),
    (
        "chromosome '20' appears in both a.vcf.gz and b.vcf.gz; give each chromosome in one "
        "file only",
        "multiple_chromosomes",
    ),
    (
        "x.vcf.gz: the file is gzip-compressed but not with bgzip; recompress with `bgzip`",
        "malformed_vcf",
    ),
    ("Beagle failed: Marker window contains no reference markers", "chromosome_naming"),
    # The hub's own words.
    ("gave up after 5 attempts; the last error: HTTP 503 from the service", "service_side"),
    ("gave up after 5 attempts; the last error: HTTP 401: invalid or expired token", "credentials"),
    ("the service refused the request: credential rejected", "credentials"),
    ("the workflow run ended in SYSTEM_ERROR (exit code 137)", "service_side"),
    ("the service cancelled the job", "service_side"),
    (
        "positions on 20 lie beyond the chromosome's end in hg19, the build the header names",
        "build_mismatch",
    ),
    ("the population 'xyz' is not offered by this panel", "population"),
]


@pytest.mark.parametrize(("message", "code"), CASES)
def test_known_messages_are_explained(message: str, code: str) -> None:
    found = explain(message)
    assert found is not None, message
    assert found.code == code
    assert found.cause
    assert found.what_to_do
    assert found.title


@pytest.mark.parametrize("message", [None, "", "something nobody has seen before", "42"])
def test_unknown_messages_get_no_guess(message: str | None) -> None:
    assert explain(message) is None


def test_matching_is_case_insensitive_and_finds_the_error_inside_a_log() -> None:
    log = "Input Validation: 3 files OK\nQuality Control: ERROR: NO CHUNKS PASSED the QC step"
    found = explain(log)
    assert found is not None
    assert found.code == "no_chunks_passed_qc"


def test_a_known_phrase_past_the_scanned_prefix_is_not_read() -> None:
    # Service text is untrusted: only a bounded prefix is scanned.
    assert explain("x" * 50_000 + " no chunks passed") is None


def test_data_problems_offer_qc_only_and_service_problems_offer_retry() -> None:
    qc = explain("Error: No chunks passed the QC step.")
    service = explain("the job died at the service")
    assert qc is not None
    assert Remedy.QC_ONLY in qc.remedies
    assert Remedy.RETRY not in qc.remedies  # the same data would fail the same way
    assert service is not None
    assert Remedy.RETRY in service.remedies


def test_every_rule_is_reached_by_the_table() -> None:
    assert {code for _, code in CASES} == set(codes())
