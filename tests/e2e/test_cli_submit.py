"""`imputehub submit` against a real `serve`: a refused job uploads nothing, or leaves nothing.

The files are checked on the user's machine and the job by the hub's dry run
(POST /jobs/check) before a byte is sent; when the job is refused anyway after the upload
(here: an admin retires the panel while the file is on its way), the CLI deletes what it
uploaded. Each refusal is one `error:` line and exit status 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import Cli, HubProcess, local_engine_env
from tests.support import databases
from tests.support.peers import free_port
from tests.support.vcf import write_vcf

# One database: what is tested is the client; both databases are tested under the API.
pytestmark = pytest.mark.parametrize(
    "empty_database_url", [databases.preferring_postgres()], indirect=True
)

PASSWORD = "submit test password"
WAIT = 60.0


@dataclass
class Hub:
    base: str
    process: HubProcess
    user: Cli
    api: httpx.Client
    home: Path

    def files(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.get("/files").json()["items"]
        return items

    def pending_uploads(self) -> dict[str, Any]:
        state = self.home / "client-config" / "uploads.json"
        uploads: dict[str, Any] = json.loads(state.read_text())["uploads"] if state.exists() else {}
        return uploads

    def log_actions(self, action: str) -> int:
        count = 0
        for line in self.process.stderr.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            count += isinstance(entry, dict) and entry.get("action") == action
        return count


@pytest.fixture
def hub(tmp_path: Path, empty_database_url: str) -> Iterator[Hub]:
    """A fresh `serve` (local engine, demo panel), the admin logged in on the command line."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = local_engine_env(tmp_path, empty_database_url, PASSWORD, IMPUTEHUB_LOG_FORMAT="json")
    user = Cli(env, tmp_path)
    with HubProcess("serve", "--port", str(port), env=env, cwd=tmp_path, name="hub") as process:
        process.wait_until_healthy(base)
        user.ok("login", "--url", base, "--username", "admin", "--password-stdin", stdin=PASSWORD)
        token = json.loads((tmp_path / "client-config" / "credentials.json").read_text())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=30) as api:
            yield Hub(base=base, process=process, user=user, api=api, home=tmp_path)
        assert process.stop() == 0, process.describe()


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def submit_args(path: Path, *extra: str) -> list[str]:
    return ["submit", str(path), "--service", "local", "--build", "hg19", *extra]


def test_refused_submits_upload_nothing_and_leave_nothing(hub: Hub, tmp_path: Path) -> None:
    # A file that fails the local pre-flight check: not even the hub is asked.
    bad = write_vcf(tmp_path / "bad.vcf", compression="none")
    done = hub.user.fails(*submit_args(bad, "--panel", "demo", "--phasing", "beagle"))
    assert error_lines(done) == [
        f"error: {bad}: the file is not compressed; imputation servers need a bgzipped VCF: "
        "compress it with `bgzip` (nothing was uploaded)"
    ]
    assert done.stdout == ""

    # A fine file for a panel the hub does not know: the dry run refuses before the upload.
    good = write_vcf(tmp_path / "good.vcf.gz", samples=30)
    done = hub.user.fails(*submit_args(good, "--panel", "nope", "--phasing", "beagle"))
    assert error_lines(done) == ["error: unknown reference panel 'nope'"]
    assert done.stderr.count("unknown reference panel") == 1

    # ... nor a panel of the right service that offers another build.
    done = hub.user.fails(*submit_args(good, "--panel", "demo", "--phasing", "beagle",
                                       "--build", "hg38"))  # fmt: skip
    assert len(error_lines(done)) == 1
    assert "offers build hg19 only, not hg38" in done.stderr

    assert hub.files() == []
    assert hub.pending_uploads() == {}
    assert hub.log_actions("upload_started") == 0
    assert hub.api.get("/jobs").json()["total"] == 0

    # Refused after the upload anyway: the panel is retired while the file is on its way.
    hub.user.ok("testdata", "--out", "big", "--samples", "1000", "--variants", "4000")
    (big,) = (tmp_path / "big").iterdir()
    running = subprocess.Popen(
        [sys.executable, "-m", "imputehub",
         *submit_args(big, "--panel", "demo", "--phasing", "beagle"),
         "--part-size", "64k", "--parallel", "2", "--limit-rate", "200k"],
        env=hub.user.env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT
        while not hub.pending_uploads():
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.05)
        retired = hub.api.patch("/reference-panels/demo", json={"is_active": False})
        assert retired.status_code == 200, retired.text
        stdout, stderr = running.communicate(timeout=WAIT)
    finally:
        running.kill()
        running.wait()
    assert running.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
        "error: reference panel 'demo' is not active"
    ]
    assert f"deleted {big.name} (file " in stderr
    assert stdout == ""
    assert hub.log_actions("upload_started") == 1  # it did go up ...
    assert hub.files() == []  # ... and is gone again
    assert hub.pending_uploads() == {}
    assert hub.api.get("/jobs").json()["total"] == 0


def test_a_qc_only_submit_needs_no_phasing(hub: Hub, tmp_path: Path) -> None:
    hub.user.ok("testdata", "--panel", "demo", "--out", "demo")
    targets = tmp_path / "demo" / "demo.targets.vcf.gz"

    # Imputation without --phasing is a usage error, before anything else happens.
    done = hub.user.run(*submit_args(targets, "--panel", "demo"))
    assert done.returncode == 2, done.stderr
    assert "--phasing" in done.stderr
    assert "only --mode qc_only runs without it" in " ".join(done.stderr.split())
    assert hub.files() == []

    done = hub.user.run(
        *submit_args(targets, "--panel", "demo", "--mode", "qc_only", "--wait", "--interval",
                     "0.5", "--json"),
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{hub.process.describe()}"
    assert "phasing eagle, mode qc_only" in done.stderr
    assert "checksum " not in done.stderr  # the check's one read gave the SHA-256 too
    (job,) = hub.api.get("/jobs").json()["items"]
    assert (job["mode"], job["phasing"], job["status"]) == ("qc_only", "eagle", "completed")
    assert [f["filename"] for f in job["input_files"]] == [targets.name]
    results = {f["filename"] for f in hub.api.get(f"/jobs/{job['id']}/results").json()}
    assert "qc_report.txt" in results
