"""`submit`'s local pre-flight: the hub's own check of each file, before anything is sent."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from rich.console import Console

from imputehub.cli.errors import CliError
from imputehub.cli.main import run
from imputehub.cli.submit import preflight
from imputehub.files.vcf_check import check_path
from tests.support.fake_hub import FakeHub
from tests.support.vcf import write_vcf


def quiet() -> Console:
    return Console(file=io.StringIO())


def test_fine_files_give_the_reports_the_hub_would_make_and_their_digests(
    tmp_path: Path,
) -> None:
    paths = [write_vcf(tmp_path / f"chr{i}.vcf.gz", samples=20 + i) for i in (1, 2)]
    checked = preflight(paths, quiet())
    assert [item.report for item in checked] == [check_path(path).to_dict() for path in paths]
    assert [item.report["samples"] for item in checked] == [21, 22]
    for path, item in zip(paths, checked, strict=True):
        assert item.digest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert item.digest.matches(path.stat())
        path.write_bytes(path.read_bytes() + b"more")
        assert not item.digest.matches(path.stat())  # changed since: read again to upload


def test_one_file_with_errors_is_one_line(tmp_path: Path) -> None:
    bad = write_vcf(tmp_path / "bad.vcf", compression="none")
    with pytest.raises(CliError) as info:
        preflight([write_vcf(tmp_path / "good.vcf.gz"), bad], quiet())
    assert info.value.message == (
        f"{bad}: the file is not compressed; imputation servers need a bgzipped VCF: "
        "compress it with `bgzip` (nothing was uploaded)"
    )


def test_every_file_with_errors_is_named(tmp_path: Path) -> None:
    text = write_vcf(tmp_path / "text.vcf", compression="none")
    junk = tmp_path / "junk.vcf.gz"
    junk.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    good = write_vcf(tmp_path / "good.vcf.gz")
    with pytest.raises(CliError) as info:
        preflight([text, good, junk], quiet())
    head, *lines = info.value.message.splitlines()
    assert head == "2 files cannot be used (nothing was uploaded):"
    assert [line.split(": ", 1)[0] for line in lines] == [f"  {text}", f"  {junk}"]
    assert "not a VCF" in lines[1]


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone.vcf.gz"
    with pytest.raises(CliError, match=f"cannot read {missing}: No such file"):
        preflight([missing], quiet())


def test_a_hub_without_the_dry_run_still_gets_the_job_after_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An older hub: POST /jobs/check hits /jobs/{id}'s other methods, 405. The job is
    # still created (that hub checks everything at POST /jobs), with a warning.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("IMPUTEHUB_TOKEN", "a-token-for-scripts")
    path = write_vcf(tmp_path / "study.vcf.gz")
    size = path.stat().st_size
    with FakeHub() as hub:
        hub.problem(
            "POST",
            "/api/v1/jobs/check",
            status=405,
            code="method_not_allowed",
            detail="Method Not Allowed",
        )
        hub.reply("POST", "/api/v1/uploads/init", json={"upload_id": "u1", "part_size": size})
        state = {"status": "open", "missing": [0], "part_size": size, "received_bytes": 0}
        hub.reply("GET", "/api/v1/uploads/u1", json=state | {"size": size})
        hub.reply("PUT", "/api/v1/uploads/u1/part/0", json={"index": 0})
        record = {"id": "f1", "filename": "study.vcf.gz", "size": size, "sha256": "0" * 64}
        hub.reply("POST", "/api/v1/uploads/u1/complete", status=201, json=record)
        hub.reply("POST", "/api/v1/jobs", status=201, json={"id": "j1", "status": "pending"})
        args = ["submit", str(path), "--service", "local", "--panel", "demo", "--build", "hg19"]

        code = run([*args, "--phasing", "beagle", "--url", hub.url])

        sent = [(r.method, r.path) for r in hub.received]
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "submitted job j1 (pending)\n"
    assert "warning: this hub cannot check a job before its files are uploaded" in err
    assert sent[0] == ("POST", "/api/v1/jobs/check")
    assert sent[-1] == ("POST", "/api/v1/jobs")
    assert ("PUT", "/api/v1/uploads/u1/part/0") in sent
