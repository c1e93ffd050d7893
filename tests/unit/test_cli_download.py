"""`imputehub jobs download`: streamed, checked, resumable by re-running."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imputehub.cli.main import run
from imputehub.cli.token_store import StoredLogin, save_login
from tests.support.fake_hub import FakeHub

DOSE = b"##fileformat=VCFv4.2\n" + b"20\t100\t.\tA\tG\n" * 5000
INFO = b"SNP\tRsq\n20:100\t0.98\n"


def result(
    file_id: str, filename: str, content: bytes, url: str | None = None
) -> dict[str, object]:
    return {
        "id": file_id,
        "filename": filename,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "download_url": url or f"/api/v1/files/{file_id}/content",
    }


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    monkeypatch.chdir(tmp_path)
    for name in ("IMPUTEHUB_URL", "IMPUTEHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config_dir = tmp_path / "config"
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(config_dir))
    with FakeHub() as fake:
        save_login(config_dir, StoredLogin(url=fake.url, token="ih_mine", token_id="t"))
        yield fake  # type: ignore[misc]


def content_requests(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.received if r.path.endswith("/content")]


def test_results_are_written_checked_and_skipped_when_already_there(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply(
        "GET",
        "/api/v1/jobs/j1/results",
        json=[
            result("f1", "chr20.dose.vcf.gz", DOSE),
            result("f2", "../../chr20.info", INFO),
        ],
    )
    hub.reply("GET", "/api/v1/files/f1/content", body=DOSE, content_type="application/gzip")
    hub.reply("GET", "/api/v1/files/f2/content", body=INFO, content_type="text/plain")
    out_dir = tmp_path / "results"

    assert run(["jobs", "download", "j1", "--output", str(out_dir)]) == 0

    assert (out_dir / "chr20.dose.vcf.gz").read_bytes() == DOSE
    assert (out_dir / "chr20.info").read_bytes() == INFO
    assert sorted(p.name for p in tmp_path.rglob("*.info")) == ["chr20.info"]
    assert all(r.headers["authorization"] == "Bearer ih_mine" for r in hub.received)
    assert content_requests(hub) == ["/api/v1/files/f1/content", "/api/v1/files/f2/content"]
    assert capsys.readouterr().out.count("downloaded: ") == 2

    assert run(["jobs", "download", "j1", "--output", str(out_dir)]) == 0

    assert len(content_requests(hub)) == 2  # nothing fetched again
    assert capsys.readouterr().out.count("already present: ") == 2


def test_a_damaged_local_copy_is_fetched_again(tmp_path: Path, hub: FakeHub) -> None:
    hub.reply("GET", "/api/v1/jobs/j1/results", json=[result("f1", "chr20.info", INFO)])
    hub.reply("GET", "/api/v1/files/f1/content", body=INFO)
    out_dir = tmp_path / "j1"
    out_dir.mkdir()
    (out_dir / "chr20.info").write_bytes(b"X" * len(INFO))

    assert run(["jobs", "download", "j1"]) == 0  # default output dir: ./<job id>

    assert (out_dir / "chr20.info").read_bytes() == INFO


def test_a_checksum_mismatch_keeps_nothing(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply("GET", "/api/v1/jobs/j1/results", json=[result("f1", "chr20.info", INFO)])
    hub.reply("GET", "/api/v1/files/f1/content", body=INFO.replace(b"0.98", b"0.99"))
    out_dir = tmp_path / "results"

    assert run(["jobs", "download", "j1", "--output", str(out_dir)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: chr20.info: the download does not match the hub's checksum")
    assert list(out_dir.iterdir()) == []  # neither the file nor its temporary part


def test_the_token_is_not_sent_to_another_host(tmp_path: Path, hub: FakeHub) -> None:
    with FakeHub() as storage:
        storage.reply("GET", "/bucket/f1", body=INFO)
        hub.reply(
            "GET",
            "/api/v1/jobs/j1/results",
            json=[result("f1", "chr20.info", INFO, url=f"{storage.url}/bucket/f1")],
        )

        assert run(["jobs", "download", "j1", "--output", str(tmp_path / "r")]) == 0

        assert (tmp_path / "r" / "chr20.info").read_bytes() == INFO
        assert "authorization" not in storage.received[-1].headers


def test_a_job_without_results_fails_and_says_why(
    hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply("GET", "/api/v1/jobs/j1/results", json=[])
    hub.reply(
        "GET",
        "/api/v1/jobs/j1",
        json={"id": "j1", "status": "running", "progress_percentage": 42.0},
    )

    assert run(["jobs", "download", "j1"]) == 1

    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: job j1 has no results: it is still running (42 %)\n")
