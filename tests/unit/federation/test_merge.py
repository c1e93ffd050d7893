"""The merged result: the best child's record per site, in one sample order, valid VCF."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from imputehub.federation.analysis import AnalysisError, ChildDoses, analyse
from tests.unit.federation.vcf_builders import (
    BCFTOOLS,
    BGZIP,
    MINIMAC_META,
    TABIX,
    Row,
    contig_line,
    gt_ds,
    minimac_calls,
    records,
    samples_of,
    write_vcf,
)

A_SAMPLES = ["s1", "s2", "s3"]
B_SAMPLES = ["s3", "s1", "s2"]  # the same people, another order


def beagle(chrom: str, pos: int, ref: str, alt: str, r2: float, ds: list[float]) -> Row:
    return Row(chrom=chrom, pos=pos, ref=ref, alt=alt, info=f"DR2={r2};AF=0.3;IMP", calls=gt_ds(ds))


def minimac(chrom: str, pos: int, ref: str, alt: str, info: str, ds: list[float]) -> Row:
    return Row(
        chrom=chrom,
        pos=pos,
        ref=ref,
        alt=alt,
        info=info,
        fmt="GT:DS:HDS:GP",
        calls=minimac_calls(ds),
    )


def child_a(tmp_path: Path) -> Path:
    rows = [
        beagle("chr20", 100, "A", "G", 0.9, [0.1, 1.0, 2.0]),
        beagle("chr20", 200, "C", "T", 0.4, [0.0, 0.0, 0.0]),
        beagle("chr20", 300, "G", "A", 0.7, [0.2, 0.3, 0.4]),
        beagle("chr20", 400, "T", "C", 0.5, [0.0, 0.0, 0.0]),
        beagle("chr20", 600, "G", "C", 0.95, [0.0, 0.0, 0.0]),
        beagle("chr20", 700, "A", "G", 0.8, [1.0, 1.0, 1.0]),
    ]
    return write_vcf(
        tmp_path / "a-chr20.dose.vcf.gz",
        A_SAMPLES,
        rows,
        meta="##fileformat=VCFv4.2\n" + contig_line("chr20"),
    )


def child_b(tmp_path: Path, name: str = "b-20.dose.vcf.gz") -> Path:
    # Dosages listed in B's own sample order (s3, s1, s2).
    rows = [
        minimac("20", 100, "A", "G", "AF=0.3;MAF=0.3;R2=0.5;IMPUTED", [1.5, 1.5, 1.5]),
        minimac("20", 200, "C", "T", "AF=0.3;MAF=0.3;R2=0.95;IMPUTED", [1.9, 0.1, 1.2]),
        minimac("20", 300, "G", "A", "AF=0.3;MAF=0.3;R2=0.7;IMPUTED", [1.0, 1.0, 1.0]),
        # Swapped REF/ALT relative to A: C/T where A has T/C.
        minimac("20", 400, "C", "T", "AF=0.8;MAF=0.2;R2=0.99;IMPUTED", [0.25, 2.0, 0.0]),
        minimac("20", 500, "A", "C", "AF=0.1;MAF=0.1;R2=0.2;IMPUTED", [0.0, 0.0, 1.0]),
        minimac("20", 600, "G", "C", "AF=0.4;MAF=0.4;TYPED", [2.0, 0.0, 1.0]),
        minimac("20", 700, "A", "T", "AF=0.1;MAF=0.1;R2=0.6;IMPUTED", [0.0, 0.0, 0.0]),
    ]
    return write_vcf(tmp_path / name, B_SAMPLES, rows, meta=MINIMAC_META + contig_line("20"))


def raw_records(path: Path) -> list[list[str]]:
    """The records as written (bcftools would reformat the numbers)."""
    with gzip.open(path, "rt") as lines:
        return [line.rstrip("\n").split("\t") for line in lines if not line.startswith("#")]


def by_pos(rows: list[list[str]]) -> dict[tuple[int, str], list[str]]:
    return {(int(row[1]), row[4]): row for row in rows}


def info(row: list[str]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in row[7].split(";"))


def test_the_higher_r2_child_wins_at_each_site_in_one_sample_order(tmp_path: Path) -> None:
    children = [
        ChildDoses(key="a", label="Beagle / panel A", files=(child_a(tmp_path),)),
        ChildDoses(key="b", label="Michigan / panel B", files=(child_b(tmp_path),)),
    ]
    result = analyse(children, [], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    merged = tmp_path / "out" / "chr20.merged.dose.vcf.gz"
    assert merged in result.files
    assert (tmp_path / "out" / "chr20.merged.dose.vcf.gz.tbi").is_file()
    assert samples_of(merged) == A_SAMPLES
    assert len(records(merged)) == 8  # bcftools reads it
    rows = raw_records(merged)
    assert [int(row[1]) for row in rows] == sorted(int(row[1]) for row in rows)
    assert all(row[0] == "chr20" for row in rows)  # the first child's naming
    assert all(row[8] == "GT:DS" for row in rows)
    sites = by_pos(rows)
    assert set(sites) == {
        (100, "G"),
        (200, "T"),
        (300, "A"),
        (400, "C"),
        (500, "C"),
        (600, "C"),
        (700, "G"),
        (700, "T"),
    }
    # 100: A (0.9 > 0.5), its columns through untouched.
    assert info(sites[(100, "G")])["SRC"] == "a"
    assert sites[(100, "G")][9:] == ["0|0:0.100", "0|1:1.000", "1|1:2.000"]
    # 200: B (0.95), reordered to s1, s2, s3, HDS and GP dropped.
    assert info(sites[(200, "T")]) == {"SRC": "b", "R2": "0.95", "AF": "0.3"}
    assert sites[(200, "T")][9:] == ["0|0:0.100", "0|1:1.200", "1|1:1.900"]
    # 300: a tie goes to the earlier child.
    assert info(sites[(300, "A")])["SRC"] == "a"
    # 400: B wins with REF/ALT swapped: A's alleles, DS -> 2 - DS, GT flipped, AF -> 1 - AF.
    row = sites[(400, "C")]
    assert (row[3], row[4]) == ("T", "C")
    assert info(row)["SRC"] == "b"
    assert float(info(row)["AF"]) == pytest.approx(0.2)
    # B: s3, s1, s2 = 0.25, 2.0, 0.0 -> s1, s2, s3 = 2.0, 0.0, 0.25 -> 0.0, 2.0, 1.75
    assert row[9:] == ["0|0:0.000", "1|1:2.000", "1|1:1.750"]  # GT 0|0, 1|1, 0|0 flipped
    # 500: only B has it.
    assert info(sites[(500, "C")])["SRC"] == "b"
    # 600: B's typed site without r² counts as 1.0 and beats A's 0.95; flagged TYPED.
    assert info(sites[(600, "C")]) == {"SRC": "b", "AF": "0.4", "TYPED": ""}
    # 700: two sites at one position (different ALT), one from each child.
    assert info(sites[(700, "G")])["SRC"] == "a"
    assert info(sites[(700, "T")])["SRC"] == "b"
    # The header says what this is, and the sources.
    header = subprocess.run(
        [BCFTOOLS, "view", "-h", str(merged)], capture_output=True, text=True, check=True
    ).stdout
    assert "##imputehub_merge=best estimated r2 per site; not meta-imputation" in header
    assert "##imputehub_source=a=Beagle / panel A" in header
    assert "##contig=<ID=chr20,length=64444167>" in header
    # Valid for indexing by bcftools too.
    subprocess.run([BCFTOOLS, "index", "-f", str(merged)], check=True)


def test_a_child_without_samples_is_compared_but_left_out_of_the_merge(tmp_path: Path) -> None:
    sites_only = write_vcf(
        tmp_path / "c-20.dose.vcf.gz",
        [],
        [
            Row(chrom="20", pos=100, ref="A", alt="G", info="AF=0.3;MAF=0.3;R2=0.99;IMPUTED"),
            Row(chrom="20", pos=800, ref="T", alt="G", info="AF=0.3;MAF=0.3;R2=0.99;IMPUTED"),
        ],
        meta=MINIMAC_META,
    )
    children = [
        ChildDoses(key="a", label="A", files=(child_a(tmp_path),)),
        ChildDoses(key="c", label="Sites only", files=(sites_only,)),
    ]
    result = analyse(children, [], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    assert any("Sites only" in note and "no samples" in note for note in result.notes)
    rows = records(tmp_path / "out" / "chr20.merged.dose.vcf.gz")
    assert {info(row)["SRC"] for row in rows} == {"a"}
    assert 800 not in {int(row[1]) for row in rows}
    pair = result.comparison.pairs[0]
    assert pair.shared_sites == 1
    assert pair.correlation is None
    counts = {c.key: c.variants for c in result.comparison.children}
    assert counts == {"a": 6, "c": 2}


def test_only_sites_only_children_give_a_sites_only_merge(tmp_path: Path) -> None:
    def sites_only(name: str, r2: float) -> Path:
        return write_vcf(
            tmp_path / name,
            [],
            [Row(chrom="20", pos=100, ref="A", alt="G", info=f"AF=0.3;R2={r2};IMPUTED")],
            meta=MINIMAC_META,
        )

    children = [
        ChildDoses(key="x", label="X", files=(sites_only("x.vcf.gz", 0.5),)),
        ChildDoses(key="y", label="Y", files=(sites_only("y.vcf.gz", 0.6),)),
    ]
    analyse(children, [], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    rows = records(tmp_path / "out" / "chr20.merged.dose.vcf.gz")
    assert len(rows) == 1
    assert len(rows[0]) == 8
    assert info(rows[0])["SRC"] == "y"


def test_a_child_with_other_samples_is_left_out_with_a_note(tmp_path: Path) -> None:
    other = write_vcf(
        tmp_path / "d.vcf.gz",
        ["s1", "s2", "zz"],
        [Row(chrom="20", pos=100, ref="A", alt="G", info="AF=0.3;R2=1.0", calls=gt_ds([0, 0, 0]))],
        meta=MINIMAC_META,
    )
    children = [
        ChildDoses(key="a", label="A", files=(child_a(tmp_path),)),
        ChildDoses(key="d", label="Other people", files=(other,)),
    ]
    result = analyse(children, [], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    assert any("Other people" in note and "other samples" in note for note in result.notes)
    rows = records(tmp_path / "out" / "chr20.merged.dose.vcf.gz")
    assert {info(row)["SRC"] for row in rows} == {"a"}


def test_a_chromosome_only_one_child_has_is_merged_with_a_note(tmp_path: Path) -> None:
    chr21 = write_vcf(
        tmp_path / "b-21.dose.vcf.gz",
        B_SAMPLES,
        [minimac("21", 50, "A", "G", "AF=0.3;MAF=0.3;R2=0.5;IMPUTED", [1.0, 0.0, 2.0])],
        meta=MINIMAC_META,
    )
    children = [
        ChildDoses(key="a", label="A", files=(child_a(tmp_path),)),
        ChildDoses(key="b", label="B", files=(chr21, child_b(tmp_path))),
    ]
    result = analyse(children, [], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    assert any("chromosome 21" in note and "only B" in note for note in result.notes)
    rows = raw_records(tmp_path / "out" / "chr21.merged.dose.vcf.gz")
    # B's s3, s1, s2 = 1.0, 0.0, 2.0, written as s1, s2, s3.
    assert [(row[0], row[1], row[9:]) for row in rows] == [
        ("chr21", "50", ["0|0:0.000", "1|1:2.000", "0|1:1.000"])
    ]
    assert result.comparison.chromosomes == ("20", "21")


def test_unsorted_or_unreadable_dose_files_are_refused_in_plain_words(tmp_path: Path) -> None:
    unsorted = write_vcf(
        tmp_path / "u.vcf.gz",
        A_SAMPLES,
        [
            beagle("20", 300, "A", "G", 0.9, [0, 0, 0]),
            beagle("20", 100, "A", "G", 0.9, [0, 0, 0]),
        ],
    )
    good = ChildDoses(key="a", label="A", files=(child_a(tmp_path),))
    with pytest.raises(AnalysisError, match=r"u\.vcf\.gz: not sorted: 20:100 comes after 20:300"):
        analyse(
            [good, ChildDoses(key="u", label="U", files=(unsorted,))],
            [],
            tmp_path / "out",
            bgzip=BGZIP,
            tabix=TABIX,
        )
    text = tmp_path / "text.vcf.gz"
    text.write_text("this is not a VCF\n")
    with pytest.raises(AnalysisError, match=r"text\.vcf\.gz"):
        analyse(
            [good, ChildDoses(key="t", label="T", files=(text,))],
            [],
            tmp_path / "out2",
            bgzip=BGZIP,
            tabix=TABIX,
        )
    with pytest.raises(ValueError, match="at least two"):
        analyse([good], [], tmp_path / "out3", bgzip=BGZIP, tabix=TABIX)


def test_an_unsorted_input_file_is_refused_and_no_merged_file_is_left(tmp_path: Path) -> None:
    source = write_vcf(
        tmp_path / "upload.vcf.gz",
        A_SAMPLES,
        [
            Row(chrom="20", pos=pos, ref="A", alt="G", fmt="GT", calls=["0/1"] * 3)
            for pos in (200, 100)
        ],
    )
    children = [
        ChildDoses(key="a", label="A", files=(child_a(tmp_path),)),
        ChildDoses(key="b", label="B", files=(child_b(tmp_path),)),
    ]
    with pytest.raises(AnalysisError, match=r"input file upload\.vcf\.gz: not sorted"):
        analyse(children, [source], tmp_path / "out", bgzip=BGZIP, tabix=TABIX)
    assert list((tmp_path / "out").iterdir()) == []
