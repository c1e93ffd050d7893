"""`imputehub testdata`: small, valid, bgzipped VCFs for trying the hub.

Each file holds one chromosome with its real length in the header (so the build is
recognised), sorted positions, SNPs with realistic alleles (transitions twice as common as
transversions, a skewed allele-frequency spectrum) and phased genotypes for every sample.
The same options always give the same bytes (a seeded generator). Genotype rows are built
with bytes slicing, so even large files take seconds, not minutes.
"""

from __future__ import annotations

import enum
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from imputehub.cli.errors import CliError
from imputehub.cli.output import human_size
from imputehub.domain.jobs import Build
from imputehub.domain.vcf import LENGTHS, bare_chromosome
from imputehub.files.bgzf import BgzfWriter

BASES = b"ACGT"
TRANSITIONS = {ord("A"): b"G", ord("G"): b"A", ord("C"): b"T", ord("T"): b"C"}
# Allele frequencies 1/2, 1/4, ... 1/32 (ALT = minor allele), rare ones most common.
FREQUENCY_HALVINGS = (1, 1, 1, 2, 2, 3, 4, 5)
FIRST_POSITION = 60_001
# Text handed to the compressor at a time: memory stays bounded for any file size.
FLUSH_BYTES = 1024 * 1024
DEFAULT_VARIANTS = "100,1000,10000"


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


def chromosome_name(chrom: str, build: str) -> str:
    """Michigan's naming: hg19 without the 'chr' prefix, hg38 with it."""
    bare = bare_chromosome(chrom.strip())
    if bare not in LENGTHS[build] or bare == "Y":
        raise CliError(f"--chrom must be one of 1-22 or X, not {chrom!r}")
    return f"chr{bare}" if build == Build.HG38 else bare


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
        raise CliError(f"chromosome {spec.chrom} has room for fewer than {spec.variants} variants")
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


def write_vcf(directory: Path, spec: Spec) -> Path:
    """Write the file (BGZF with its EOF block) under `directory`, atomically; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.filename
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = BgzfWriter()
    try:
        with tmp.open("wb") as out:
            pending = bytearray(header(spec))
            for line in records(spec):
                pending += line
                if len(pending) >= FLUSH_BYTES:
                    out.write(writer.write(bytes(pending)))
                    pending.clear()
            out.write(writer.write(bytes(pending)))
            out.write(writer.close())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CliError(f"--variants must be numbers separated by commas, not {text!r}") from None
    if not counts or any(count < 1 for count in counts):
        raise CliError("--variants needs at least one positive number")
    return counts


class Panel(enum.StrEnum):
    DEMO = "demo"


def write_demo_targets(out: Path) -> None:
    """The demo panel's held-out targets (array-like, unphased) and their truth, indexed.

    The whole simulation is rerun with the demo panel's fixed seed (so the targets are held
    out of the very panel the hub registers); the panel file itself is not kept."""
    # Here, not at the top: msprime and numpy take most of a second to load.
    from imputehub.engine.demo import simulate_demo_panel

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".demo-") as scratch:
        demo = simulate_demo_panel(Path(scratch))
        for source, note in (
            (demo.targets, f"targets: {demo.target_variants} array sites, unphased"),
            (demo.truth, f"truth: {demo.panel_variants} sites, phased"),
        ):
            for name in (source.name, f"{source.name}.tbi"):
                os.replace(source.parent / name, out / name)
            typer.echo(f"{out / source.name} ({note}, {demo.target_samples} samples)")


def make_testdata(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the files to.")] = Path(
        "testdata"
    ),
    panel: Annotated[
        Panel | None,
        typer.Option(
            "--panel",
            help="Instead: target VCFs (and their truth) matching this reference panel.",
        ),
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Samples per file.")] = 50,
    variants: Annotated[
        str,
        typer.Option("--variants", help="Variants per file, comma-separated: one file each."),
    ] = DEFAULT_VARIANTS,
    chrom: Annotated[str, typer.Option("--chrom", help="Chromosome (1-22 or X).")] = "20",
    build: Annotated[Build, typer.Option("--build", help="Genome build.")] = Build.HG19,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same files.")] = 1,
) -> None:
    """Write small valid test VCFs (bgzipped, phased) to try uploads and jobs with."""
    if panel is Panel.DEMO:
        write_demo_targets(out)
        return
    name = chromosome_name(chrom, build.value)
    for count in parse_counts(variants):
        spec = Spec(samples=samples, variants=count, chrom=name, build=build.value, seed=seed)
        path = write_vcf(out, spec)
        typer.echo(
            f"{path} ({human_size(path.stat().st_size)}, {count} variants, {samples} samples)"
        )


def register(app: typer.Typer) -> None:
    app.command("testdata")(make_testdata)
