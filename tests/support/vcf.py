"""Small, valid VCFs for tests: N samples, M variants, one chromosome, phased or not.

`make_vcf(...)` returns the bytes (bgzipped by default, with the BGZF EOF block), ready to
upload; `vcf_text(...)` the plain text, for tests that break it on purpose. Deterministic:
the same arguments give the same bytes.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from imputehub.domain.vcf import LENGTHS, bare_chromosome
from imputehub.files import bgzf

Compression = Literal["bgzf", "gzip", "none"]
BASES = "ACGT"


def vcf_text(
    *,
    samples: int = 20,
    variants: int = 50,
    chrom: str | None = None,
    build: str = "hg19",
    phased: bool = True,
    contig: bool = True,
    start: int = 60_000,
    step: int = 100,
    fmt: str = "GT",
    sample_names: Sequence[str] | None = None,
    extra_header: Sequence[str] = (),
    seed: int = 1,
) -> bytes:
    """A VCF as text. `chrom` defaults to '20' for hg19 and 'chr20' for hg38."""
    name = chrom or ("chr20" if build == "hg38" else "20")
    rng = random.Random(seed)
    lines = ["##fileformat=VCFv4.2"]
    if contig:
        length = LENGTHS[build].get(bare_chromosome(name))
        lines.append(f"##contig=<ID={name},length={length}>" if length else f"##contig=<ID={name}>")
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    if "DS" in fmt:
        lines.append('##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">')
    lines.extend(extra_header)
    names = list(sample_names) if sample_names is not None else [f"S{i}" for i in range(samples)]
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if names or fmt:
        columns.append("FORMAT")
    lines.append("\t".join(columns + names))
    sep = "|" if phased else "/"
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    calls = [f"{a}{sep}{b}" + (f":{a + b}" if fmt != "GT" else "") for a, b in pairs]
    for index in range(variants):
        ref = rng.choice(BASES)
        alt = rng.choice([b for b in BASES if b != ref])
        record = [name, str(start + index * step), f"rs{index + 1}", ref, alt, ".", "PASS", "."]
        if names:
            record += [fmt, *rng.choices(calls, weights=(49, 21, 21, 9), k=len(names))]
        lines.append("\t".join(record))
    return ("\n".join(lines) + "\n").encode()


def compress(text: bytes, compression: Compression = "bgzf", *, level: int = 6) -> bytes:
    if compression == "bgzf":
        return bgzf.compress(text, level=level)
    if compression == "gzip":
        return gzip.compress(text, compresslevel=level, mtime=0)
    return text


def make_vcf(*, compression: Compression = "bgzf", level: int = 6, **fields: Any) -> bytes:
    """A small VCF's bytes (see `vcf_text` for the fields), bgzipped unless told otherwise.

    `level=0` stores the blocks uncompressed: a bigger file, made fast.
    """
    return compress(vcf_text(**fields), compression, level=level)


def sized_vcf(size: int, **fields: Any) -> bytes:
    """A valid, uncompressed VCF of exactly `size` bytes: a '##padding' line fills it up."""
    head, rest = vcf_text(**fields).split(b"\n", 1)
    room = size - len(head) - len(rest) - len(b"\n##padding=\n")
    if room < 0:
        raise ValueError(f"a VCF with these fields is larger than {size} bytes")
    return head + b"\n##padding=" + b"x" * room + b"\n" + rest


def vcf_start(size: int) -> bytes:
    """`size` bytes that begin like a VCF (header lines only): the checker lets them pass
    while they stream, so a size limit, not the check, is what stops them."""
    head = b"##fileformat=VCFv4.2\n##padding="
    return head + b"x" * (size - len(head) - 1) + b"\n"


def write_vcf(path: Path, *, compression: Compression = "bgzf", **fields: Any) -> Path:
    path.write_bytes(make_vcf(compression=compression, **fields))
    return path
