"""The `imputehub` command: server processes, operator commands and a client for a hub."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from imputehub import __version__
from imputehub.cli import engine as engine_cli
from imputehub.cli import (
    files,
    jobs,
    login,
    panels,
    server,
    services,
    submit,
    testdata,
    upload,
    users,
)
from imputehub.cli.errors import CliError

# httpx imports its own command-line tool (click, rich, pygments: about 0.2 s) whenever
# those happen to be installed, and falls back cleanly when that import fails. No imputehub
# process uses that tool, and every one (CLI, api, worker) would pay for it at start-up;
# httpx itself is imported later, by the commands that need it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

app = typer.Typer(
    name="imputehub",
    help="One hub in front of many genotype imputation services.",
    no_args_is_help=True,
    add_completion=False,
    # Expected errors are one line (CliError); a real bug keeps a plain traceback.
    pretty_exceptions_enable=False,
    # Plain help and usage errors: typer's rich formatting loads rich, markdown-it and
    # pygments, most of the start-up time of `imputehub --help` (it applies to every
    # sub-command: typer passes the mode down).
    rich_markup_mode=None,
    # Click wraps help at 80 columns by default; use up to 120 of a wider terminal.
    context_settings={"max_content_width": 120},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imputehub {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """One hub in front of many genotype imputation services."""


server.register(app)
login.register(app)
upload.register(app)
submit.register(app)
testdata.register(app)
app.add_typer(users.app, name="users")
app.add_typer(services.app, name="services")
app.add_typer(panels.app, name="panels")
app.add_typer(jobs.app, name="jobs")
app.add_typer(files.app, name="files")
app.add_typer(engine_cli.app, name="engine")


def run(argv: list[str] | None = None) -> int:
    """Run one command line; its exit status. Expected errors become `error: ...` lines."""
    try:
        app(args=argv, prog_name="imputehub")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        typer.echo(exc.code, err=True)
        return 1
    except CliError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        return exc.exit_code
    return 0


def main() -> None:
    sys.exit(run())
