"""Small parsers of the command line: sizes, KEY=VALUE settings, hub URLs, file names."""

from __future__ import annotations

import pytest
import typer

from imputehub.cli.client import normalise_url, same_origin
from imputehub.cli.download import safe_filename
from imputehub.cli.errors import CliError
from imputehub.cli.services import parse_config, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("500M", 500 * 1024**2),
        ("10G", 10 * 1024**3),
        ("10GiB", 10 * 1024**3),
        ("2gb", 2 * 1024**3),
        ("1T", 1024**4),
        ("7 K", 7 * 1024),
        ("12B", 12),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5G", "10Q", "G", "ten"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_size(text)


def test_config_values_keep_their_json_type() -> None:
    assert parse_config(["a=30", "b=true", 'c=["x"]', "d=plain text", "e=", "f=a=b"]) == {
        "a": 30,
        "b": True,
        "c": ["x"],
        "d": "plain text",
        "e": "",
        "f": "a=b",
    }


@pytest.mark.parametrize("pair", ["novalue", "=value", " =x"])
def test_config_pairs_need_a_key(pair: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_config([pair])


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        (" https://hub.example.org ", "https://hub.example.org"),
        ("https://example.org/hub//", "https://example.org/hub"),
    ],
)
def test_hub_urls(url: str, normal: str) -> None:
    assert normalise_url(url) == normal


@pytest.mark.parametrize("url", ["hub.example.org", "ftp://hub", "file:///etc/passwd", "http://"])
def test_hub_urls_must_be_http(url: str) -> None:
    with pytest.raises(CliError):
        normalise_url(url)


def test_same_origin() -> None:
    assert same_origin("http://hub:80/a", "http://hub:80/b")
    assert not same_origin("http://hub/a", "https://hub/a")
    assert not same_origin("http://hub/a", "http://hub.evil/a")
    assert not same_origin("http://hub:8000/a", "http://hub:8001/a")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("chr20.dose.vcf.gz", "chr20.dose.vcf.gz"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/path/qc.html", "qc.html"),
        ("..", "fallback"),
        ("", "fallback"),
        (".bashrc", "fallback"),
        ("dir/", "fallback"),
        ("bell\x07\nname.txt", "bellname.txt"),
    ],
)
def test_result_file_names_stay_in_the_output_dir(name: str, safe: str) -> None:
    assert safe_filename(name, fallback="fallback") == safe
