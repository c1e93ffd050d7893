"""Operator commands (`users ...`, the first admin) on the hub's own, migrated database."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from imputehub.accounts import passwords
from imputehub.accounts.users import find_by_username
from imputehub.cli import database, server
from imputehub.cli.errors import run_async
from imputehub.cli.main import run
from imputehub.cli.settings import load_settings
from imputehub.db.models import AuditEntry
from imputehub.db.session import Database


@pytest.fixture
def hub_database(tmp_path: Path, empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The hub's settings point at a freshly migrated database."""
    monkeypatch.chdir(tmp_path)
    for name in ("IMPUTEHUB_DATA_DIR", "IMPUTEHUB_URL", "IMPUTEHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPUTEHUB_DATABASE_URL", empty_database_url)
    database.upgrade(empty_database_url)
    return empty_database_url


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def stored_user(url: str, username: str) -> tuple[str, str, str]:
    async def read() -> tuple[str, str, str]:
        db = Database(url)
        try:
            async with db.session() as session:
                user = await find_by_username(session, username)
                assert user is not None
                return user.role, user.password_hash, str(user.email)
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_create_list_set_role_and_set_password(
    hub_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "first password\n")
    assert (
        run(["users", "create", "carol", "--email", "carol@example.org", "--password-stdin"]) == 0
    )
    assert capsys.readouterr().out == "created user 'carol' (role user)\n"
    role, password_hash, email = stored_user(hub_database, "carol")
    assert (role, email) == ("user", "carol@example.org")
    assert passwords.verify_password(password_hash, "first password")

    assert run(["users", "set-role", "carol", "admin"]) == 0
    assert capsys.readouterr().out == "'carol' now has the role admin\n"

    stdin(monkeypatch, "second password\n")
    assert run(["users", "set-password", "carol", "--password-stdin"]) == 0
    assert capsys.readouterr().out == "password of 'carol' changed\n"
    role, password_hash, _ = stored_user(hub_database, "carol")
    assert role == "admin"
    assert passwords.verify_password(password_hash, "second password")

    assert run(["users", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["username"] == "carol"
    assert listed["role"] == "admin"
    assert "password_hash" not in listed
    # Account changes made outside the API are in the audit log, with who ran them.
    entries = audit_entries(hub_database)
    assert [(e.action, e.details["username"]) for e in entries] == [
        ("user_created", "carol"),
        ("role_changed", "carol"),
        ("password_set", "carol"),
    ]
    assert all(e.actor.startswith("operator:") for e in entries)
    assert all("second password" not in str(e.details) for e in entries)


def audit_entries(url: str) -> list[AuditEntry]:
    async def read() -> list[AuditEntry]:
        db = Database(url)
        try:
            async with db.session() as session:
                return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        finally:
            await db.dispose()

    return asyncio.run(read())


MISTAKES = [
    (
        ["users", "create", "dave", "--password-stdin"],
        "a long password\n",
        "username 'dave' is taken",
    ),
    (["users", "set-role", "nobody", "admin"], "", "no user named 'nobody'"),
    (["users", "set-password", "nobody", "--password-stdin"], "a long password\n", "no user named"),
    (["users", "create", "x", "--password-stdin"], "a long password\n", "username must be 2-64"),
    (["users", "create", "erin", "--password-stdin"], "short\n", "at least 8 characters"),
    (["users", "create", "erin", "--password-stdin"], "", "no password on stdin"),
    (["users", "create", "erin"], "", "use --password-stdin"),
]


def test_mistakes_are_one_error_line(
    hub_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "a long password\n")
    assert run(["users", "create", "dave", "--password-stdin"]) == 0
    capsys.readouterr()

    for args, stdin_text, message in MISTAKES:
        stdin(monkeypatch, stdin_text)
        assert run(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("error: "), args
        assert message in err, (args, err)
        assert err.count("\n") == 1, err


def test_users_commands_refuse_a_database_without_schema(
    tmp_path: Path,
    empty_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMPUTEHUB_DATABASE_URL", empty_database_url)

    assert run(["users", "list"]) == 1

    assert "run `imputehub db upgrade` first" in capsys.readouterr().err


def test_a_configured_admin_password_is_used_and_never_printed(
    hub_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPUTEHUB_ADMIN_USERNAME", "root")
    monkeypatch.setenv("IMPUTEHUB_ADMIN_PASSWORD", "a configured admin password")
    settings = load_settings()

    run_async(server.bootstrap_first_admin(settings))

    out = capsys.readouterr().out
    assert "'root'" in out
    assert "IMPUTEHUB_ADMIN_PASSWORD" in out
    assert "a configured admin password" not in out
    role, password_hash, _ = stored_user(hub_database, "root")
    assert role == "admin"
    assert passwords.verify_password(password_hash, "a configured admin password")

    run_async(server.bootstrap_first_admin(settings))  # a later start: nothing to do

    assert capsys.readouterr().out == ""
