"""A run's spec names its panel so that any runner, started in any directory, finds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from imputehub.connectors.local.runs import RunSpec


def spec(panel_vcf: str) -> RunSpec:
    return RunSpec(
        inputs=("inputs/0/a.vcf.gz",),
        panel_vcf=panel_vcf,
        panel_name="Demo",
        chrom_style="chr",
        mode="imputation",
        heap_mb=1024,
        threads=1,
        java="java",
        beagle_jar="/usr/share/beagle/beagle.jar",
    )


@pytest.mark.parametrize(
    ("recorded", "found"),
    [
        # What this version writes: absolute, used as it is.
        ("/srv/hub/engine/panels/demo/panel.vcf.gz", "/srv/hub/engine/panels/demo/panel.vcf.gz"),
        # Written by an older hub started with the relative default `./var`: the panel is
        # looked up in the engine directory the run itself lives in.
        ("var/engine/panels/demo/panel.vcf.gz", "/data/engine/panels/demo/panel.vcf.gz"),
        ("panels/eur-chr20/panel.vcf.gz", "/data/engine/panels/eur-chr20/panel.vcf.gz"),
    ],
)
def test_the_panel_is_found_whatever_the_runners_directory(recorded: str, found: str) -> None:
    run_dir = Path("/data/engine/runs/job-1")
    assert spec(recorded).panel_file(run_dir) == Path(found)


def test_a_spec_survives_its_json_round_trip() -> None:
    original = spec("/srv/hub/engine/panels/demo/panel.vcf.gz")
    assert RunSpec.from_json(original.to_json()) == original
