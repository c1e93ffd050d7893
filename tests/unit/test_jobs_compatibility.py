"""A file against a panel: the reasons a job would be refused, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from imputehub.db.models import ReferencePanel, Service
from imputehub.jobs import reuse
from imputehub.jobs.compatibility import judge, shared_chromosomes


def service(**fields: Any) -> Service:
    values: dict[str, Any] = {
        "slug": "mis",
        "api_type": "michigan",
        "supported_builds": ["hg19", "hg38"],
        "api_config": {},
        "max_upload_size": None,
    }
    return Service(**{**values, **fields})


def panel(**fields: Any) -> ReferencePanel:
    return ReferencePanel(**{"slug": "hrc", "build": "hg19", "contigs": [], **fields})


def report(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "samples": 30,
        "chromosomes": ["20"],
        "build": "hg19",
        "build_source": "contig_lengths",
        "phased_share": 1.0,
        "problems": [],
    }
    return {**values, **fields}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ()),
        (
            {"report": report(build="hg38")},
            (
                "the file looks like hg38 data (from its ##contig lengths), but the job's "
                "build is hg19",
            ),
        ),
        (
            {"report": report(samples=3)},
            ("it has 3 sample(s). At least 20 samples must be uploaded.",),
        ),
        (
            {"report": report(chromosomes=["chr20"])},
            ("Your upload data contains chromosome 'chr20'. This is not a valid hg19 encoding.",),
        ),
        (
            {"report": report(phased_share=0.5), "phasing": "no_phasing"},
            ("Your input data is unphased. Please select an algorithm for phasing.",),
        ),
        ({"report": report(phased_share=0.5), "phasing": "no_phasing", "mode": "qc_only"}, ()),
        ({"report": None}, ("the file was not checked; upload it again",)),
        (
            {"service": service(max_upload_size=10), "size": 11},
            ("file 'a.vcf.gz' (11 bytes) is larger than service 'mis' accepts (10 bytes)",),
        ),
        (
            {"service": service(supported_builds=["hg38"])},
            ("the service accepts build(s) hg38, not hg19",),
        ),
        (
            {"service": service(api_config={"phasing": ["eagle"]}), "phasing": "beagle"},
            ("service 'mis' offers no phasing 'beagle' (it offers: eagle)",),
        ),
        (
            {"service": service(api_type="local"), "panel": panel(contigs=["chr22"])},
            ("the panel covers chromosome(s) 22; the file has 20",),
        ),
        # Several reasons at once: each rule is asked on its own.
        (
            {
                "service": service(max_upload_size=10, supported_builds=["hg38"]),
                "size": 11,
                "report": report(samples=1),
            },
            (
                "the service accepts build(s) hg38, not hg19",
                "file 'a.vcf.gz' (11 bytes) is larger than service 'mis' accepts (10 bytes)",
                "it has 1 sample(s). At least 20 samples must be uploaded.",
            ),
        ),
    ],
)
def test_judge(changes: dict[str, Any], expected: tuple[str, ...]) -> None:
    arguments: dict[str, Any] = {
        "filename": "a.vcf.gz",
        "size": 5,
        "report": report(),
        "service": service(),
        "panel": panel(),
        "phasing": None,
        "mode": "imputation",
        **changes,
    }
    assert judge(**arguments) == expected


@pytest.mark.parametrize(
    ("chromosomes", "contigs", "expected"),
    [
        (["20"], ["chr20"], None),
        (["chr20"], ["20", "21"], None),
        ([], ["20"], None),
        (["20"], [], None),
        (["X"], ["chrx"], None),
        (["20"], ["21", "22"], "the panel covers chromosome(s) 21, 22; the file has 20"),
        (
            [str(c) for c in range(1, 8)],
            ["22"],
            "the panel covers chromosome(s) 22; the file has 1, 2, 3, 4, 5 ...",
        ),
    ],
)
def test_shared_chromosomes(
    chromosomes: list[str], contigs: list[str], expected: str | None
) -> None:
    assert shared_chromosomes({"chromosomes": chromosomes}, contigs) == expected


@pytest.mark.parametrize(
    ("name", "mode", "expected"),
    [
        ("study", "imputation", "study (again)"),
        ("study (again)", "imputation", "study (again)"),
        ("study (again)", "qc_only", "study (QC only)"),
        ("x" * 200, "imputation", "x" * 192 + " (again)"),
    ],
)
def test_a_past_jobs_name_again(name: str, mode: str, expected: str) -> None:
    assert reuse.again(name, mode) == expected
