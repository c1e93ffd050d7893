"""Why a job failed, in plain words, and what to do about it.

A failed job's `error_message` holds the service's own words (Michigan's step errors, a WES
run's errors, the local engine's pipeline message) or the hub's (gave up after retries, the
service deleted the results). `explain` matches the known ones and returns a cause a
researcher can act on, with which of the job page's one-click remedies fit. Unknown
messages get no explanation: the page then shows the raw message alone rather than a guess.

Patterns are plain, linear-time regular expressions over a bounded prefix of the message
(service text is untrusted and may be long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# Known messages say what matters early; a service's log dump can be megabytes long.
MAX_SCANNED = 20_000


class Remedy(StrEnum):
    """What the job page offers as a one-click next step."""

    RETRY = "retry"  # the same job again, unchanged
    QC_ONLY = "qc_only"  # run again as quality control only, to see the QC report
    OTHER_SERVICE = "other_service"  # the same settings, another service or panel
    NEW_INPUT = "new_input"  # fix the file and upload it again


@dataclass(frozen=True, kw_only=True)
class Explanation:
    code: str
    title: str
    cause: str
    what_to_do: str
    remedies: tuple[Remedy, ...]


@dataclass(frozen=True, kw_only=True)
class _Rule:
    explanation: Explanation
    patterns: tuple[re.Pattern[str], ...]


def _rule(
    code: str,
    title: str,
    cause: str,
    what_to_do: str,
    remedies: tuple[Remedy, ...],
    *patterns: str,
) -> _Rule:
    return _Rule(
        explanation=Explanation(
            code=code, title=title, cause=cause, what_to_do=what_to_do, remedies=remedies
        ),
        patterns=tuple(re.compile(p, re.IGNORECASE) for p in patterns),
    )


# Order matters: the first rule that matches wins, so narrow rules come before broad ones
# (e.g. "not a valid hg19 encoding" is chromosome naming, not a generic build problem).
_RULES: tuple[_Rule, ...] = (
    _rule(
        "results_expired",
        "The results were deleted",
        "The service deletes results after a few days (Michigan-style servers after about "
        "7), or allows each file only a limited number of downloads, and the hub could not "
        "fetch them in time.",
        "Run the job again; the hub fetches results as soon as they are ready.",
        (Remedy.RETRY, Remedy.OTHER_SERVICE),
        r"deleted the results",
        r"deleted the job",
        r"no longer has the result file",
        r"max(imum)? downloads exceeded",
        r"\bretired\b",
    ),
    _rule(
        "credentials",
        "The service did not accept the hub's credentials",
        "The API token or account the hub uses at this service is missing, wrong, expired "
        "or not allowed to use this panel.",
        "If you use your own service credential, renew it under Settings and test it; "
        "otherwise ask your hub's administrator. Then retry the job.",
        (Remedy.RETRY, Remedy.OTHER_SERVICE),
        r"\b401\b",
        r"\bunauthori[sz]ed\b",
        r"invalid or expired token",
        r"token (is )?(invalid|expired|revoked)",
        r"credential",
        r"not allowed to use",
        r"access (is )?denied",
    ),
    _rule(
        "too_few_samples",
        "Too few (or too many) samples",
        "Imputation servers need enough samples to estimate haplotypes: Michigan-style "
        "servers ask for at least 20 and at most 50,000 per job.",
        "Add samples to the file (or split a very large study into several jobs), upload it "
        "again and start a new job. A service with a lower minimum may take it as it is.",
        (Remedy.NEW_INPUT, Remedy.OTHER_SERVICE),
        r"at least [0-9,]+ samples",
        r"(more|fewer|less) than [0-9,]+ samples",
        r"too (few|many) samples",
        r"has no samples",
        r"no samples to impute",
    ),
    _rule(
        "unphased",
        "The data is unphased and no phasing was chosen",
        "Your genotypes are not phased, and the job asked the service not to phase them.",
        "Start a new job like this one with a phasing engine (Eagle or Beagle) chosen.",
        (Remedy.OTHER_SERVICE,),
        r"input data is unphased",
        r"select an algorithm for phasing",
    ),
    _rule(
        "chromosome_naming",
        "Chromosome names do not match the build",
        "The chromosomes in your file are named in a way the service does not expect for "
        "this genome build: hg19 (GRCh37) names them 1, 2, … 22, X; hg38 (GRCh38) names "
        "them chr1, chr2, … chr22, chrX.",
        "Rename the chromosomes (bcftools annotate --rename-chrs) or, if the file really "
        "is in the other build, start a new job with that build. Check the build first: "
        "the QC report and the file's pre-flight report show what the hub found.",
        (Remedy.NEW_INPUT, Remedy.OTHER_SERVICE),
        r"not a valid hg(19|38) encoding",
        r"chromosome '[^']{0,100}' is not in the reference panel",
        r"marker window contains no reference markers",
        r"chromosome (name|naming)",
    ),
    _rule(
        "multiple_chromosomes",
        "One file holds several chromosomes",
        "Michigan-style servers need one chromosome per file, and each chromosome in one "
        "file only.",
        "Split the file by chromosome (bcftools view -r 20 …, one file each), upload the "
        "files and start a new job with all of them.",
        (Remedy.NEW_INPUT,),
        r"more than one chromosome",
        r"appears in both",
        r"split your input vcf",
    ),
    _rule(
        "strand_flips",
        "Many variants are on the other strand",
        "A large share of your variants look strand-flipped against the reference panel "
        "(A/T and C/G alleles swapped for their complements): the genotyping array reports "
        "the other strand.",
        "Align the file to the forward strand of the reference (e.g. with a strand file for "
        "your array, or bcftools +fixref), then upload it again. The QC statistics below "
        "list the excluded variants.",
        (Remedy.QC_ONLY, Remedy.NEW_INPUT),
        r"strand[- ]?flip",
        r"\bstrand\b.{0,40}\b(mismatch|problem|issue)",
    ),
    _rule(
        "allele_switches",
        "Reference and alternate alleles are swapped",
        "Many variants have their REF and ALT alleles the other way round from the "
        "reference panel (allele switches).",
        "Fix the alleles against the reference genome (bcftools +fixref or norm --check-ref "
        "s), upload the file again and start a new job. The QC statistics below list the "
        "affected variants.",
        (Remedy.QC_ONLY, Remedy.NEW_INPUT),
        r"allele[- ]?switch",
        r"ref(erence)?[-/ ]alt(ernate)? (alleles? )?(are )?swapped",
        r"allele mismatch",
    ),
    _rule(
        "no_chunks_passed_qc",
        "No part of the data passed quality control",
        "Too few of your variants matched the reference panel by position and alleles, so "
        "no chunk of the genome had enough of them to impute. The usual causes are a "
        "different genome build (hg19 vs hg38), strand flips, or a very sparse array.",
        "Run the job again as QC only and read its QC report: the excluded-variants list "
        "says why each was left out. Check the build; try a panel on the other build or "
        "another service.",
        (Remedy.QC_ONLY, Remedy.OTHER_SERVICE),
        r"no chunks passed",
        r"no typed site .{0,200} matches the panel",
        r"no (variants|sites|markers) (left|remain)",
    ),
    _rule(
        "build_mismatch",
        "The genome build does not match",
        "The positions in your file do not fit the genome build the job asked for (hg19 / "
        "GRCh37 or hg38 / GRCh38).",
        "Start a new job like this one with the other build, or lift the file over "
        "(e.g. CrossMap, Picard LiftoverVcf) and upload it again.",
        (Remedy.OTHER_SERVICE, Remedy.NEW_INPUT),
        r"lie beyond the chromosome's end",
        r"\bbuild\b.{0,60}\b(mismatch|does not match|differs|conflict)",
        r"(wrong|different) (genome )?build",
        r"liftover",
    ),
    _rule(
        "malformed_vcf",
        "The file is not a well-formed VCF",
        "The service could not read the file: it must be a VCF compressed with bgzip, "
        "sorted by position, with a proper header and tab-separated columns.",
        "Fix the file as the message says (bgzip to compress, bcftools sort to sort, "
        "bcftools view to check it reads), upload it again and start a new job. The hub's "
        "pre-flight check on upload catches most of these before a job starts.",
        (Remedy.NEW_INPUT,),
        r"not sorted",
        r"unsorted",
        r"bgzip",
        r"\bbgzf\b",
        r"not compressed",
        r"malformed",
        r"header is broken",
        r"not (look like )?a (valid )?vcf",
        r"invalid vcf",
        r"truncated",
        r"corrupt",
        r"no gt \(genotype\)",
        r"tab[- ]delimited",
        r"windows line ends",
    ),
    _rule(
        "population",
        "The population does not suit the panel",
        "The reference panel has no population of the name the job gave.",
        "Start a new job like this one and pick one of the panel's populations (or 'mixed').",
        (Remedy.OTHER_SERVICE,),
        r"\bpopulation\b",
    ),
    _rule(
        "service_side",
        "The service failed, not your data",
        "The job stopped because of a problem at the service (it crashed, was restarted or "
        "in maintenance, or kept answering with errors), not because of anything in your "
        "file.",
        "Retry the job; if it fails again, send it to another service or tell your hub's "
        "administrator.",
        (Remedy.RETRY, Remedy.OTHER_SERVICE),
        r"died at the service",
        r"failed at the service",
        r"reports that the job failed",
        r"gave up after [0-9]+ attempts",
        r"the service cancelled the job",
        r"no record of this job",
        r"\bmaintenance\b",
        r"(system|executor)_error",
        r"\bhttp 5[0-9][0-9]\b",
        r"internal server error",
        r"service unavailable",
        r"timed? ?out",
        r"out of memory",
        r"could not reach the service",
    ),
)


def explain(message: str | None) -> Explanation | None:
    """The first known explanation of a failure message, or None for an unknown one."""
    if not message:
        return None
    text = message[:MAX_SCANNED]
    for rule in _RULES:
        if any(pattern.search(text) for pattern in rule.patterns):
            return rule.explanation
    return None


def codes() -> tuple[str, ...]:
    """Every explanation's code, in matching order."""
    return tuple(rule.explanation.code for rule in _RULES)
