"""The command line starts quickly: `imputehub --help` and the client commands do not load
the server, the database or the simulation stack (structural checks, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "msprime", "tskit", "boto3", "botocore", "sqlalchemy", "fastapi", "uvicorn")
# Only the commands that talk to a hub need these; `--help` and `files check` do not.
CLIENT = ("httpx", "pydantic_settings")


def loaded_after(code: str) -> list[str]:
    """The modules of HEAVY and CLIENT a fresh interpreter holds after running `code`."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {HEAVY + CLIENT!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_importing_the_command_line_loads_nothing_heavy() -> None:
    assert loaded_after("import imputehub.cli.main") == []


@pytest.mark.parametrize("args", [["--help"], ["jobs", "list", "--help"], ["files", "--help"]])
def test_help_loads_nothing_heavy(args: list[str]) -> None:
    code = f"from imputehub.cli.main import run\nassert run({args!r}) == 0"
    assert loaded_after(code) == []


def test_a_client_command_loads_its_http_client_but_not_the_server() -> None:
    # A hub that is not there: the command fails, after loading all it needs to run.
    code = (
        "from imputehub.cli.main import run\n"
        "assert run(['jobs', 'show', 'j1', '--json', '--url', 'http://127.0.0.1:9']) == 1"
    )
    assert loaded_after(code) == sorted(CLIENT)


def test_the_local_file_check_needs_no_hub_client() -> None:
    code = (
        "from imputehub.cli.main import run\n"
        "assert run(['files', 'check', '/nonexistent/x.vcf.gz']) == 1"
    )
    assert loaded_after(code) == []


def test_httpx_does_not_drag_in_its_own_command_line_tool() -> None:
    # httpx loads click, rich and pygments for its own CLI when they are installed (~0.2 s
    # on every start of every process); the entry point keeps that import from happening.
    code = (
        "from imputehub.cli.main import run\n"
        "run(['jobs', 'show', 'j1', '--json', '--url', 'http://127.0.0.1:9'])\n"
        "import httpx, sys\n"
        "assert callable(httpx.main) and callable(httpx.get)\n"
        "assert 'httpx._main' not in sys.modules or sys.modules['httpx._main'] is None\n"
        "assert 'pygments' not in sys.modules, 'pygments loaded'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
