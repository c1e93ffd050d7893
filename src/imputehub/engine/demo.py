"""The demo reference panel: a realistic, simulated stretch of chromosome 20 (hg19).

One coalescent simulation (msprime) yields the panel AND held-out target individuals, so
the targets are drawn from the panel's population, as real study samples are. The
demography has recent exponential growth because a constant population size makes
imputation unrealistically easy (r2 >= 0.99); HKY mutations give a human-like Ts/Tv of ~2.
Files are written by tskit through `bgzip`/`bcftools` (with `--no-version`, so the bytes
depend only on the options and the seed, not on the directory or tool invocation).
"""

from __future__ import annotations

import math
import random
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msprime  # type: ignore[import-untyped]
import numpy as np
import tskit  # type: ignore[import-untyped]

from imputehub.domain.errors import ImputehubError

CONTIG = "20"
CONTIG_LENGTH = 63_025_520
ASSEMBLY = "GRCh37"
BUILD = "hg19"
# Where the simulated region sits on chromosome 20: well inside, away from the centromere.
OFFSET = 30_000_000

# Debian packages providing the tools the files are written with.
TOOLS = "bcftools tabix"

PANEL_FILE = "demo.panel.vcf.gz"
TRUTH_FILE = "demo.truth.vcf.gz"
TARGETS_FILE = "demo.targets.vcf.gz"

ANCESTRAL_SIZE = 10_000
PRESENT_SIZE = 500_000
GROWTH_GENERATIONS = 200
MUTATION_RATE = 1.25e-8
RECOMBINATION_RATE = 1e-8
KAPPA = 4.0
# The "array": every 5th-20th site (a random step), kept if common (MAF above ARRAY_MIN_MAF):
# about one marker per 10 kb, as on a genotyping chip.
ARRAY_MIN_MAF = 0.05
ARRAY_GAP = (5, 20)
# The seed of the panel the hub registers; `imputehub testdata --panel demo` uses it too.
DEMO_SEED = 20


@dataclass(frozen=True, kw_only=True)
class DemoPanel:
    """What `simulate_demo_panel` wrote; each VCF has a tabix index next to it (`.tbi`)."""

    panel: Path
    truth: Path
    targets: Path
    panel_samples: int
    target_samples: int
    panel_variants: int
    target_variants: int
    contig: str
    contig_length: int
    build: str


def demography() -> msprime.Demography:
    """Ne 10,000 until 200 generations ago, then exponential growth to 500,000 today."""
    rate = math.log(PRESENT_SIZE / ANCESTRAL_SIZE) / GROWTH_GENERATIONS
    model = msprime.Demography()
    model.add_population(name="demo", initial_size=PRESENT_SIZE, growth_rate=rate)
    model.add_population_parameters_change(
        time=GROWTH_GENERATIONS, initial_size=ANCESTRAL_SIZE, growth_rate=0, population="demo"
    )
    return model


def simulate(*, seed: int, individuals: int, length: int) -> tskit.TreeSequence:
    """The tree sequence with biallelic sites only (sites hit twice are dropped)."""
    ancestry = msprime.sim_ancestry(
        samples={"demo": individuals},
        ploidy=2,
        demography=demography(),
        recombination_rate=RECOMBINATION_RATE,
        sequence_length=length,
        random_seed=seed,
    )
    mutated = msprime.sim_mutations(
        ancestry, rate=MUTATION_RATE, model=msprime.HKY(kappa=KAPPA), random_seed=seed
    )
    multiple = [site.id for site in mutated.sites() if len(site.mutations) != 1]
    return mutated.delete_sites(multiple)


def array_sites(ts: tskit.TreeSequence, panel_nodes: np.ndarray[Any, Any], seed: int) -> list[int]:
    """Site ids of an array-like design: sparse, common in the panel (as chips are designed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    common: list[bool] = []
    for variant in ts.variants(samples=panel_nodes):
        frequency = float(np.mean(variant.genotypes))
        common.append(min(frequency, 1 - frequency) > ARRAY_MIN_MAF)
    chosen: list[int] = []
    site = rng.randint(*ARRAY_GAP) - 1
    while site < len(common):
        if common[site]:
            chosen.append(site)
        site += rng.randint(*ARRAY_GAP)
    return chosen


class _HeaderFix:
    """A text sink for tskit's VCF writer that puts a complete contig line in the header."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.in_header = True

    def write(self, text: str) -> int:
        if self.in_header and "##contig=" in text:
            lines = text.split("\n")
            contig = f"##contig=<ID={CONTIG},length={CONTIG_LENGTH},assembly={ASSEMBLY}>"
            text = "\n".join(contig if line.startswith("##contig=") else line for line in lines)
        if "#CHROM" in text:
            self.in_header = False
        self.out.write(text.encode())
        return len(text)


def _write(
    ts: tskit.TreeSequence,
    individuals: Sequence[int],
    names: Sequence[str],
    command: list[str],
    path: Path,
    *,
    site_mask: np.ndarray[Any, Any] | None = None,
) -> None:
    """Write the individuals' phased genotypes through `command` (reads VCF text on stdin).

    The ID column is the site's number in the simulation, the same in every file."""
    with path.open("wb") as out, tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(  # noqa: S603
                command, stdin=subprocess.PIPE, stdout=out, stderr=errors
            )
        except FileNotFoundError:
            raise ImputehubError(
                f"{command[0]} is not installed: install the Debian packages {TOOLS}",
                code="tool_missing",
            ) from None
        assert process.stdin is not None
        try:
            ts.write_vcf(
                _HeaderFix(process.stdin),
                individuals=list(individuals),
                individual_names=list(names),
                contig_id=CONTIG,
                position_transform=lambda x: np.round(x).astype(int) + OFFSET,
                site_mask=site_mask,
            )
        finally:
            process.stdin.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            message = errors.read()[-2000:].decode(errors="replace").strip()
            raise ImputehubError(
                f"{command[0]} failed writing {path.name} (exit {code}): {message}",
                code="tool_failed",
            )
    subprocess.run(["bcftools", "index", "-t", "-f", str(path)], check=True)  # noqa: S603, S607


def simulate_demo_panel(
    out_dir: Path,
    *,
    seed: int = DEMO_SEED,
    panel_samples: int = 500,
    target_samples: int = 50,
    length: int = 1_000_000,
) -> DemoPanel:
    """Simulate and write the panel, the targets' truth and the array-like targets."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = simulate(seed=seed, individuals=panel_samples + target_samples, length=length)
    panel = range(panel_samples)
    targets = range(panel_samples, panel_samples + target_samples)
    panel_names = [f"DEMO{index + 1:04d}" for index in panel]
    target_names = [f"TARGET{index + 1:03d}" for index in range(target_samples)]
    bgzip = ["bgzip", "-c"]
    _write(ts, panel, panel_names, bgzip, out_dir / PANEL_FILE)
    _write(ts, targets, target_names, bgzip, out_dir / TRUTH_FILE)
    panel_nodes = np.concatenate([ts.individual(index).nodes for index in panel])
    keep = array_sites(ts, panel_nodes, seed)
    mask = np.ones(ts.num_sites, dtype=bool)
    mask[keep] = False  # tskit's mask marks the sites to leave out
    unphase = ["bcftools", "+setGT", "--no-version", "-Oz", "-", "--", "-t", "a", "-n", "u"]
    _write(ts, targets, target_names, unphase, out_dir / TARGETS_FILE, site_mask=mask)
    return DemoPanel(
        panel=out_dir / PANEL_FILE,
        truth=out_dir / TRUTH_FILE,
        targets=out_dir / TARGETS_FILE,
        panel_samples=panel_samples,
        target_samples=target_samples,
        panel_variants=ts.num_sites,
        target_variants=len(keep),
        contig=CONTIG,
        contig_length=CONTIG_LENGTH,
        build=BUILD,
    )
