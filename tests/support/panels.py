"""Small reference panels for the local engine's tests: written, compressed and indexed
by the real tools, with any number of records per contig."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from imputehub.domain.vcf import LENGTHS, bare_chromosome
from tests.support import vcf

Index = Literal["tbi", "csi", "none"]


def panel_text(
    *,
    records: Mapping[str, int],
    samples: int = 6,
    build: str = "hg19",
    header_only: Sequence[str] = (),
    separator: str = "|",
    missing_at: int | None = None,
    seed: int = 3,
) -> bytes:
    """A VCF with `records[contig]` biallelic records per contig, `samples` samples.

    `header_only` contigs get a ##contig line but no record; `missing_at` (a record
    number, from 1) gives that record's first sample a missing genotype."""
    rng = random.Random(seed)
    lines = ["##fileformat=VCFv4.2"]
    for name in [*records, *header_only]:
        lines.append(f"##contig=<ID={name},length={LENGTHS[build][bare_chromosome(name)]}>")
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    names = [f"P{number:03d}" for number in range(1, samples + 1)]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]))
    if names:
        lines[-1] += "\tFORMAT\t" + "\t".join(names)
    number = 0
    for chrom, count in records.items():
        for index in range(count):
            number += 1
            ref, alt = rng.sample("ACGT", 2)
            row = [chrom, str(60_000 + 100 * index), f"rs{number}", ref, alt, ".", "PASS", "."]
            if names:
                calls = [f"{rng.randint(0, 1)}{separator}{rng.randint(0, 1)}" for _ in names]
                if number == missing_at:
                    calls[0] = f".{separator}."
                row += ["GT", *calls]
            lines.append("\t".join(row))
    return ("\n".join(lines) + "\n").encode()


def write_panel(
    path: Path,
    *,
    index: Index = "tbi",
    compression: vcf.Compression = "bgzf",
    **fields: Any,
) -> Path:
    """`panel_text(**fields)` written to `path`, compressed and indexed as asked."""
    path.write_bytes(vcf.compress(panel_text(**fields), compression))
    if index == "tbi":
        subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    elif index == "csi":
        subprocess.run(["bcftools", "index", "-f", "-c", str(path)], check=True)
    return path
