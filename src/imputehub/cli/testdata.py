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
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from imputehub.cli.errors import CliError
from imputehub.cli.output import human_size
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import Build
from imputehub.domain.vcf import LENGTHS, bare_chromosome
from imputehub.files.bgzf import BgzfWriter
from imputehub.files.testdata import Spec, header, records

# Text handed to the compressor at a time: memory stays bounded for any file size.
FLUSH_BYTES = 1024 * 1024
DEFAULT_VARIANTS = "100,1000,10000"


def chromosome_name(chrom: str, build: str) -> str:
    """Michigan's naming: hg19 without the 'chr' prefix, hg38 with it."""
    bare = bare_chromosome(chrom.strip())
    if bare not in LENGTHS[build] or bare == "Y":
        raise CliError(f"--chrom must be one of 1-22 or X, not {chrom!r}")
    return f"chr{bare}" if build == Build.HG38 else bare


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
        try:
            path = write_vcf(out, spec)
        except InvalidInput as exc:
            raise CliError(exc.message) from None
        typer.echo(
            f"{path} ({human_size(path.stat().st_size)}, {count} variants, {samples} samples)"
        )


def register(app: typer.Typer) -> None:
    app.command("testdata")(make_testdata)
