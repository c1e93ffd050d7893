"""Settings come from a mapping; the secret key is generated once, privately."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from imputehub.config import Settings, load_secret_key


def test_environment_mapping_is_read_with_prefix(tmp_path: Path) -> None:
    settings = Settings.from_environ(
        {
            "IMPUTEHUB_DATA_DIR": str(tmp_path),
            "IMPUTEHUB_MAX_ACTIVE_JOBS_PER_USER": "7",
            "OTHER": "ignored",
        }
    )
    assert settings.data_dir == tmp_path
    assert settings.max_active_jobs_per_user == 7


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_environ({}, data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'imputehub.db'}"
    assert settings.is_sqlite


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_database_urls_use_async_drivers(given: str, used: str) -> None:
    assert Settings.from_environ({"IMPUTEHUB_DATABASE_URL": given}).database_url == used


def test_relative_paths_are_made_absolute_once_where_the_settings_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` starts the hub with the default `./var`; the engine runs Beagle in a run's
    # own directory, so every path must already be absolute when a process changes dirs.
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_environ(
        {
            "IMPUTEHUB_ENGINE_DIR": "engine/../beagle-runs",
            "IMPUTEHUB_DATABASE_URL": "sqlite:///db/hub.db?timeout=5",
            "IMPUTEHUB_CLIENT_CONFIG_DIR": "client",
            "IMPUTEHUB_BEAGLE_JAR": "jars/beagle.jar",
        }
    )
    monkeypatch.chdir("/")
    assert settings.data_dir == tmp_path / "var"
    assert settings.resolved_engine_dir == tmp_path / "beagle-runs"
    assert settings.client_config_dir == tmp_path / "client"
    assert settings.beagle_jar == tmp_path / "jars" / "beagle.jar"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/db/hub.db?timeout=5"
    default = Settings.from_environ({}, data_dir=Path("here"))
    assert default.resolved_engine_dir == Path("/here/engine")
    assert default.resolved_database_url == "sqlite+aiosqlite:////here/imputehub.db"


def test_a_home_relative_data_dir_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/researcher")
    settings = Settings.from_environ({"IMPUTEHUB_DATA_DIR": "~/imputehub"})
    assert settings.data_dir == Path("/home/researcher/imputehub")


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings.from_environ({"IMPUTEHUB_MAX_ACTIVE_JOBS_PER_USER": "0"})


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings.from_environ({}, data_dir=tmp_path / "data")
    first = load_secret_key(settings)
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_secret_key(settings) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_a_short_configured_secret_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_environ({}, data_dir=tmp_path, secret_key="short")
    with pytest.raises(ValueError, match="at least 32"):
        load_secret_key(settings)


@pytest.mark.parametrize("given", ["hub.example.org", "ftp://hub.example.org", "https://", "/hub"])
def test_a_public_url_that_is_no_http_address_is_refused(given: str) -> None:
    with pytest.raises(ValidationError, match="IMPUTEHUB_PUBLIC_URL must be an http"):
        Settings.from_environ({"IMPUTEHUB_PUBLIC_URL": given})


def test_a_public_url_is_kept_without_its_trailing_slash() -> None:
    settings = Settings.from_environ({"IMPUTEHUB_PUBLIC_URL": "https://hub.example.org/imp/"})
    assert settings.public_url == "https://hub.example.org/imp"
