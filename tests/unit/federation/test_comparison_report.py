"""The comparison as TSV (parses back) and HTML (self-contained, every label escaped)."""

from __future__ import annotations

import re
from pathlib import Path

from imputehub.federation.analysis import ChildDoses, analyse
from imputehub.federation.comparison_report import read_sections
from tests.unit.federation.vcf_builders import BGZIP, MINIMAC_META, TABIX, Row, gt_ds, write_vcf

HOSTILE = '<script>alert("x")</script> & Co\tpanel'


def run(tmp_path: Path) -> Path:
    def child(name: str, chrom: str, r2: float, ds: list[float]) -> Path:
        return write_vcf(
            tmp_path / name,
            ["s1", "s2", "s3"],
            [
                Row(
                    chrom=chrom,
                    pos=10,
                    ref="A",
                    alt="G",
                    info=f"DR2={r2};AF=0.2;IMP",
                    calls=gt_ds(ds),
                ),
                Row(
                    chrom=chrom,
                    pos=20,
                    ref="C",
                    alt="T",
                    info=f"DR2={r2};AF=0.003;IMP",
                    calls=gt_ds([x / 2 for x in ds]),
                ),
            ],
        )

    sites_only = write_vcf(
        tmp_path / "c.vcf.gz",
        [],
        [Row(chrom="20", pos=10, ref="A", alt="G", info="R2=0.5;IMPUTED")],
        meta=MINIMAC_META,
    )
    children = [
        ChildDoses(key="t1", label=HOSTILE, files=(child("a.vcf.gz", "chr20", 0.9, [0, 1, 2]),)),
        ChildDoses(key="t2", label="Plain", files=(child("b.vcf.gz", "20", 0.4, [0, 1.5, 2]),)),
        ChildDoses(key="t3", label="Sites only", files=(sites_only,)),
    ]
    out = tmp_path / "out"
    analyse(children, [], out, bgzip=BGZIP, tabix=TABIX)
    return out


def test_the_tsv_parses_back_into_its_sections(tmp_path: Path) -> None:
    sections = read_sections(run(tmp_path) / "comparison.tsv")
    assert set(sections) == {"summary", "children", "r2_by_maf", "pairs", "typed"}
    children = {row["key"]: row for row in sections["children"]}
    assert children["t1"]["label"] == '<script>alert("x")</script> & Co panel'  # tab -> space
    assert children["t1"]["variants"] == "2"
    assert children["t3"]["samples"] == "0"
    bins = {(row["key"], row["maf_bin"]): row for row in sections["r2_by_maf"]}
    assert float(bins[("t1", "5-50%")]["mean_r2"]) == 0.9
    assert float(bins[("t2", "<0.5%")]["mean_r2"]) == 0.4
    assert bins[("t1", "0.5-1%")]["mean_r2"] == ""  # n/a
    pairs = {(row["first"], row["second"]): row for row in sections["pairs"]}
    assert pairs[("t1", "t2")]["shared_sites"] == "2"
    assert 0.9 < float(pairs[("t1", "t2")]["correlation"]) <= 1.0
    assert pairs[("t1", "t3")]["correlation"] == ""
    summary = {row["name"]: row["value"] for row in sections["summary"]}
    assert summary["common_samples"] == "3"


def test_the_html_escapes_labels_and_needs_nothing_from_outside(tmp_path: Path) -> None:
    html = (run(tmp_path) / "comparison.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html
    assert "<svg" in html
    # No outside address (the SVG namespace is a name, not something fetched).
    urls = [u for u in re.findall(r"https?://[^\"' <]+", html) if u != "http://www.w3.org/2000/svg"]
    assert urls == []
    assert "Sites only" in html
    assert "n/a" in html
