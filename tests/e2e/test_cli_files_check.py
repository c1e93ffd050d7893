"""`imputehub files check FILE...`: the real command, no hub, on files a researcher has."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import cli
from tests.support.vcf import make_vcf, write_vcf


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No hub settings at all: the check runs locally."""
    home = {k: v for k, v in os.environ.items() if not k.startswith("IMPUTEHUB_")}
    home["IMPUTEHUB_CLIENT_CONFIG_DIR"] = str(tmp_path / "client-config")
    home["COLUMNS"] = "200"
    return home


def test_a_good_file_passes(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_vcf(tmp_path / "chr20.vcf.gz", samples=30, variants=200)
    done = cli("files", "check", str(path), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{path}: ok"
    shown = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in lines[1:]}
    assert shown["format"] == "bgzf, EOF block present"
    assert shown["samples"] == "30"
    assert shown["variants"].startswith("200 (SNPs 200, indels 0")
    assert shown["build"] == "hg19 (from ##contig lengths)"
    assert shown["phased"] == "100.0 %"
    assert done.stderr == ""


def test_errors_and_warnings_are_listed_and_fail_the_run(
    tmp_path: Path, env: dict[str, str]
) -> None:
    good = write_vcf(tmp_path / "good.vcf.gz")
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(make_vcf(chrom="chr20", compression="none")))
    done = cli("files", "check", str(good), str(plain), env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert f"{good}: ok" in done.stdout
    assert f"{plain}: ERRORS (1)" in done.stdout
    assert (
        "error: the file is gzip-compressed but not with bgzip; recompress with `bgzip`"
        in done.stdout
    )
    assert (
        "warning: Your upload data contains chromosome 'chr20'. This is not a valid hg19 "
        "encoding." in done.stdout
    )
    assert "Traceback" not in done.stderr


def test_warnings_alone_do_not_fail(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "no-eof.vcf.gz"
    path.write_bytes(make_vcf()[:-28])
    done = cli("files", "check", str(path), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert f"{path}: ok, 1 warning(s)" in done.stdout
    assert "the BGZF end-of-file block is missing: the file may be truncated" in done.stdout


def test_json_for_scripts(tmp_path: Path, env: dict[str, str]) -> None:
    good = write_vcf(tmp_path / "good.vcf.gz", samples=21)
    junk = tmp_path / "junk.vcf.gz"
    junk.write_bytes(b"\x00\x01binary\x02" * 100)
    done = cli("files", "check", "--json", str(good), str(junk), env=env, cwd=tmp_path)
    assert done.returncode == 1
    results = json.loads(done.stdout)
    assert [r["file"] for r in results] == [str(good), str(junk)]
    assert results[0]["report"]["samples"] == 21
    assert results[0]["report"]["problems"] == []
    assert results[1]["report"]["fatal"] is True
    assert [p["code"] for p in results[1]["report"]["problems"]] == ["not_vcf"]


def test_a_missing_file_is_one_error_line(tmp_path: Path, env: dict[str, str]) -> None:
    good = write_vcf(tmp_path / "good.vcf.gz")
    done = cli("files", "check", str(tmp_path / "nope.vcf.gz"), str(good), env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert (
        done.stderr == f"error: cannot read {tmp_path / 'nope.vcf.gz'}: No such file or directory\n"
    )
    assert f"{good}: ok" in done.stdout


def test_a_file_bgzipped_by_bgzip(tmp_path: Path, env: dict[str, str]) -> None:
    text = tmp_path / "study.vcf"
    text.write_bytes(make_vcf(samples=20, compression="none"))
    subprocess.run(["bgzip", str(text)], check=True)
    done = cli("files", "check", str(tmp_path / "study.vcf.gz"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert "bgzf, EOF block present" in done.stdout
