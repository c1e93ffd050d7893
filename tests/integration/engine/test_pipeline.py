"""The local engine's pipeline against the real tools (Beagle, bcftools, tabix) on tiny data."""

from __future__ import annotations

import gzip
import random
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from imputehub.engine.outputs import INFO_COLUMNS
from imputehub.engine.pipeline import (
    IMPUTATION,
    QUALITY_CONTROL,
    SUMMARY,
    VALIDATION,
    PipelineCancelled,
    PipelineError,
    run_pipeline,
)
from imputehub.engine.tools import Tools, check_tools

TOOLS = check_tools()


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    # `make test` installs them (Makefile APT_RUN): a missing tool fails, it does not skip.
    assert TOOLS.healthy, TOOLS.message


SITES = 400
PANEL_SAMPLES = 50
TARGET_SAMPLES = 5
FOUNDERS = 6
TYPED_EVERY = 5


@dataclass(frozen=True)
class Data:
    panel: Path
    positions: list[int]
    alleles: list[tuple[str, str]]
    target_haps: list[list[int]]


def _write_vcf(
    path: Path,
    chrom: str,
    records: Sequence[tuple[int, str, str, Sequence[str]]],
    samples: Sequence[str],
    contig_length: int | None = None,
) -> Path:
    lines = ["##fileformat=VCFv4.2"]
    if contig_length:
        lines.append(f"##contig=<ID={chrom},length={contig_length},assembly=GRCh38>")
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]))
    lines[-1] += "\tFORMAT\t" + "\t".join(samples)
    for pos, ref, alt, calls in records:
        lines.append("\t".join([chrom, str(pos), f"rs{pos}", ref, alt, ".", "PASS", ".", "GT"]))
        lines[-1] += "\t" + "\t".join(calls)
    with open(path, "wb") as out:
        data = ("\n".join(lines) + "\n").encode()
        subprocess.run(["bgzip", "-c"], input=data, stdout=out, check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    """Haplotypes as mosaics of a few founders: linkage that Beagle can impute from."""
    rng = random.Random(4)
    positions = sorted(rng.sample(range(1_000_000, 2_000_000), SITES))
    alleles = []
    for _ in positions:
        ref = rng.choice("ACGT")
        alleles.append((ref, rng.choice([b for b in "ACGT" if b != ref])))
    founders = [[int(rng.random() < 0.3) for _ in range(SITES)] for _ in range(FOUNDERS)]

    def haplotype() -> list[int]:
        source, out = rng.randrange(FOUNDERS), []
        for site in range(SITES):
            if rng.random() < 0.01:
                source = rng.randrange(FOUNDERS)
            out.append(founders[source][site])
        return out

    haps = [haplotype() for _ in range(2 * (PANEL_SAMPLES + TARGET_SAMPLES))]
    records = [
        (pos, *alleles[i], [f"{haps[2 * s][i]}|{haps[2 * s + 1][i]}" for s in range(PANEL_SAMPLES)])
        for i, pos in enumerate(positions)
    ]
    samples = [f"P{s}" for s in range(PANEL_SAMPLES)]
    panel = _write_vcf(
        tmp_path_factory.mktemp("panel") / "panel.vcf.gz", "20", records, samples, 64_444_167
    )
    return Data(panel, positions, alleles, haps[2 * PANEL_SAMPLES :])


_FLIP = str.maketrans("ACGT", "TGCA")


def make_target(data: Data, path: Path, chrom: str = "20") -> Path:
    """Every 5th panel site, unphased; plus one absent, one swapped and one flipped site."""
    records = []
    for i in range(0, SITES, TYPED_EVERY):
        ref, alt = data.alleles[i]
        calls = []
        for s in range(TARGET_SAMPLES):
            a, b = sorted((data.target_haps[2 * s][i], data.target_haps[2 * s + 1][i]))
            calls.append(f"{a}/{b}")
        if i == 5:
            ref, alt = alt, ref  # an allele switch
        if i == 10 and ref.translate(_FLIP) != alt:
            ref, alt = ref.translate(_FLIP), alt.translate(_FLIP)  # a strand flip
        records.append((data.positions[i], ref, alt, calls))
        if i == 15:
            records.append((data.positions[i] + 1, "A", "G", ["0/1"] * TARGET_SAMPLES))
    samples = [f"T{s}" for s in range(TARGET_SAMPLES)]
    return _write_vcf(path, chrom, records, samples)


def _records(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as lines:
        return [line.rstrip("\n").split("\t") for line in lines if not line.startswith("#")]


def _header(path: Path) -> list[str]:
    with gzip.open(path, "rt") as lines:
        return [line for line in lines if line.startswith("#")]


def test_full_run_writes_michigan_shaped_results(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz")
    steps: list[tuple[str, float]] = []

    result = run_pipeline(
        [target],
        data.panel,
        tmp_path / "work",
        heap_mb=512,
        threads=2,
        on_progress=lambda step, percent: steps.append((step, percent)),
    )

    out = tmp_path / "work" / "results"
    assert result.results_dir == out
    assert result.chromosomes == ("20",)
    assert set(result.files) == {
        "chr20.dose.vcf.gz",
        "chr20.dose.vcf.gz.tbi",
        "chr20.info.gz",
        "qc_report.html",
        "qc_report.txt",
        "statistics/snps-excluded.txt",
        "statistics/snps-typed-only.txt",
    }
    assert not (tmp_path / "work" / "tmp").exists()
    # The dose file: every panel site, DS and GP per sample, DR2, and the panel's contig line.
    header = _header(out / "chr20.dose.vcf.gz")
    assert "##contig=<ID=20,length=64444167,assembly=GRCh38>\n" in header
    records = _records(out / "chr20.dose.vcf.gz")
    assert [int(r[1]) for r in records] == data.positions
    assert all(r[8] == "GT:DS:GP" and "DR2=" in r[7] for r in records)
    assert len(records[0]) == 9 + TARGET_SAMPLES
    # Indexed: a region query answers.
    region = f"20:{data.positions[100]}-{data.positions[100]}"
    found = subprocess.run(
        ["tabix", str(out / "chr20.dose.vcf.gz"), region],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.split("\t")[1] == str(data.positions[100])
    # The info file: Michigan's columns, Rsq = Beagle's DR2, typed sites marked Genotyped.
    with gzip.open(out / "chr20.info.gz", "rt") as info:
        rows = [line.rstrip("\n").split("\t") for line in info]
    assert tuple(rows[0]) == INFO_COLUMNS
    assert len(rows) - 1 == SITES
    dr2 = {r[1]: r[7].split("DR2=")[1].split(";")[0] for r in records}
    by_pos = {row[0].split(":")[1]: row for row in rows[1:]}
    assert all(by_pos[pos][5] == value for pos, value in dr2.items())
    genotyped = {int(row[0].split(":")[1]) for row in rows[1:] if row[6] == "Genotyped"}
    typed = {data.positions[i] for i in range(0, SITES, TYPED_EVERY)}
    assert genotyped
    assert genotyped <= typed
    frq, maf = float(rows[1][3]), float(rows[1][4])
    assert maf == pytest.approx(min(frq, 1 - frq), abs=1e-5)
    # The QC statistics: the switched and flipped sites excluded, the extra site typed-only.
    excluded = (out / "statistics" / "snps-excluded.txt").read_text().splitlines()
    assert excluded[0].startswith("#Position")
    assert any(f":{data.positions[5]}:" in line and "Allele switch" in line for line in excluded)
    typed_only = (out / "statistics" / "snps-typed-only.txt").read_text().splitlines()
    assert typed_only[1:] == [f"20:{data.positions[15] + 1}:A:G"]
    report = (out / "qc_report.txt").read_text()
    assert "Allele switches (excluded): 1" in report
    assert "Typed-only sites, not in the panel (excluded): 1" in report
    # Steps in order, imputation progress rising to 100.
    assert list(dict.fromkeys(s for s, _ in steps)) == [
        VALIDATION,
        QUALITY_CONTROL,
        IMPUTATION,
        SUMMARY,
    ]
    imputing = [p for s, p in steps if s == IMPUTATION]
    assert imputing == sorted(imputing)
    assert imputing[-1] == 100.0
    assert len(imputing) > 3


def test_qc_only_writes_only_the_qc_outputs(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz")
    steps: list[str] = []

    result = run_pipeline(
        [target],
        data.panel,
        tmp_path / "work",
        mode="qc_only",
        on_progress=lambda step, percent: steps.append(step),
    )

    assert set(result.files) == {
        "qc_report.html",
        "qc_report.txt",
        "statistics/snps-excluded.txt",
        "statistics/snps-typed-only.txt",
    }
    assert IMPUTATION not in steps
    assert "Sites matching the panel: " in (result.results_dir / "qc_report.txt").read_text()


def test_chr_prefixed_target_is_renamed_to_the_panel_naming(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz", chrom="chr20")

    result = run_pipeline([target], data.panel, tmp_path / "work", heap_mb=512, threads=2)

    assert result.chromosomes == ("20",)
    records = _records(result.results_dir / "chr20.dose.vcf.gz")
    assert {r[0] for r in records} == {"20"}
    assert len(records) == SITES
    assert "chr20 -> 20" in (result.results_dir / "qc_report.txt").read_text()


def test_unsorted_input_is_refused(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz")
    with gzip.open(target, "rt") as source:
        lines = source.read().splitlines(keepends=True)
    head = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    body[3], body[4] = body[4], body[3]
    unsorted = tmp_path / "unsorted.vcf.gz"
    with open(unsorted, "wb") as out:
        subprocess.run(["bgzip", "-c"], input="".join(head + body).encode(), stdout=out, check=True)

    with pytest.raises(PipelineError, match="not sorted"):
        run_pipeline([unsorted], data.panel, tmp_path / "work")
    assert not (tmp_path / "work" / "results").exists()


def test_chromosome_missing_from_the_panel_is_explained(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz", chrom="21")
    with pytest.raises(PipelineError, match="chromosome '21' is not in the reference panel"):
        run_pipeline([target], data.panel, tmp_path / "work")


def _beagle_pids(work: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "beagle" in cmdline and str(work) in cmdline:
                pids.append(int(entry.name))
    return pids


def test_cancel_mid_run_kills_beagle_and_removes_outputs(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz")
    work = tmp_path / "work"
    cancel = threading.Event()
    seen: list[int] = []

    def on_progress(step: str, percent: float) -> None:
        # Beagle has printed its first window line: it is running now.
        if step == IMPUTATION and not cancel.is_set() and _beagle_pids(work):
            seen.extend(_beagle_pids(work))
            cancel.set()

    with pytest.raises(PipelineCancelled):
        run_pipeline(
            [target],
            data.panel,
            work,
            heap_mb=512,
            threads=2,
            on_progress=on_progress,
            cancel_event=cancel,
            kill_grace=2.0,
        )

    assert seen
    assert not any(Path(f"/proc/{pid}").exists() for pid in seen)
    assert not (work / "results").exists()
    assert not (work / "tmp").exists()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has finished; only its exit code is left


def _fake_java(tmp_path: Path, body: str) -> Tools:
    """A stand-in for `java -jar beagle.jar` (our Tools interface), for failure modes."""
    script = tmp_path / "fake-java"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    assert TOOLS.tools is not None
    return replace(TOOLS.tools, java=str(script))


def test_beagle_hanging_after_an_exception_is_killed_and_explained(
    data: Data, tmp_path: Path
) -> None:
    # Beagle 5.4 prints the exception and then never exits: only killing it ends the run.
    tools = _fake_java(
        tmp_path,
        f"echo $$ > {tmp_path}/pid.tmp && mv {tmp_path}/pid.tmp {tmp_path}/pid\n"
        'echo "Exception in thread \\"main\\" java.lang.IllegalArgumentException: '
        'No VCF records found in the specified interval." >&2\n'
        "exec sleep 60\n",
    )
    target = make_target(data, tmp_path / "study.vcf.gz")

    with pytest.raises(PipelineError, match="chromosome names of the input and the panel differ"):
        run_pipeline([target], data.panel, tmp_path / "work", tools=tools, kill_grace=1.0)

    assert not _alive(int((tmp_path / "pid").read_text()))
    assert not (tmp_path / "work" / "results").exists()


def test_cancel_kills_the_whole_group_even_when_sigterm_is_ignored(
    data: Data, tmp_path: Path
) -> None:
    tools = _fake_java(
        tmp_path,
        "trap '' TERM\n"
        "sleep 60 &\n"
        f"echo $$ $! > {tmp_path}/pids.tmp && mv {tmp_path}/pids.tmp {tmp_path}/pids\n"
        'echo "Window 1 [20:1-2]"\n'
        "wait\n",
    )
    target = make_target(data, tmp_path / "study.vcf.gz")
    cancel = threading.Event()

    def on_progress(step: str, percent: float) -> None:
        if step == IMPUTATION and (tmp_path / "pids").exists():
            cancel.set()

    with pytest.raises(PipelineCancelled):
        run_pipeline(
            [target],
            data.panel,
            tmp_path / "work",
            tools=tools,
            on_progress=on_progress,
            cancel_event=cancel,
            kill_grace=0.2,
        )

    pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "work").joinpath("results").exists()


def test_uncompressed_input_is_refused(data: Data, tmp_path: Path) -> None:
    plain = tmp_path / "study.vcf"
    with gzip.open(make_target(data, tmp_path / "study.vcf.gz"), "rb") as source:
        plain.write_bytes(source.read())

    with pytest.raises(PipelineError, match="not compressed"):
        run_pipeline([plain], data.panel, tmp_path / "work")


def test_a_rerun_drops_the_leftovers_of_an_earlier_run(data: Data, tmp_path: Path) -> None:
    target = make_target(data, tmp_path / "study.vcf.gz")
    stale = tmp_path / "work" / "results" / "chr21.dose.vcf.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a run that died")

    result = run_pipeline([target], data.panel, tmp_path / "work", mode="qc_only")

    assert "chr21.dose.vcf.gz" not in result.files
    assert not stale.exists()
    assert "qc_report.txt" in result.files
