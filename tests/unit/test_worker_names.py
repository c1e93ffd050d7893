"""How the worker names things people read: result files and time limits."""

from __future__ import annotations

import pytest

from imputehub.worker.outcomes import duration
from imputehub.worker.sink import safe_name


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("chr20.dose.vcf.gz", "chr20.dose.vcf.gz"),
        ("results/chr20.info.gz", "chr20.info.gz"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "result"),
        ("", "result"),
        (".hidden", "hidden"),
        ("qc report (final).html", "qc_report_final_.html"),
        ("résumé.txt", "r_sum_.txt"),
        ("a" * 300 + ".zip", "a" * 196 + ".zip"),
    ],
)
def test_result_names_are_safe(given: str, stored: str) -> None:
    assert safe_name(given) == stored


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (7 * 86400, "7 days"),
        (86400, "1 day"),
        (36 * 3600, "1.5 days"),
        (2 * 3600, "2 hours"),
        (3600, "1 hour"),
        (30 * 60, "30 minutes"),
        (45, "45 seconds"),
        (1, "1 second"),
        (0.5, "0.5 seconds"),
    ],
)
def test_time_limits_read_naturally(seconds: float, said: str) -> None:
    assert duration(seconds) == said
