"""The systemd units in deploy/systemd, as the README tells an admin to install them: each
passes `systemd-analyze verify` without a warning, runs a command the CLI takes, and the
environment file names only settings the hub has."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imputehub.config import Settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED_AT = "/opt/imputehub"  # where the README installs the checkout
# Template units, verified as the instance the README enables first.
INSTANCES = {
    "imputehub-api@.service": "imputehub-api@8000.service",
    "imputehub-worker@.service": "imputehub-worker@1.service",
    "imputehub-migrate.service": "imputehub-migrate.service",
}


def installed_here(tmp_path: Path) -> dict[str, Path]:
    """The units with this checkout (and its .venv) where /opt/imputehub would be."""
    copies = {}
    for template, instance in INSTANCES.items():
        text = (UNITS / template).read_text().replace(INSTALLED_AT, str(ROOT))
        copies[template] = tmp_path / instance
        copies[template].write_text(text)
    return copies


def test_the_units_pass_systemd_analyze_verify_without_a_warning(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed (Debian's systemd; make deps-test installs it)")
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(INSTANCES)
    copies = installed_here(tmp_path)
    for unit in copies.values():
        done = subprocess.run(
            [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        # A misspelt value is only a warning (exit 0): any line naming the unit fails too.
        warnings = [line for line in done.stderr.splitlines() if unit.name in line]
        assert done.returncode == 0, done.stderr
        assert warnings == [], warnings


@pytest.mark.parametrize("template", sorted(INSTANCES))
def test_each_unit_runs_a_command_the_cli_takes(template: str) -> None:
    text = (UNITS / template).read_text()
    [command] = re.findall(r"^ExecStart=(.+)$", text, flags=re.MULTILINE)
    program, *args = shlex.split(command.replace("%i", "8000"))
    assert program == f"{INSTALLED_AT}/.venv/bin/imputehub"
    # The same arguments, asked for help: an unknown command or option fails here.
    done = subprocess.run(
        [sys.executable, "-m", "imputehub", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: " in done.stdout


def test_the_environment_file_names_only_settings_the_hub_has() -> None:
    names = [
        line.split("=", 1)[0].lstrip("# ")
        for line in (UNITS / "imputehub.env.example").read_text().splitlines()
        if re.match(r"^#? ?IMPUTEHUB_[A-Z_]+=", line)
    ]
    assert "IMPUTEHUB_SECRET_KEY" in names
    known = {f"IMPUTEHUB_{field.upper()}" for field in Settings.model_fields}
    assert [name for name in names if name not in known] == []
