"""Errors the command line reports as one plain line: `error: <message>`, exit status 1.

Expected failures (a refused request, an unreachable hub, bad input) never show a
traceback; only bugs do. `cli.main.run` prints them.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class CliError(Exception):
    """A failure to report to the user in one line on stderr."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, turning our own domain errors into `CliError`."""
    import asyncio  # here: the remote commands, and `--help`, never need it

    from imputehub.domain.errors import ImputehubError

    try:
        return asyncio.run(coro)
    except ImputehubError as exc:
        raise CliError(exc.message) from exc
