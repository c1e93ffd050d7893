"""The README's first walk-through, for real: a fresh `serve`, the demo panel, a local job.

A fresh hub registers its local engine and the demo panel on first start; a user writes the
demo targets, submits them to the local service by CLI (`--wait --download`) and by the REST
API, and gets real imputed dosages back: as accurate against the truth as the engine is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from imputehub.engine.accuracy import dosage_r2
from tests.e2e.processes import Cli, HubProcess, local_engine_env
from tests.support import databases
from tests.support.peers import free_port

# One database: the same walk-through on SQLite is the README test (`make run`).
pytestmark = pytest.mark.parametrize(
    "empty_database_url", [databases.preferring_postgres()], indirect=True
)

PASSWORD = "walk-through admin password"
EXPECTED = {
    "chr20.dose.vcf.gz",
    "chr20.dose.vcf.gz.tbi",
    "chr20.info.gz",
    "qc_report.txt",
    "qc_report.html",
    "snps-excluded.txt",
    "snps-typed-only.txt",
}


def test_first_walk_through_from_a_fresh_hub_to_imputed_results(
    tmp_path: Path, empty_database_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = local_engine_env(tmp_path, empty_database_url, PASSWORD)
    user = Cli(env, tmp_path)
    with HubProcess("serve", "--port", str(port), env=env, cwd=tmp_path, name="hub") as hub:
        hub.wait_until_healthy(base)
        user.ok("login", "--url", base, "--username", "admin", "--password-stdin", stdin=PASSWORD)
        services = json.loads(user.ok("services", "list", "--json"))
        assert [s["slug"] for s in services] == ["local"], hub.describe()
        panels = json.loads(user.ok("panels", "list", "--service", "local", "--json"))
        assert [p["slug"] for p in panels] == ["demo"]

        written = user.ok("testdata", "--panel", "demo", "--out", "demo")
        assert "demo.targets.vcf.gz" in written
        targets = tmp_path / "demo" / "demo.targets.vcf.gz"
        truth = tmp_path / "demo" / "demo.truth.vcf.gz"

        # By CLI: upload, submit, follow, download — one command.
        submit = [
            "submit",
            str(targets),
            "--service",
            "local",
            "--panel",
            "demo",
            "--build",
            "hg19",
            "--phasing",
            "beagle",
            "--interval",
            "0.5",
            "--download",
            "results",
        ]
        done = user.run(*submit)
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{hub.describe()}"
        results = tmp_path / "results"
        assert {p.name for p in results.iterdir()} == EXPECTED
        dose = results / "chr20.dose.vcf.gz"
        assert dosage_r2(dose, truth) >= 0.85

        # By the REST API, as a script would.
        token = json.loads((tmp_path / "client-config" / "credentials.json").read_text())["token"]
        api_results = by_api(base, token, targets, tmp_path / "api")
        assert set(api_results) == EXPECTED
        assert dosage_r2(api_results["chr20.dose.vcf.gz"], truth) >= 0.85
        assert hub.stop() == 0, hub.describe()


def by_api(base: str, token: str, targets: Path, out: Path) -> dict[str, Path]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=30) as api:
        with targets.open("rb") as handle:
            uploaded = api.post("/files", files={"file": (targets.name, handle)})
        assert uploaded.status_code == 201, uploaded.text
        job = api.post(
            "/jobs",
            json={
                "name": "demo by API",
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [uploaded.json()["id"]],
                "build": "hg19",
                "phasing": "beagle",
            },
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        state = wait_for_job(api, job_id)
        assert state["status"] == "completed", state
        logs = api.get(f"/jobs/{job_id}/logs").json()["logs"]
        assert any(line.startswith("Phasing and Imputation") for line in logs)
        out.mkdir()
        saved: dict[str, Path] = {}
        for item in api.get(f"/jobs/{job_id}/results").json():
            target = out / item["filename"]
            with api.stream("GET", f"/files/{item['id']}/content") as response:
                assert response.status_code == 200
                with target.open("wb") as sink:
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
            saved[item["filename"]] = target
        return saved


def wait_for_job(api: httpx.Client, job_id: str, within: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish within {within} s")
