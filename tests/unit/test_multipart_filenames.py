"""Client file names become safe display names; storage suffixes come from a short list."""

from __future__ import annotations

import pytest

from imputehub.files import names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("study.chr20.vcf.gz", "study.chr20.vcf.gz"),
        ("../../etc/passwd", "passwd"),
        ("..\\x.vcf.gz", "x.vcf.gz"),
        ("C:\\Users\\ann\\Desktop\\chr1.vcf", "chr1.vcf"),
        ("/abs/path/to/data.bcf", "data.bcf"),
        ("..", names.FALLBACK_NAME),
        ("", names.FALLBACK_NAME),
        (None, names.FALLBACK_NAME),
        ("dir/", names.FALLBACK_NAME),
        (".hidden.vcf", "hidden.vcf"),
        ("  spaced \t name .vcf  ", "spaced name .vcf"),
        ("evil\x00name\r\n.vcf", "evilname.vcf"),
        ("report\u202egpj.exe", "reportgpj.exe"),  # right-to-left override dropped
        ("caf\u0065\u0301.vcf", "caf\u00e9.vcf"),  # NFC
        ("Ünïcödé 样本.vcf.gz", "Ünïcödé 样本.vcf.gz"),
    ],
)
def test_display_name(raw: str | None, expected: str) -> None:
    assert names.display_name(raw) == expected


def test_display_name_caps_length_and_keeps_a_known_suffix() -> None:
    long = "a" * 500 + ".vcf.gz"
    name = names.display_name(long)
    assert len(name) == names.MAX_DISPLAY_NAME
    assert name.endswith(".vcf.gz")
    assert names.display_name("b" * 500) == "b" * names.MAX_DISPLAY_NAME


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("x.vcf.gz", "vcf.gz"),
        ("X.VCF.GZ", "vcf.gz"),
        ("x.vcf", "vcf"),
        ("x.bcf", "bcf"),
        ("x.gz", "bin"),
        ("x.vcf.gz.exe", "bin"),
        ("x.sh", "bin"),
        ("vcf", "bin"),
        (".vcf", "bin"),
        ("x.vcf/../../y", "bin"),
        ("", "bin"),
    ],
)
def test_storage_suffix(name: str, suffix: str) -> None:
    assert names.storage_suffix(name) == suffix


def test_content_disposition_quotes_safely() -> None:
    header = names.content_disposition('dir\\a"b;c\r\nÜ.vcf')
    assert header.startswith("attachment; ")
    assert "\r" not in header
    assert "\n" not in header
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback == "a_b_cU.vcf"
    assert "filename*=UTF-8''a%22b%3Bc%C3%9C.vcf" in header


def test_ascii_name_never_empty() -> None:
    assert names.ascii_name("样本") == "__"
    assert names.ascii_name("...") == names.FALLBACK_NAME
