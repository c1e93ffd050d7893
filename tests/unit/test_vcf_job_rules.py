"""What a job demands of its input files' VCF reports (jobs/validation.input_report)."""

from __future__ import annotations

from typing import Any

import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.jobs.validation import input_report

FIT: dict[str, Any] = {
    "samples": 50,
    "chromosomes": ["20"],
    "build": "hg19",
    "build_source": "contig_lengths",
    "phased_share": 1.0,
    "problems": [],
}
JOB = {"build": "hg19", "phasing": "eagle", "mode": "imputation", "api_type": "michigan"}


def report(**changes: Any) -> dict[str, Any]:
    return {**FIT, **changes}


ERROR = {"severity": "error", "code": "unsorted", "message": "not sorted"}
WARNING = {"severity": "warning", "code": "missing_eof", "message": "may be truncated"}

REFUSED = [
    pytest.param(None, {}, "file 'f.vcf.gz': the file was not checked", id="unchecked"),
    pytest.param(
        report(problems=[WARNING, ERROR]), {}, "the file has errors: not sorted", id="error"
    ),
    pytest.param(
        report(problems=[ERROR] * 5),
        {},
        "errors: not sorted; not sorted; not sorted (and 2 more)",
        id="first-three-errors",
    ),
    pytest.param(
        report(build="hg38"),
        {},
        "looks like hg38 data (from its ##contig lengths), but the job's build is hg19",
        id="build",
    ),
    pytest.param(
        report(build="hg38", build_source="positions"),
        {},
        "(from its positions)",
        id="build-from-positions",
    ),
    pytest.param(
        report(samples=19),
        {},
        "it has 19 sample(s). At least 20 samples must be uploaded.",
        id="19",
    ),
    pytest.param(
        report(chromosomes=["chr20"], build=None),
        {},
        "Your upload data contains chromosome 'chr20'. This is not a valid hg19 encoding.",
        id="prefix-hg19",
    ),
    pytest.param(
        report(build="hg38"),
        {"build": "hg38"},
        "Your upload data contains chromosome '20'. This is not a valid hg38 encoding.",
        id="no-prefix-hg38",
    ),
    pytest.param(
        report(phased_share=0.999),
        {"phasing": "no_phasing"},
        "Your input data is unphased. Please select an algorithm for phasing.",
        id="unphased",
    ),
]


@pytest.mark.parametrize(("found", "job", "message"), REFUSED)
def test_refused(found: dict[str, Any] | None, job: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        input_report("f.vcf.gz", found, **{**JOB, **job})
    assert message in caught.value.message
    assert caught.value.message.startswith("file 'f.vcf.gz': ")
    assert caught.value.code == "input_file_rejected"
    assert caught.value.extra["field"] == "input_file_ids"
    assert caught.value.extra.get("report") == found


ACCEPTED = [
    pytest.param(report(), {}, id="fit"),
    pytest.param(report(problems=[WARNING]), {}, id="warnings-only"),
    pytest.param(report(samples=20), {}, id="exactly-20"),
    pytest.param(report(samples=3), {"api_type": "ga4gh_wes"}, id="few-samples-elsewhere"),
    pytest.param(report(build=None), {}, id="build-unknown"),
    pytest.param(report(chromosomes=["chr20"], build="hg38"), {"build": "hg38"}, id="hg38"),
    pytest.param(report(chromosomes=["chr20"]), {"api_type": "local"}, id="prefix-elsewhere"),
    pytest.param(report(phased_share=0.5), {}, id="unphased-with-phasing"),
    pytest.param(
        report(phased_share=0.0), {"phasing": "no_phasing", "mode": "qc_only"}, id="qc-only"
    ),
    pytest.param(report(phased_share=None), {"phasing": "no_phasing"}, id="haploid-only"),
]


@pytest.mark.parametrize(("found", "job"), ACCEPTED)
def test_accepted(found: dict[str, Any], job: dict[str, str]) -> None:
    input_report("f.vcf.gz", found, **{**JOB, **job})
