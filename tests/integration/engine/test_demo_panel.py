"""The demo panel: simulated, written as real tools expect, and realistic for imputation."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from imputehub.cli.main import run
from imputehub.domain.errors import ImputehubError
from imputehub.engine.accuracy import dosage_r2
from imputehub.engine.demo import DemoPanel, simulate_demo_panel
from imputehub.files.vcf_check import check_path

BEAGLE_JAR = Path("/usr/share/beagle/beagle.jar")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPanel:
    return simulate_demo_panel(tmp_path_factory.mktemp("demo"), seed=7, target_samples=20)


def records(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as lines:
        return [line.rstrip("\n").split("\t") for line in lines if not line.startswith("#")]


def header(path: Path) -> list[str]:
    with gzip.open(path, "rt") as lines:
        return [line.rstrip("\n") for line in lines if line.startswith("#")]


def indexed_records(path: Path) -> int:
    """Records bcftools reads through the tabix index (a region query needs the index)."""
    out = subprocess.run(
        ["bcftools", "view", "-H", "-r", "20", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return len(out.splitlines())


def test_panel_is_phased_indexed_biallelic_with_a_full_contig_line(demo: DemoPanel) -> None:
    rows = records(demo.panel)
    assert len(rows) == demo.panel_variants > 1000
    assert indexed_records(demo.panel) == demo.panel_variants
    assert "##contig=<ID=20,length=63025520,assembly=GRCh37>" in header(demo.panel)
    assert len(header(demo.panel)[-1].split("\t")) - 9 == demo.panel_samples == 500
    assert {row[0] for row in rows} == {"20"}
    positions = [int(row[1]) for row in rows]
    assert positions == sorted(set(positions))
    assert positions[0] >= 30_000_000
    assert positions[-1] <= 31_000_000
    assert all(row[3] in "ACGT" and row[4] in "ACGT" and row[3] != row[4] for row in rows)
    assert all("|" in call for row in rows[:50] for call in row[9:])
    report = check_path(demo.panel)
    assert report.problems == ()
    assert (report.build, report.phased_share) == ("hg19", 1.0)


def test_targets_are_held_out_sparse_common_unphased_and_pass_the_checker(
    demo: DemoPanel,
) -> None:
    panel_names = set(header(demo.panel)[-1].split("\t")[9:])
    target_names = header(demo.targets)[-1].split("\t")[9:]
    assert len(target_names) == demo.target_samples == 20
    assert panel_names.isdisjoint(target_names)
    assert header(demo.truth)[-1].split("\t")[9:] == target_names
    report = check_path(demo.targets)
    assert report.problems == ()
    assert (report.samples, report.variants) == (20, demo.target_variants)
    assert (report.build, report.chromosomes, report.format) == ("hg19", ("20",), "bgzf")
    assert report.phased_share == 0.0
    assert indexed_records(demo.targets) == demo.target_variants
    # Array-like: a sparse subset (one site in 10-100) of the panel's sites, same alleles.
    panel_sites = {(row[1], row[3], row[4]) for row in records(demo.panel)}
    target_rows = records(demo.targets)
    assert {(row[1], row[3], row[4]) for row in target_rows} <= panel_sites
    assert demo.panel_variants / 100 < demo.target_variants < demo.panel_variants / 10
    # The truth: every site, phased, and the targets are its genotypes, unphased.
    truth = {row[1]: row for row in records(demo.truth)}
    assert len(truth) == demo.panel_variants
    for row in target_rows:
        assert [c.replace("/", "") for c in row[9:]] == [
            "".join(sorted(c.split("|"))) for c in truth[row[1]][9:]
        ]


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = simulate_demo_panel(tmp_path / "a", seed=3, panel_samples=50, target_samples=5)
    second = simulate_demo_panel(tmp_path / "b", seed=3, panel_samples=50, target_samples=5)
    other = simulate_demo_panel(tmp_path / "c", seed=4, panel_samples=50, target_samples=5)
    for name in ("panel", "truth", "targets"):
        path: Path = getattr(first, name)
        assert path.read_bytes() == getattr(second, name).read_bytes()
        assert path.read_bytes() != getattr(other, name).read_bytes()
        assert Path(f"{path}.tbi").read_bytes() == Path(f"{getattr(second, name)}.tbi").read_bytes()


def test_beagle_imputes_the_held_out_targets_accurately(demo: DemoPanel, tmp_path: Path) -> None:
    prefix = tmp_path / "imputed"
    subprocess.run(
        [
            "java",
            "-Xmx1g",
            "-jar",
            str(BEAGLE_JAR),
            f"gt={demo.targets}",
            f"ref={demo.panel}",
            f"out={prefix}",
            "nthreads=2",
        ],
        check=True,
        capture_output=True,
    )
    imputed = Path(f"{prefix}.vcf.gz")
    assert len(records(imputed)) == demo.panel_variants
    r2 = dosage_r2(imputed, demo.truth, min_maf=0.05)
    # The accuracy bar; a constant-size population would give an unrealistic 0.99+.
    assert 0.85 <= r2 < 0.99


def test_cli_writes_the_demo_targets_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["testdata", "--panel", "demo", "--out", str(tmp_path)]) == 0
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [
        "demo.targets.vcf.gz",
        "demo.targets.vcf.gz.tbi",
        "demo.truth.vcf.gz",
        "demo.truth.vcf.gz.tbi",
    ]
    out = capsys.readouterr().out
    assert str(tmp_path / "demo.targets.vcf.gz") in out
    assert str(tmp_path / "demo.truth.vcf.gz") in out
    report = check_path(tmp_path / "demo.targets.vcf.gz")
    assert report.problems == ()
    assert (report.samples, report.build) == (50, "hg19")


def test_missing_tools_are_named_with_their_debian_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImputehubError, match=r"bgzip is not installed.*bcftools tabix"):
        simulate_demo_panel(tmp_path / "out", panel_samples=10, target_samples=2)
