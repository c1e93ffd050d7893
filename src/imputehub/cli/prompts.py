"""Reading passwords and secrets: from stdin for scripts, hidden prompts for people.

Secrets are never accepted as command-line arguments (they would land in shell history
and in `ps` output).
"""

from __future__ import annotations

import sys

import typer

from imputehub.cli.errors import CliError


def read_stdin_line(what: str) -> str:
    """The first line of stdin, without its line ending."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CliError(f"no {what} on stdin")
    return line


def read_password(*, from_stdin: bool, confirm: bool, prompt: str = "Password") -> str:
    if from_stdin:
        return read_stdin_line("password")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password on; use --password-stdin")
    password: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    if not password:
        raise CliError("the password must not be empty")
    return password
