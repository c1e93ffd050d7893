"""Small dose and input VCFs for the federation tests, written by hand and bgzipped."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BGZIP = "/usr/bin/bgzip"
TABIX = "/usr/bin/tabix"
BCFTOOLS = "/usr/bin/bcftools"

BEAGLE_META = (
    "##fileformat=VCFv4.2\n"
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Estimated ALT Allele Frequencies">\n'
    '##INFO=<ID=DR2,Number=A,Type=Float,Description="Dosage R-Squared">\n'
    '##INFO=<ID=IMP,Number=0,Type=Flag,Description="Imputed marker">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DS,Number=A,Type=Float,Description="estimated ALT dose">\n'
)
MINIMAC_META = (
    "##fileformat=VCFv4.2\n"
    '##FILTER=<ID=PASS,Description="All filters passed">\n'
    '##INFO=<ID=AF,Number=1,Type=Float,Description="Estimated Alternate Allele Frequency">\n'
    '##INFO=<ID=MAF,Number=1,Type=Float,Description="Estimated Minor Allele Frequency">\n'
    '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated Imputation Accuracy (R-square)">\n'
    '##INFO=<ID=IMPUTED,Number=0,Type=Flag,Description="Marker was imputed">\n'
    '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="Marker was genotyped">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Estimated Alternate Allele Dosage">\n'
    '##FORMAT=<ID=HDS,Number=2,Type=Float,Description="Estimated Haploid Alt Allele Dosage">\n'
    '##FORMAT=<ID=GP,Number=3,Type=Float,Description="Estimated Posterior Probabilities">\n'
)
INPUT_META = '##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'


@dataclass(frozen=True, kw_only=True)
class Row:
    """One VCF record; `calls` are the sample columns as text."""

    chrom: str
    pos: int
    ref: str
    alt: str
    info: str = "."
    fmt: str = "GT:DS"
    calls: Sequence[str] = field(default_factory=tuple)
    id: str = "."


def contig_line(chrom: str, length: int = 64_444_167) -> str:
    return f"##contig=<ID={chrom},length={length}>\n"


def write_vcf(
    path: Path, samples: Sequence[str], rows: Sequence[Row], meta: str = BEAGLE_META
) -> Path:
    """A bgzipped VCF (rows written in the order given)."""
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if samples or any(row.calls for row in rows):
        columns += ["FORMAT", *samples]
    lines = [meta, "\t".join(columns) + "\n"]
    for row in rows:
        fields = [row.chrom, str(row.pos), row.id, row.ref, row.alt, ".", "PASS", row.info]
        if len(columns) > 8:
            fields += [row.fmt, *row.calls]
        lines.append("\t".join(fields) + "\n")
    text = "".join(lines).encode()
    with path.open("wb") as out:
        subprocess.run([BGZIP, "-c"], input=text, stdout=out, check=True)
    return path


def gt_ds(dosages: Sequence[float], decimals: int = 3) -> list[str]:
    """Sample columns 'GT:DS' from dosages (GT the rounded dosage, phased; NaN: missing)."""
    out = []
    for value in dosages:
        if math.isnan(value):
            out.append("./.:.")
            continue
        count = int(value + 0.5)
        gt = ("0|0", "0|1", "1|1")[count]
        out.append(f"{gt}:{value:.{decimals}f}")
    return out


def minimac_calls(dosages: Sequence[float]) -> list[str]:
    """Sample columns 'GT:DS:HDS:GP' from dosages (HDS and GP made up but well formed)."""
    out = []
    for value in dosages:
        count = int(value + 0.5)
        gt = ("0|0", "0|1", "1|1")[count]
        half = value / 2
        out.append(f"{gt}:{value:.3f}:{half:.3f},{half:.3f}:0.1,0.2,0.7")
    return out


def records(path: Path) -> list[list[str]]:
    """The records of a bgzipped VCF as `bcftools view -H` prints them (also validates it)."""
    done = subprocess.run(
        [BCFTOOLS, "view", "-H", str(path)], capture_output=True, text=True, check=True
    )
    return [line.split("\t") for line in done.stdout.splitlines()]


def samples_of(path: Path) -> list[str]:
    done = subprocess.run(
        [BCFTOOLS, "query", "-l", str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()
