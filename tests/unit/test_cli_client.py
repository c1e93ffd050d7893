"""The command-line client against a stand-in hub: error lines, tokens, requests sent."""

from __future__ import annotations

import io
import json
import socket
import stat
import sys
from pathlib import Path

import pytest

from imputehub.cli.main import run
from imputehub.cli.token_store import StoredLogin, credentials_path, load_login, save_login
from tests.support.fake_hub import FakeHub

JOBS_PAGE = {"items": [], "total": 0, "limit": 20, "offset": 0}


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated client: its own config dir, no hub or token from the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("IMPUTEHUB_URL", "IMPUTEHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config"
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(path))
    return path


@pytest.fixture
def hub() -> FakeHub:
    with FakeHub() as fake:
        yield fake  # type: ignore[misc]


def test_a_problem_answer_is_printed_as_its_detail(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.problem(
        "POST",
        "/api/v1/services",
        status=403,
        code="permission_denied",
        detail="this action needs the admin role",
    )
    args = ["services", "add", "--name", "X", "--api-type", "local", "--base-url", "http://s"]

    code = run([*args, "--url", hub.url])

    out, err = capsys.readouterr()
    assert code == 1
    assert err == "error: this action needs the admin role\n"
    assert out == ""


def test_unauthenticated_answers_suggest_logging_in(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.problem(
        "GET", "/api/v1/jobs", status=401, code="authentication_required", detail="log in first"
    )

    assert run(["jobs", "list", "--url", hub.url]) == 1

    assert capsys.readouterr().err == (
        f"error: not logged in to {hub.url}: run `imputehub login --url {hub.url}` "
        "(or set IMPUTEHUB_TOKEN)\n"
    )


def test_an_answer_that_is_not_a_problem_names_the_status(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply(
        "GET",
        "/api/v1/jobs",
        status=502,
        body=b"<html>bad gateway</html>",
        content_type="text/html",
    )

    assert run(["jobs", "list", "--url", hub.url]) == 1

    assert capsys.readouterr().err == "error: the hub answered 502 Bad Gateway\n"


def test_an_unreachable_hub_is_one_plain_line(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    assert run(["jobs", "list", "--url", url]) == 1

    assert capsys.readouterr().err == f"error: cannot reach the hub at {url}\n"


def test_the_stored_token_goes_to_its_hub_and_to_no_other(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    save_login(config_dir, StoredLogin(url=hub.url, token="ih_stored", token_id="t1"))
    hub.reply("GET", "/api/v1/jobs", json=JOBS_PAGE)

    assert run(["jobs", "list"]) == 0  # no --url: the hub of the stored login
    assert hub.received[-1].headers["authorization"] == "Bearer ih_stored"

    with FakeHub() as other:
        other.reply("GET", "/api/v1/jobs", json=JOBS_PAGE)
        assert run(["jobs", "list", "--url", other.url]) == 0
        assert "authorization" not in other.received[-1].headers


def test_imputehub_token_and_url_from_the_environment_win(
    config_dir: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_login(config_dir, StoredLogin(url="http://elsewhere.invalid", token="ih_stored"))
    monkeypatch.setenv("IMPUTEHUB_URL", hub.url)
    monkeypatch.setenv("IMPUTEHUB_TOKEN", "ih_from_env")
    hub.reply("GET", "/api/v1/jobs", json=JOBS_PAGE)

    assert run(["jobs", "list"]) == 0

    assert hub.received[-1].headers["authorization"] == "Bearer ih_from_env"


def test_login_stores_a_new_api_token_privately_and_never_prints_it(
    config_dir: Path,
    hub: FakeHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.reply(
        "POST",
        "/api/v1/auth/login",
        json={
            "access_token": "jwt-session",
            "token_type": "bearer",
            "expires_in": 60,
            "user": {"id": "u1", "username": "alice", "email": None, "role": "user"},
        },
    )
    hub.reply(
        "POST",
        "/api/v1/auth/tokens",
        status=201,
        json={"id": "tok-1", "token": "ih_plaintext_secret", "name": "x"},
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("her password\n"))

    code = run(["login", "--url", hub.url + "/", "--username", "alice", "--password-stdin"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == f"logged in to {hub.url} as alice\n"
    assert "ih_plaintext_secret" not in out + err
    login, create = hub.received
    assert login.json() == {"username": "alice", "password": "her password"}
    assert create.headers["authorization"] == "Bearer jwt-session"
    assert create.json()["name"].startswith("imputehub-cli@")
    assert load_login(config_dir) == StoredLogin(
        url=hub.url, token="ih_plaintext_secret", token_id="tok-1"
    )
    assert stat.S_IMODE(credentials_path(config_dir).stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700


def test_logout_deletes_the_token_at_the_hub_and_here(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    save_login(config_dir, StoredLogin(url=hub.url, token="ih_stored", token_id="tok-1"))
    hub.reply("DELETE", "/api/v1/auth/tokens/tok-1", status=204, body=b"")

    assert run(["logout"]) == 0

    (deleted,) = hub.received
    assert deleted.method == "DELETE"
    assert deleted.headers["authorization"] == "Bearer ih_stored"
    assert not credentials_path(config_dir).exists()
    assert capsys.readouterr().out == f"logged out of {hub.url}\n"


def test_services_add_sends_the_contract_fields_and_reads_the_credential_from_stdin(
    config_dir: Path,
    hub: FakeHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.reply(
        "POST",
        "/api/v1/services",
        status=201,
        json={"id": "s1", "slug": "michigan", "credential_set": True},
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("the-service-api-token\n"))

    code = run(
        [
            "services",
            "add",
            "--url",
            hub.url,
            "--name",
            "Michigan",
            "--api-type",
            "michigan",
            "--base-url",
            "https://imputationserver.sph.umich.edu",
            "--slug",
            "michigan",
            "--location",
            "USA",
            "--build",
            "hg19",
            "--build",
            "hg38",
            "--max-upload-size",
            "2G",
            "--config",
            "poll_seconds=30",
            "--config",
            "queue=default",
            "--credential-stdin",
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "added service 'michigan' (s1)\n"
    assert hub.received[-1].json() == {
        "name": "Michigan",
        "api_type": "michigan",
        "base_url": "https://imputationserver.sph.umich.edu",
        "slug": "michigan",
        "location": "USA",
        "supported_builds": ["hg19", "hg38"],
        "max_upload_size": 2 * 1024**3,
        "api_config": {"poll_seconds": 30, "queue": "default"},
        "credential": "the-service-api-token",
    }
    assert "the-service-api-token" not in out + err


def test_panels_list_passes_its_filters(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    panel = {
        "id": "p1",
        "slug": "1kg",
        "display_name": "1000G",
        "build": "hg19",
        "populations": ["afr", "eur"],
        "sample_count": 2504,
        "panel_id": "apps@1kg",
    }
    hub.reply("GET", "/api/v1/reference-panels", json=[panel])

    code = run(
        [
            "panels",
            "list",
            "--url",
            hub.url,
            "--service",
            "michigan",
            "--build",
            "hg19",
            "--population",
            "afr",
            "--json",
        ]
    )

    assert code == 0
    assert json.loads(capsys.readouterr().out) == [panel]
    assert hub.received[-1].query == "service_id=michigan&build=hg19&population=afr"


def test_jobs_watch_exits_0_when_the_job_completed(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply(
        "GET",
        "/api/v1/jobs/j1/progress",
        json={
            "id": "j1",
            "status": "completed",
            "progress_percentage": 100.0,
            "updated_at": "2026-01-01T00:00:00Z",
        },
    )

    assert run(["jobs", "watch", "j1", "--url", hub.url]) == 0

    out = capsys.readouterr().out
    assert "completed  100.0 %" in out
    assert out.endswith("job completed\n")


def test_jobs_watch_exits_1_with_the_reason_when_the_job_failed(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply(
        "GET",
        "/api/v1/jobs/j1/progress",
        json={
            "id": "j1",
            "status": "failed",
            "progress_percentage": 12.0,
            "updated_at": "2026-01-01T00:00:00Z",
        },
    )
    hub.reply(
        "GET",
        "/api/v1/jobs/j1",
        json={"id": "j1", "status": "failed", "error_message": "chr20: too few samples"},
    )

    assert run(["jobs", "watch", "j1", "--url", hub.url]) == 1

    assert capsys.readouterr().err == "job failed: chr20: too few samples\n"


def test_ids_cannot_walk_out_of_their_path_segment(config_dir: Path, hub: FakeHub) -> None:
    hub.reply("POST", "/api/v1/jobs/..%2Fusers/cancel", json={"id": "x", "status": "cancelled"})

    run(["jobs", "cancel", "../users", "--url", hub.url])

    assert hub.received[-1].path == "/api/v1/jobs/..%2Fusers/cancel"


def test_jobs_show_prints_the_job_and_its_last_errors(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = [
        {
            "at": f"2026-01-01T00:0{i}:00+00:00",
            "message": f"timeout {i}",
            "transient": True,
            "attempt": i,
        }
        for i in range(1, 8)
    ]
    hub.reply(
        "GET",
        "/api/v1/jobs/j1",
        json={
            "id": "j1",
            "name": "study",
            "status": "running",
            "progress_percentage": 42.5,
            "input_files": [{"id": "f1", "filename": "chr20.vcf.gz", "size": 3 * 1024**2}],
            "build": "hg38",
            "error_message": None,
            "errors": errors,
        },
    )

    assert run(["jobs", "show", "j1", "--url", hub.url]) == 0

    out = capsys.readouterr().out
    assert "running" in out
    assert "42.5" in out
    assert "chr20.vcf.gz (3.0 MiB)" in out
    assert "last 5 of 7 errors:" in out
    assert "timeout 7" in out
    assert "timeout 2" not in out
    assert "error " not in out  # no empty error row for a job without an error message


def test_tables_show_hub_values_literally(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reply(
        "GET",
        "/api/v1/services",
        json=[
            {
                "id": "s1",
                "slug": "s",
                "name": "[b]Imp[/b]",
                "api_type": "local",
                "supported_builds": ["hg19", "hg38"],
                "health_status": "healthy",
                "response_time_ms": 12.0,
                "is_active": True,
            }
        ],
    )

    assert run(["services", "list", "--url", hub.url]) == 0

    out = capsys.readouterr().out
    assert "[b]Imp[/b]" in out
    assert "hg19, hg38" in out


def test_a_new_login_revokes_the_token_it_replaces(
    config_dir: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_login(config_dir, StoredLogin(url=hub.url, token="ih_old", token_id="old"))
    hub.reply("POST", "/api/v1/auth/login", json={"access_token": "jwt", "user": {"username": "a"}})
    hub.reply("POST", "/api/v1/auth/tokens", status=201, json={"id": "new", "token": "ih_new"})
    hub.reply("DELETE", "/api/v1/auth/tokens/old", status=204, body=b"")
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))

    assert run(["login", "--username", "a", "--password-stdin"]) == 0

    revoke = hub.received[-1]
    assert (revoke.method, revoke.path) == ("DELETE", "/api/v1/auth/tokens/old")
    assert revoke.headers["authorization"] == "Bearer ih_old"
    stored = load_login(config_dir)
    assert stored is not None
    assert stored.token == "ih_new"


def test_logout_from_a_vanished_hub_still_forgets_the_token_here(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    save_login(config_dir, StoredLogin(url=url, token="ih_gone", token_id="t"))

    assert run(["logout"]) == 0

    out, err = capsys.readouterr()
    assert (
        err
        == f"warning: cannot reach the hub at {url}; the token stays valid there until deleted\n"
    )
    assert out == f"logged out of {url}\n"
    assert load_login(config_dir) is None


def test_password_stdin_needs_an_explicit_username(
    config_dir: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["login", "--url", hub.url, "--password-stdin"]) == 1

    assert capsys.readouterr().err == "error: give --username together with --password-stdin\n"
    assert hub.received == []
