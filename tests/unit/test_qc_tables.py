"""QC statistics files read as tables for the job page (the parsing; reading is bounded and
tested over HTTP in tests/integration/web/test_job_pages.py)."""

from __future__ import annotations

from imputehub.web.qc_tables import MAX_CELL, is_qc_file, parse

LOCAL_REPORT = """Quality Control

Reference panel: demo

Input file: study.vcf.gz
  Samples: 40
  Allele switches (excluded): 12
  Warning: 3 sites look strand-flipped
"""

MICHIGAN_REPORT = """Statistics:
Reference Overlap: 98.51 %
Allele switch: 1,204
Strand flip: 0
"""


def test_the_local_engines_report_by_input_file() -> None:
    header, rows = parse(LOCAL_REPORT.splitlines())
    assert header == ("Section", "Figure", "Value")
    assert rows == [
        ("Quality Control", "Reference panel", "demo"),
        ("Input file: study.vcf.gz", "Samples", "40"),
        ("Input file: study.vcf.gz", "Allele switches (excluded)", "12"),
        ("Input file: study.vcf.gz", "Warning", "3 sites look strand-flipped"),
    ]


def test_a_michigan_report_under_its_heading() -> None:
    _, rows = parse(MICHIGAN_REPORT.splitlines())
    assert rows[1] == ("Statistics", "Allele switch", "1,204")


def test_tab_separated_lists_keep_their_columns() -> None:
    header, rows = parse(["#Position\tFilterType\tInfo", "20:60001:A:G\tAllele switch\t-", ""])
    assert header == ("Position", "FilterType", "Info")
    assert rows == [("20:60001:A:G", "Allele switch", "-")]


def test_cells_are_bounded() -> None:
    _, rows = parse(["#A", "x" * 10_000])
    assert len(rows[0][0]) == MAX_CELL + 1  # cut, with an ellipsis


def test_which_results_are_qc_files() -> None:
    assert is_qc_file("statistics/snps-excluded.txt")
    assert is_qc_file("qc_report.txt")
    assert not is_qc_file("chr_20.zip")
    assert not is_qc_file("qc_report.html")
