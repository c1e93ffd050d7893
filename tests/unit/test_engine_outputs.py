"""Pure parts of the engine: allele matching, chromosome naming, Beagle's progress lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from imputehub.engine.outputs import SiteMatch, classify, write_dose_and_info
from imputehub.engine.pipeline import output_name, to_style
from imputehub.engine.tools import BeagleProgress, beagle_message, beagle_windows


@pytest.mark.parametrize(
    ("ref", "alt", "panel", "expected"),
    [
        ("A", "G", {("A", "G")}, SiteMatch.EXACT),
        ("G", "A", {("A", "G")}, SiteMatch.SWAPPED),
        ("T", "C", {("A", "G")}, SiteMatch.STRAND_FLIP),
        ("C", "T", {("A", "G")}, SiteMatch.STRAND_FLIP),
        ("A", "T", {("A", "T")}, SiteMatch.EXACT),
        ("T", "A", {("A", "T")}, SiteMatch.SWAPPED),
        ("A", "C", {("A", "G")}, SiteMatch.ABSENT),
        ("A", "G", set(), SiteMatch.ABSENT),
        ("A", "G", {("A", "C"), ("A", "G")}, SiteMatch.EXACT),
    ],
)
def test_classify(ref: str, alt: str, panel: set[tuple[str, str]], expected: SiteMatch) -> None:
    assert classify(ref, alt, panel) is expected


@pytest.mark.parametrize(
    ("chrom", "style", "expected"),
    [
        ("chr20", "plain", "20"),
        ("20", "chr", "chr20"),
        ("chrX", "chr", "chrX"),
        ("X", "plain", "X"),
    ],
)
def test_to_style(chrom: str, style: str, expected: str) -> None:
    assert to_style(chrom, style) == expected  # type: ignore[arg-type]


def test_output_name_is_michigans_whatever_the_naming() -> None:
    assert output_name("20") == "chr20"
    assert output_name("chr20") == "chr20"


@pytest.mark.parametrize(
    ("span", "windows"), [(0, 1), (1_000_000, 1), (39_000_000, 1), (41_000_000, 2), (63_000_000, 2)]
)
def test_beagle_windows(span: int, windows: int) -> None:
    assert beagle_windows(span) == windows


def test_progress_rises_through_windows_and_never_reaches_one() -> None:
    progress = BeagleProgress(windows=2)
    lines = ["Reference samples: 50\n", "Window 1 [20:1-40000000]\n"]
    lines += [f"Phasing iteration {i}:  0 seconds\n" for i in range(1, 13)]
    lines += ["Imputation time: 0 seconds\n", "Window 2 [20:38000000-63000000]\n"]
    lines += [f"Burnin  iteration {i}:  0 seconds\n" for i in range(1, 40)]
    values = [progress.feed(line) for line in lines]

    assert values[0] is None
    seen = [v for v in values if v is not None]
    assert seen[0] == 0.0
    assert seen == sorted(seen)
    assert values[15] == pytest.approx(0.5)  # the 'Window 2' line: half done
    assert max(seen) < 1.0


def test_more_windows_than_estimated_keep_progress_below_one() -> None:
    progress = BeagleProgress(windows=1)
    assert progress.feed("Window 3 [20:1-2]\n") == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("errors", "fragment"),
    [
        (["Marker window contains no reference markers"], "chromosome names"),
        (
            ['Exception in thread "main" java.lang.IllegalArgumentException: No VCF records found'],
            "chromosome names",
        ),
        (['Exception in thread "main" java.lang.OutOfMemoryError: Java heap space'], "heap"),
        (["ERROR: something odd"], "ERROR: something odd"),
        ([], "exit code 3"),
    ],
)
def test_beagle_errors_in_plain_words(errors: list[str], fragment: str) -> None:
    assert fragment in beagle_message("20", errors, 3)


def _beagle_vcf(path: Path) -> Path:
    """A Beagle-shaped output: one typed site, two imputed ones (DR2 0.95 and 0.30)."""
    rows = [
        "##fileformat=VCFv4.2",
        '##INFO=<ID=DR2,Number=A,Type=Float,Description="Dosage R-Squared">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
        "20\t100\t.\tA\tG\t.\tPASS\tDR2=1.00;AF=0.2000\tGT:DS\t0|1:1",
        "20\t200\t.\tC\tT\t.\tPASS\tDR2=0.95;AF=0.3000;IMP\tGT:DS\t0|0:0.1",
        "20\t300\t.\tG\tA\t.\tPASS\tDR2=0.30;AF=0.0100;IMP\tGT:DS\t0|0:0.02",
    ]
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("min_r2", "positions"), [(None, ["100", "200", "300"]), (0.5, ["100", "200"])]
)
def test_the_r2_filter_drops_poorly_imputed_sites_but_never_typed_ones(
    tmp_path: Path, min_r2: float | None, positions: list[str]
) -> None:
    source = _beagle_vcf(tmp_path / "beagle.vcf.gz")
    dose, info = tmp_path / "chr20.dose.vcf.gz", tmp_path / "chr20.info.gz"

    count = write_dose_and_info(
        source, ["##contig=<ID=20,length=63025520>\n"], dose, info, bgzip="bgzip", min_r2=min_r2
    )

    assert count == len(positions)
    with gzip.open(dose, "rt") as handle:
        lines = handle.read().splitlines()
    assert "##contig=<ID=20,length=63025520>" in lines
    assert [line.split("\t")[1] for line in lines if not line.startswith("#")] == positions
    with gzip.open(info, "rt") as handle:
        rows = [line.split("\t") for line in handle.read().splitlines()[1:]]
    assert [row[0].split(":")[1] for row in rows] == positions
    assert rows[0][5:] == ["1.00", "Genotyped"]
