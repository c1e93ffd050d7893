"""`imputehub upload` and `submit` against a real `serve`: killed mid-upload, then resumed.

The CLI is killed with SIGKILL after some parts arrived; run again, it asks the hub which
parts it has and sends only the others. The hub's own log (JSON lines) shows every part
stored exactly once, and the file it made has the local file's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine

from imputehub.cli import database
from imputehub.db import migrate
from imputehub.db.models import Base
from tests.e2e.processes import Cli, HubProcess, hub_env
from tests.support.peers import free_port

# One database: what is tested is the client resuming; the hub side is tested on both.
pytestmark = pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)

PASSWORD = "upload test password"
PART = 64 * 1024
WAIT = 60.0


def with_schema(url: str) -> str:
    """The models' schema, marked as the latest migration (`serve` then migrates nothing).

    Built from the models rather than the migrations so that this test follows the models
    even before their migration is written; tests/integration/test_migrations.py checks
    that the two agree.
    """
    path = database.sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url.replace("sqlite+aiosqlite:", "sqlite:"))
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(migrate.alembic_config(url), "head")
    return url


def stored_parts(log: str, upload_id: str) -> list[int]:
    """Indexes of the parts the hub stored for the upload, in order, from its JSON log."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("action") == "upload_part_stored" and entry.get("upload_id") == upload_id:
            found.append(int(entry["index"]))
    return found


def wait_for(check: Any, what: str, process: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the CLI ended before {what}: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {WAIT} s")


def test_an_upload_killed_midway_resumes_with_only_the_missing_parts(
    tmp_path: Path, empty_database_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = hub_env(
        tmp_path,
        with_schema(empty_database_url),
        IMPUTEHUB_DATA_DIR=str(tmp_path / "data"),
        IMPUTEHUB_ADMIN_USERNAME="admin",
        IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
        IMPUTEHUB_LOG_FORMAT="json",
    )
    user = Cli(env, tmp_path)
    state_file = tmp_path / "client-config" / "uploads.json"
    with HubProcess("serve", "--port", str(port), env=env, cwd=tmp_path, name="hub") as hub:
        hub.wait_until_healthy(base)
        user.ok("login", "--url", base, "--username", "admin", "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip
        token = json.loads((tmp_path / "client-config" / "credentials.json").read_text())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        user.ok("testdata", "--out", "td", "--samples", "1000", "--variants", "4000")
        (path,) = (tmp_path / "td").iterdir()
        content = path.read_bytes()
        part_count = -(-len(content) // PART)
        assert part_count >= 12

        # A slow connection: the upload is killed once a few parts arrived.
        first = subprocess.Popen(
            [sys.executable, "-m", "imputehub", "upload", str(path), "--part-size", "64k",
             "--parallel", "2", "--limit-rate", "200k"],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            entries = wait_for(
                lambda: state_file.exists() and json.loads(state_file.read_text())["uploads"],
                "upload id in uploads.json",
                first,
            )
            (entry,) = entries.values()
            upload_id = entry["upload_id"]
            url = f"{base}/api/v1/uploads/{upload_id}"
            wait_for(lambda: len(httpx.get(url, headers=auth).json()["parts"]) >= 3, "3 parts")
        finally:
            first.kill()
            first.communicate()
        assert first.returncode == -9
        before = httpx.get(url, headers=auth).json()
        assert 3 <= len(before["parts"]) < part_count
        assert before["status"] == "open"

        log_before = len(hub.stderr)
        record = json.loads(user.ok("upload", str(path), "--part-size", "64k", "--json"))
        assert record["sha256"] == hashlib.sha256(content).hexdigest()
        assert record["size"] == len(content)
        assert record["filename"] == path.name
        assert json.loads(state_file.read_text())["uploads"] == {}

        # Every part reached the hub's storage exactly once, over both runs; the second run
        # sent none of the parts the hub already had.
        log = hub.stderr
        assert sorted(stored_parts(log, upload_id)) == list(range(part_count))
        resent = stored_parts(log[log_before:], upload_id)
        assert resent
        assert not set(resent) & {part["index"] for part in before["parts"]}
        download = httpx.get(f"{base}/api/v1/files/{record['id']}/content", headers=auth)
        assert download.content == content

        check_submit(user, base, auth, tmp_path)
        assert hub.stop() == 0, hub.describe()


def check_submit(user: Cli, base: str, auth: dict[str, str], tmp_path: Path) -> None:
    """`submit` uploads and creates the job; with --wait it follows it to its end."""
    service = httpx.post(
        f"{base}/api/v1/services",
        headers=auth,
        json={
            "name": "Test Michigan",
            "slug": "test-michigan",
            "api_type": "michigan",
            "base_url": "https://imputation.example.org",
            "supported_builds": ["hg19"],
        },
    )
    assert service.status_code == 201, service.text
    panel = httpx.post(
        f"{base}/api/v1/reference-panels",
        headers=auth,
        json={
            "service_id": "test-michigan",
            "panel_id": "apps@1000g-phase-3-v5@2.0.0",
            "display_name": "1000G phase 3",
            "slug": "1000g",
            "build": "hg19",
            "populations": ["eur", "afr"],
        },
    )
    assert panel.status_code == 201, panel.text
    user.ok("testdata", "--out", "small", "--variants", "100")
    small = tmp_path / "small" / "testdata.20.hg19.100.vcf.gz"
    done = user.fails(
        "submit", str(small), "--service", "test-michigan", "--panel", "1000g", "--build",
        "hg19", "--phasing", "eagle", "--population", "eur", "--name", "e2e", "--wait",
        "--interval", "0.2",
    )  # fmt: skip
    # The service has no API token set: the job is created, then fails, plainly.
    assert "submitted job " in done.stdout
    assert "failed" in done.stdout
    assert "no API token is set for this service" in done.stderr
    jobs = httpx.get(f"{base}/api/v1/jobs", headers=auth).json()["items"]
    assert [(job["name"], job["status"]) for job in jobs] == [("e2e", "failed")]
    assert [f["filename"] for f in jobs[0]["input_files"]] == [small.name]
