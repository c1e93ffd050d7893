"""Synthetic VCF records for trying the hub: `imputehub testdata` writes them to files, a
service's self-test streams them into an upload.

One chromosome with its real length in the header (so the build is recognised), sorted
positions, SNPs with realistic alleles (transitions twice as common as transversions, a
skewed allele-frequency spectrum) and phased genotypes for every sample. The same spec
always gives the same bytes (a seeded generator); rows are built with bytes slicing, so
even large files take seconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from imputehub.domain.errors import InvalidInput
from imputehub.domain.vcf import LENGTHS, bare_chromosome

BASES = b"ACGT"
TRANSITIONS = {ord("A"): b"G", ord("G"): b"A", ord("C"): b"T", ord("T"): b"C"}
# Allele frequencies 1/2, 1/4, ... 1/32 (ALT = minor allele), rare ones most common.
FREQUENCY_HALVINGS = (1, 1, 1, 2, 2, 3, 4, 5)
FIRST_POSITION = 60_001


@dataclass(frozen=True, kw_only=True)
class Spec:
    samples: int
    variants: int
    chrom: str  # as written in the file: '20' (hg19) or 'chr20' (hg38)
    build: str
    seed: int = 1

    @property
    def filename(self) -> str:
        return f"testdata.{self.chrom}.{self.build}.{self.variants}.vcf.gz"


def header(spec: Spec) -> bytes:
    length = LENGTHS[spec.build][bare_chromosome(spec.chrom)]
    lines = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        f"##source=imputehub testdata (seed {spec.seed})",
        f"##contig=<ID={spec.chrom},length={length}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">',
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
            + [f"TD{index + 1:05d}" for index in range(spec.samples)]
        ),
    ]
    return ("\n".join(lines) + "\n").encode()


def records(spec: Spec) -> Iterator[bytes]:
    """One line per variant, positions increasing across the chromosome."""
    seed = f"{spec.seed}:{spec.chrom}:{spec.build}:{spec.samples}:{spec.variants}"
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    length = LENGTHS[spec.build][bare_chromosome(spec.chrom)]
    if spec.variants > length - FIRST_POSITION:
        raise InvalidInput(
            f"chromosome {spec.chrom} has room for fewer than {spec.variants} variants",
            field="variants",
        )
    positions = sorted(rng.sample(range(FIRST_POSITION, length + 1), spec.variants))
    # One sample's call is 4 bytes, "a|b\t"; the last tab of a row becomes the newline.
    template = bytearray(b"0|0\t" * spec.samples)
    template[-1:] = b"\n"
    haplotypes = 2 * spec.samples
    chrom = spec.chrom.encode()
    for position in positions:
        ref = BASES[rng.randrange(4)]
        if rng.random() < 2 / 3:
            alt = TRANSITIONS[ref]
        else:
            alt = bytes([rng.choice([b for b in BASES if b not in (ref, TRANSITIONS[ref][0])])])
        bits = rng.getrandbits(haplotypes)
        for _ in range(rng.choice(FREQUENCY_HALVINGS) - 1):
            bits &= rng.getrandbits(haplotypes)
        alleles = format(bits, f"0{haplotypes}b").encode()
        row = bytearray(template)
        row[0::4] = alleles[0::2]
        row[2::4] = alleles[1::2]
        fixed = b"\t".join(
            [chrom, str(position).encode(), b".", bytes([ref]), alt, b".", b"PASS", b".", b"GT"]
        )
        yield fixed + b"\t" + bytes(row)
