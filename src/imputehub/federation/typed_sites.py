"""The user's typed genotypes (the input VCFs), split once into per-chromosome work files.

The comparison walks one chromosome at a time, but an input may hold several chromosomes
(or one file per chromosome, named `chr20` or `20`). One streaming pass over the inputs
writes, per chromosome, a small text file of its biallelic sites with each sample's allele
count (`0`, `1`, `2`, `9` = missing or not a 0/1 call), which the walk then reads alongside
the dose files. Memory stays bounded; the work files live in a directory the caller owns.

Decisions: multiallelic records (a ',' in ALT) are skipped; haploid calls count 0 or 1; a
chromosome found again in a later input file is ignored there (with a note): inputs are
split by chromosome, not by sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from imputehub.federation.dose_records import DoseReader

_GT_FIRST = re.compile(rb"(?:^|\t)([^:\t]*)")
_COUNTS = {
    b"0|0": b"0",
    b"0/0": b"0",
    b"0|1": b"1",
    b"1|0": b"1",
    b"0/1": b"1",
    b"1/0": b"1",
    b"1|1": b"2",
    b"1/1": b"2",
    b"0": b"0",
    b"1": b"1",
}
MISSING = ord("9")


@dataclass(frozen=True, kw_only=True)
class TypedChromosome:
    """One chromosome's typed sites, in a work file."""

    chrom: str  # without 'chr'
    path: Path
    samples: tuple[str, ...]
    sites: int


@dataclass(frozen=True, kw_only=True)
class TypedInputs:
    """The inputs, split: chromosome (without 'chr') -> its typed sites."""

    chromosomes: Mapping[str, TypedChromosome]
    notes: tuple[str, ...]

    @property
    def sites(self) -> int:
        return sum(item.sites for item in self.chromosomes.values())


def allele_counts(sample_text: bytes, format_: bytes, count: int) -> bytes:
    """One byte per sample: b'0', b'1', b'2' or b'9' (missing / not a biallelic call)."""
    if count == 0:
        return b""
    names = format_.split(b":")
    if names[0] == b"GT":
        calls = _GT_FIRST.findall(sample_text)
    elif b"GT" in names:
        at = names.index(b"GT")
        calls = [
            parts[at] if len(parts) > at else b"."
            for parts in (column.split(b":") for column in sample_text.split(b"\t"))
        ]
    else:
        return b"9" * count
    return b"".join([_COUNTS.get(call, b"9") for call in calls[:count]]).ljust(count, b"9")


def split_inputs(inputs: Sequence[Path], workdir: Path, *, bgzip: str | None) -> TypedInputs:
    """Stream every input file once into `workdir`/typed-<chrom>.txt work files."""
    found: dict[str, TypedChromosome] = {}
    notes: list[str] = []
    for path in inputs:
        with DoseReader(path, bgzip=bgzip) as reader:
            samples = reader.header.samples
            if not samples:
                notes.append(f"input {path.name} has no samples: no typed genotypes from it")
                continue
            here: dict[str, tuple[Path, IO[bytes], int]] = {}
            ignored: set[str] = set()
            try:
                for record in reader:
                    chrom = record.chrom
                    if chrom in ignored:
                        continue
                    if chrom not in here:
                        if chrom in found:
                            notes.append(
                                f"input {path.name}: chromosome {chrom} was already in an "
                                "earlier input file; ignored here"
                            )
                            ignored.add(chrom)
                            continue
                        work = workdir / f"typed-{chrom}.txt"
                        out: IO[bytes] = work.open("wb")
                        out.write(b"#samples\t" + "\t".join(samples).encode() + b"\n")
                        here[chrom] = (work, out, 0)
                    if "," in record.alt or record.sample_count == 0:
                        continue
                    counts = allele_counts(record.sample_text, record.format, len(samples))
                    work, out, sites = here[chrom]
                    out.write(
                        b"%d\t%s\t%s\t%s\n"
                        % (record.pos, record.ref.encode(), record.alt.encode(), counts)
                    )
                    here[chrom] = (work, out, sites + 1)
            finally:
                for _, out, _ in here.values():
                    out.close()
            for chrom, (work, _, sites) in here.items():
                found[chrom] = TypedChromosome(chrom=chrom, path=work, samples=samples, sites=sites)
    return TypedInputs(chromosomes=found, notes=tuple(notes))


@dataclass(frozen=True, slots=True)
class TypedSite:
    pos: int
    ref: str
    alt: str
    counts: bytes  # one byte per sample of the chromosome's file


class TypedCursor:
    """Reads one chromosome's work file forward: the typed sites at a position."""

    def __init__(self, chromosome: TypedChromosome) -> None:
        self.samples = chromosome.samples
        self._handle = chromosome.path.open("rb")
        self._handle.readline()  # the '#samples' line
        self._lines: Iterator[bytes] = iter(self._handle)
        self._next = self._read()

    def _read(self) -> TypedSite | None:
        line = next(self._lines, None)
        if line is None:
            return None
        pos, ref, alt, counts = line.rstrip(b"\n").split(b"\t")
        return TypedSite(int(pos), ref.decode(), alt.decode(), counts)

    def at(self, pos: int) -> list[TypedSite]:
        """The sites at `pos` (call with increasing positions)."""
        while self._next is not None and self._next.pos < pos:
            self._next = self._read()
        found: list[TypedSite] = []
        while self._next is not None and self._next.pos == pos:
            found.append(self._next)
            self._next = self._read()
        return found

    def close(self) -> None:
        self._handle.close()
