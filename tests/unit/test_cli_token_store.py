"""The stored login: owner-only permissions, atomic writes, clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from imputehub.cli.errors import CliError
from imputehub.cli.token_store import (
    StoredLogin,
    credentials_path,
    forget_login,
    load_login,
    save_login,
)

LOGIN = StoredLogin(url="https://hub.example.org", token="ih_secret", token_id="t1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_login_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    config_dir = tmp_path / "deep" / "config"

    path = save_login(config_dir, LOGIN)

    assert path == credentials_path(config_dir)
    assert mode(path) == 0o600
    assert mode(config_dir) == 0o700
    assert load_login(config_dir) == LOGIN
    assert [p.name for p in config_dir.iterdir()] == ["credentials.json"]  # no temp file left


def test_an_open_existing_directory_is_closed_and_an_old_file_replaced(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)
    config_dir.chmod(0o755)
    old = credentials_path(config_dir)
    old.write_text('{"url": "http://old", "token": "ih_old"}')
    old.chmod(0o644)

    save_login(config_dir, LOGIN)

    assert mode(config_dir) == 0o700
    assert mode(old) == 0o600
    assert load_login(config_dir) == LOGIN


def test_no_file_means_not_logged_in(tmp_path: Path) -> None:
    assert load_login(tmp_path) is None
    assert forget_login(tmp_path) is False


def test_forget_removes_the_file(tmp_path: Path) -> None:
    save_login(tmp_path, LOGIN)

    assert forget_login(tmp_path) is True
    assert load_login(tmp_path) is None


@pytest.mark.parametrize("content", ["not json", "[]", '{"url": "http://x"}', '{"token": 1}'])
def test_a_damaged_file_asks_for_a_new_login(tmp_path: Path, content: str) -> None:
    credentials_path(tmp_path).write_text(content)

    with pytest.raises(CliError, match="run `imputehub login` again"):
        load_login(tmp_path)
