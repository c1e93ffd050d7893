"""VCF rules without I/O: problems and their wording, chromosome names, genome builds.

The streaming checker (`files/vcf_check.py`) counts; these functions judge. Where the
Michigan imputation servers have a message for the same problem, the wording is theirs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, kw_only=True)
class Rule:
    severity: Severity
    # A fatal problem means "this is not a VCF we can read at all": the upload is refused.
    fatal: bool
    template: str


_E = Severity.ERROR
_W = Severity.WARNING

RULES: dict[str, Rule] = {
    # Fatal: nothing sensible can be said about the file.
    "empty_file": Rule(severity=_E, fatal=True, template="the file is empty"),
    "not_vcf": Rule(
        severity=_E,
        fatal=True,
        template="this is not a VCF file: it must start with a '##fileformat=VCF' line "
        "(found {found})",
    ),
    "bad_header": Rule(severity=_E, fatal=True, template="the VCF header is broken: {detail}"),
    "truncated_gzip": Rule(
        severity=_E,
        fatal=True,
        template="the file is truncated: {detail}; upload the complete file",
    ),
    "corrupt_gzip": Rule(
        severity=_E, fatal=True, template="the compressed data is corrupt: {detail}"
    ),
    "line_too_long": Rule(
        severity=_E,
        fatal=True,
        template="line {line} is longer than {limit} bytes; this does not look like a VCF",
    ),
    # Errors: a VCF, but an imputation service would refuse it or get it wrong.
    "uncompressed": Rule(
        severity=_E,
        fatal=False,
        template="the file is not compressed; imputation servers need a bgzipped VCF: "
        "compress it with `bgzip`",
    ),
    "not_bgzf": Rule(
        severity=_E,
        fatal=False,
        template="the file is gzip-compressed but not with bgzip; recompress with `bgzip`",
    ),
    "no_fileformat": Rule(
        severity=_E,
        fatal=False,
        template="the header does not start with a '##fileformat=VCFv4.x' line",
    ),
    "no_samples": Rule(
        severity=_E,
        fatal=False,
        template="the file has no samples (no FORMAT and sample columns), so no genotypes "
        "to impute",
    ),
    "duplicate_samples": Rule(
        severity=_E,
        fatal=False,
        template="{count} sample ID(s) appear more than once: {names}",
    ),
    "no_variants": Rule(
        severity=_E, fatal=False, template="the file has a header but no variant records"
    ),
    "multiple_chromosomes": Rule(
        severity=_E,
        fatal=False,
        template="The provided VCF file contains more than one chromosome. Please split "
        "your input VCF file by chromosome (found {names})",
    ),
    "unsorted": Rule(
        severity=_E,
        fatal=False,
        template="the records are not sorted by position ({count} out of order; first at "
        "line {line}: {chrom}:{pos} after {previous}); sort with `bcftools sort`",
    ),
    "malformed_records": Rule(
        severity=_E,
        fatal=False,
        template="{count} record(s) are malformed (first at line {line}: {detail})",
    ),
    "no_genotypes": Rule(
        severity=_E,
        fatal=False,
        template="{count} record(s) have no GT (genotype) field; imputation needs genotypes",
    ),
    "crlf_line_ends": Rule(
        severity=_E,
        fatal=False,
        template="the lines end with CR LF (Windows line ends); convert them with "
        "`dos2unix` or `sed -i 's/\\r$//'`",
    ),
    # Warnings: worth knowing, not a reason to refuse.
    "missing_eof": Rule(
        severity=_W,
        fatal=False,
        template="the BGZF end-of-file block is missing: the file may be truncated",
    ),
    "duplicate_records": Rule(
        severity=_W,
        fatal=False,
        template="{count} record(s) repeat an earlier record's CHROM, POS, REF and ALT",
    ),
    "build_encoding": Rule(
        severity=_W,
        fatal=False,
        template="Your upload data contains chromosome '{chrom}'. This is not a valid "
        "{build} encoding.",
    ),
    "build_unknown": Rule(
        severity=_W,
        fatal=False,
        template="the genome build could not be told from the header or the positions; "
        "make sure it matches the job's build",
    ),
    "build_conflict": Rule(
        severity=_W,
        fatal=False,
        template="{detail}",
    ),
}


@dataclass(frozen=True, kw_only=True)
class Problem:
    severity: Severity
    code: str
    message: str
    fatal: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "code": self.code, "message": self.message}


def problem(code: str, **params: Any) -> Problem:
    """The problem `code` with its message filled in from `params`."""
    rule = RULES[code]
    return Problem(
        severity=rule.severity,
        code=code,
        message=rule.template.format(**params),
        fatal=rule.fatal,
    )


def shown(values: Iterable[str], limit: int = 5) -> str:
    """A short, quoted list for a message: 'a', 'b', 'c' and 4 more."""
    items = list(values)
    head = ", ".join(f"'{item}'" for item in items[:limit])
    rest = len(items) - limit
    return head if rest <= 0 else f"{head} and {rest} more"


# --- chromosomes and genome builds ---------------------------------------------------------

HG19 = "hg19"
HG38 = "hg38"

HG19_LENGTHS: dict[str, int] = {
    "1": 249250621, "2": 243199373, "3": 198022430, "4": 191154276, "5": 180915260,
    "6": 171115067, "7": 159138663, "8": 146364022, "9": 141213431, "10": 135534747,
    "11": 135006516, "12": 133851895, "13": 115169878, "14": 107349540, "15": 102531392,
    "16": 90354753, "17": 81195210, "18": 78077248, "19": 59128983, "20": 63025520,
    "21": 48129895, "22": 51304566, "X": 155270560, "Y": 59373566,
}  # fmt: skip
HG38_LENGTHS: dict[str, int] = {
    "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259,
    "6": 170805979, "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422,
    "11": 135086622, "12": 133275309, "13": 114364328, "14": 107043718, "15": 101991189,
    "16": 90338345, "17": 83257441, "18": 80373285, "19": 58617616, "20": 64444167,
    "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
}  # fmt: skip
LENGTHS = {HG19: HG19_LENGTHS, HG38: HG38_LENGTHS}

_ASSEMBLIES = (
    (re.compile(r"grch37|hg19|hs37|b37|hg1k_v37|human_g1k_v37", re.IGNORECASE), HG19),
    (re.compile(r"grch38|hg38|hs38|b38", re.IGNORECASE), HG38),
)


def has_chr_prefix(chrom: str) -> bool:
    return chrom[:3].lower() == "chr"


def bare_chromosome(chrom: str) -> str:
    """'chr20' -> '20', 'chrx' -> 'X', '20' -> '20': the name the length tables use."""
    name = chrom[3:] if has_chr_prefix(chrom) else chrom
    return name.upper() if name.lower() in ("x", "y") else name


def build_from_lengths(contigs: Mapping[str, int]) -> set[str]:
    """The builds whose chromosome lengths match `contigs` (name -> length); unknown names
    and lengths of neither build are ignored."""
    found: set[str] = set()
    for name, length in contigs.items():
        bare = bare_chromosome(name)
        for build, table in LENGTHS.items():
            if table.get(bare) == length:
                found.add(build)
    return found


def build_from_assembly(value: str) -> str | None:
    """'GRCh37', 'hg19', 'b37', 'hs37d5' -> hg19; 'GRCh38', 'hg38' -> hg38; else None."""
    for pattern, build in _ASSEMBLIES:
        if pattern.search(value):
            return build
    return None


def build_from_positions(max_positions: Mapping[str, int]) -> str | None:
    """hg38 when a position lies beyond the hg19 end of its chromosome (and within hg38's),
    hg19 the other way round; None when positions fit both or neither."""
    beyond: set[str] = set()
    for name, position in max_positions.items():
        bare = bare_chromosome(name)
        hg19 = HG19_LENGTHS.get(bare)
        hg38 = HG38_LENGTHS.get(bare)
        if hg19 is None or hg38 is None:
            continue
        if hg19 < position <= hg38:
            beyond.add(HG38)
        elif hg38 < position <= hg19:
            beyond.add(HG19)
    return beyond.pop() if len(beyond) == 1 else None


def positions_beyond(build: str, max_positions: Mapping[str, int]) -> list[str]:
    """Chromosomes with positions past their end in `build` (a sign of the wrong build)."""
    table = LENGTHS[build]
    return [
        name
        for name, position in max_positions.items()
        if (length := table.get(bare_chromosome(name))) is not None and position > length
    ]


@dataclass(frozen=True, kw_only=True)
class BuildVerdict:
    build: str | None
    source: str | None  # contig_lengths | assembly | positions
    problems: tuple[Problem, ...] = ()


def genome_build(
    *,
    chromosomes: Sequence[str],
    contigs: Mapping[str, int],
    assembly_hints: Iterable[str],
    max_positions: Mapping[str, int],
) -> BuildVerdict:
    """The build of a file's data: from the header's contig lengths (of the chromosomes the
    records use, else of all), else the assembly the header names, else positions beyond
    one build's chromosome end. Problems: contradictions, an unknown build, and chromosome
    names of the other build (Michigan's wording)."""
    relevant = {n: contigs[n] for n in chromosomes if n in contigs} or dict(contigs)
    problems: list[Problem] = []
    build: str | None = None
    source: str | None = None
    by_length = build_from_lengths(relevant)
    if len(by_length) == 1:
        build, source = by_length.pop(), "contig_lengths"
    elif by_length:
        problems.append(
            problem(
                "build_conflict",
                detail="the header's ##contig lengths match hg19 for some chromosomes and "
                "hg38 for others",
            )
        )
    if build is None:
        named = {b for hint in assembly_hints if (b := build_from_assembly(hint))}
        if len(named) == 1:
            build, source = named.pop(), "assembly"
    if build is None:
        build = build_from_positions(max_positions)
        source = "positions" if build else None
    if build is None:
        if chromosomes and not problems:
            problems.append(problem("build_unknown"))
        return BuildVerdict(build=None, source=None, problems=tuple(problems))
    beyond = positions_beyond(build, max_positions)
    if beyond:
        problems.append(
            problem(
                "build_conflict",
                detail=f"positions on {shown(beyond)} lie beyond the chromosome's end in "
                f"{build}, the build the header names; is the header wrong?",
            )
        )
    if chromosomes and (mismatch := encoding_problem(chromosomes[0], build)) is not None:
        problems.append(mismatch)
    return BuildVerdict(build=build, source=source, problems=tuple(problems))


def encoding_problem(chrom: str, build: str) -> Problem | None:
    """Michigan's rule: hg19 names have no 'chr' prefix, hg38 names have one."""
    if (build == HG19) == has_chr_prefix(chrom):
        return problem("build_encoding", chrom=chrom, build=build)
    return None


# --- alleles ------------------------------------------------------------------------------

_BASES = frozenset(b"ACGTNacgtn")


def is_bases(allele: bytes) -> bool:
    return bool(allele) and all(byte in _BASES for byte in allele)


# Stand-ins for "any other allele" (gVCF) and overlapping deletions: not variants of their own.
_PLACEHOLDERS = frozenset({b"<*>", b"<NON_REF>", b"<X>", b"*", b"."})


def variant_kind(ref: bytes, alts: list[bytes]) -> str:
    """One kind per site: 'snp' (every ALT one base, like REF), 'indel' (an ALT of bases of
    another length than REF), or 'other' (MNPs, symbolic alleles such as <DEL>, no ALT).

    gVCF placeholders (<*>, <NON_REF>) and '*' are left out first, as bcftools does."""
    alts = [alt for alt in alts if alt not in _PLACEHOLDERS]
    if not alts or not is_bases(ref):
        return "other"
    if not all(is_bases(alt) for alt in alts):
        return "other"
    if len(ref) == 1 and all(len(alt) == 1 for alt in alts):
        return "snp"
    if any(len(alt) != len(ref) for alt in alts):
        return "indel"
    return "other"
