"""`imputehub serve` and the real command line, from a fresh install to a restart.

One hub process per phase keeps the suite fast: the first start (migrations, a generated
admin password shown once, docs, secret key), an admin's day one through the CLI, and a
second start that shows no password and keeps tokens valid.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Cli, HubProcess, hub_env
from tests.support import databases
from tests.support.michigan_emulator import running_emulator
from tests.support.peers import free_port
from tests.support.vcf import make_vcf

PASSWORD_LINE = re.compile(r"password: (\S+)")
CREDENTIAL = "the-platform-api-token-0123"


# One database: the same first start on SQLite is the README test's `make run` (and every
# browser test's hub); migrations are tested on both in tests/integration/test_migrations.py.
@pytest.mark.parametrize("empty_database_url", [databases.preferring_postgres()], indirect=True)
def test_a_fresh_hub_from_first_start_to_restart(tmp_path: Path, empty_database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    env = hub_env(tmp_path, empty_database_url, IMPUTEHUB_DATA_DIR=str(data_dir))
    args = ("serve", "--port", str(port))

    user = Cli(env, tmp_path)
    with (
        running_emulator(tmp_path / "michigan") as michigan,
        HubProcess(*args, env=env, cwd=tmp_path, name="first") as hub,
    ):
        hub.wait_until_healthy(base)
        password = check_first_start(hub, base)
        token = admin_day_one(user, base, password, tmp_path / "client-config", michigan.base_url)
        with open_stream(base, token) as stream:
            assert hub.stop() == 0, hub.describe()
            # An open live stream does not hold the stop up: the hub ends it, without a
            # closing message (its client reconnects from its last event id), before it
            # waits for the responses in flight.
            stream.join(timeout=60)
            assert stream.ended, "the stream was still open after the hub stopped"
            assert b"stream.closed" not in stream.received
        assert "timeout graceful shutdown exceeded" not in hub.stderr
    # Secrets reach neither the log stream nor (beyond the one password line) the terminal.
    assert hub.stdout.count(password) == 1
    assert password not in hub.stderr
    assert token not in hub.stdout + hub.stderr
    assert CREDENTIAL not in hub.stdout + hub.stderr
    assert "imputehub stopped" in hub.stdout
    key_file = data_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32

    with HubProcess(*args, env=env, cwd=tmp_path, name="second") as hub:
        hub.wait_until_healthy(base)
        # Same database, same secret key: the stored API token still works.
        assert json.loads(user.ok("jobs", "list", "--json"))["total"] == 1
        assert user.ok("logout") == f"logged out of {base}\n"
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
        assert hub.stop() == 0, hub.describe()
    assert "password" not in hub.stdout.lower()
    assert not (tmp_path / "client-config" / "credentials.json").exists()


class StreamReader(threading.Thread):
    """Reads one server-sent event stream to its end in the background."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.token = token
        self.opened = threading.Event()
        self.received = b""
        self.ended = False

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            httpx.Client(base_url=self.base, headers=headers, timeout=90) as client,
            client.stream("GET", "/api/v1/events") as response,
        ):
            assert response.status_code == 200
            self.opened.set()
            with contextlib.suppress(httpx.HTTPError):
                for chunk in response.iter_bytes():
                    self.received += chunk
        self.ended = True


@contextlib.contextmanager
def open_stream(base: str, token: str) -> Iterator[StreamReader]:
    reader = StreamReader(base, token)
    reader.start()
    assert reader.opened.wait(30), "the event stream did not open"
    yield reader


def check_first_start(hub: HubProcess, base: str) -> str:
    """The generated admin password is shown exactly once and works; the docs answer."""
    passwords = PASSWORD_LINE.findall(hub.stdout)
    assert len(passwords) == 1, hub.describe()
    assert f"running at {base}" in hub.stdout
    assert f"{base}/docs" in hub.stdout
    docs = httpx.get(f"{base}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    openapi = httpx.get(f"{base}/openapi.json")
    assert openapi.status_code == 200
    assert "/api/v1/auth/login" in openapi.json()["paths"]
    return passwords[0]


def admin_day_one(user: Cli, base: str, password: str, config_dir: Path, michigan_url: str) -> str:
    """Log in, add a user, a service, a panel; follow a job; return the stored token.

    The service is an emulated Michigan server that does not know the platform's token.
    """
    assert (
        user.ok(
            "login", "--url", base, "--username", "admin", "--password-stdin", stdin=password + "\n"
        )
        == f"logged in to {base} as admin\n"
    )
    credentials = config_dir / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    token: str = json.loads(credentials.read_text())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/api/v1/auth/me", headers=auth).json()["username"] == "admin"

    # `users` works on the database directly, next to the running hub.
    assert user.ok("users", "create", "alice", "--password-stdin", stdin="alice's password\n") == (
        "created user 'alice' (role user)\n"
    )
    alice = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "alice", "password": "alice's password"}
    )
    assert alice.json()["user"]["role"] == "user"

    service = json.loads(
        user.ok(
            "services",
            "add",
            "--json",
            "--name",
            "Test Michigan",
            "--slug",
            "test-michigan",
            "--api-type",
            "michigan",
            "--base-url",
            michigan_url,
            "--build",
            "hg19",
            "--location",
            "Ann Arbor",
            "--credential-stdin",
            stdin=CREDENTIAL + "\n",
        )
    )
    assert service["credential_set"] is True
    assert CREDENTIAL not in json.dumps(service)
    services = json.loads(user.ok("services", "list", "--all", "--json"))
    # Next to the local engine the first start registered (any build; its panels say which).
    assert [(s["slug"], s["supported_builds"]) for s in services] == [
        ("local", []),
        ("test-michigan", ["hg19"]),
    ]
    # The check reaches the (emulated) Michigan server.
    checked = user.ok("services", "check", "test-michigan")
    assert checked.startswith("test-michigan: healthy"), checked

    panel = json.loads(
        user.ok(
            "panels",
            "add",
            "--json",
            "--service",
            "test-michigan",
            "--name",
            "1000G phase 3",
            "--panel-id",
            "apps@1000g-phase-3-v5@2.0.0",
            "--build",
            "hg19",
            "--population",
            "eur",
            "--population",
            "afr",
            "--samples",
            "2504",
        )
    )
    assert panel["service_id"] == service["id"]
    panels = json.loads(user.ok("panels", "list", "--service", "test-michigan", "--json"))
    assert [(p["panel_id"], p["populations"]) for p in panels] == [
        ("apps@1000g-phase-3-v5@2.0.0", ["eur", "afr"])
    ]

    upload = httpx.post(
        f"{base}/api/v1/files",
        headers=auth,
        files={"file": ("study.vcf.gz", make_vcf(), "application/gzip")},
    )
    assert upload.status_code == 201, upload.text
    created = httpx.post(
        f"{base}/api/v1/jobs",
        headers=auth,
        json={
            "name": "first study",
            "service_id": "test-michigan",
            "reference_panel_id": panel["slug"],
            "input_file_ids": [upload.json()["id"]],
            "build": "hg19",
            "phasing": "eagle",
            "population": "eur",
        },
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    page = json.loads(user.ok("jobs", "list", "--json"))
    assert [job["id"] for job in page["items"]] == [job_id]

    # The worker inside `serve` submits the job; the server refuses the token, plainly.
    watch = user.fails("jobs", "watch", job_id, "--interval", "0.2")
    assert "failed" in watch.stdout
    assert "the service rejected the API token" in watch.stderr
    # A refused request is one `error:` line.
    cancel = user.fails("jobs", "cancel", job_id)
    assert cancel.stderr.startswith("error: ")
    assert cancel.stderr.count("\n") == 1
    return token


# One database: what is tested is the listening socket.
@pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)
def test_a_taken_port_stops_the_start_before_an_admin_password_is_shown(
    tmp_path: Path, empty_database_url: str
) -> None:
    env = hub_env(tmp_path, empty_database_url, IMPUTEHUB_DATA_DIR=str(tmp_path / "data"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = Cli(env, tmp_path).fails("serve", "--port", str(port))
    # One line that names the way out; no password that would then be lost.
    assert refused.stderr.splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is already in use (is another imputehub running?); "
        f"start on another with IMPUTEHUB_PORT={port + 1} make run (or --port {port + 1})"
    )
    assert "password" not in refused.stdout.lower()

    # The first start that can listen is the one that creates the admin and shows it.
    port = free_port()
    with HubProcess("serve", "--port", str(port), env=env, cwd=tmp_path, name="hub") as hub:
        hub.wait_until_healthy(f"http://127.0.0.1:{port}")
        assert len(PASSWORD_LINE.findall(hub.stdout)) == 1, hub.describe()
        assert "imputehub users set-password admin" in hub.stdout
        assert hub.stop() == 0, hub.describe()
