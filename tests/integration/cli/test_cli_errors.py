"""Refusals from a real hub reach the user once, as one line saying what to do."""

from __future__ import annotations

import io
import sys

import pytest

from tests.integration.cli.conftest import Cli
from tests.support.api import Actor


@pytest.mark.parametrize(
    "args", [("jobs", "list"), ("jobs", "watch", "j1"), ("files", "list"), ("jobs", "logs", "j1")]
)
async def test_without_a_token_the_user_is_told_to_log_in(
    args: tuple[str, ...], cli: Cli, hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMPUTEHUB_TOKEN")

    done = await cli(*args)

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"error: not logged in to {hub_url}: run `imputehub login --url {hub_url}` "
        "(or set IMPUTEHUB_TOKEN)\n"
    )


async def test_a_refused_token_is_named_with_the_hubs_reason(
    cli: Cli, hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPUTEHUB_TOKEN", "ih_not_a_real_token")

    done = await cli("jobs", "list")

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        "error: the hub refused the token (invalid API token); "
        f"run `imputehub login --url {hub_url}` for a new one\n"
    )


async def test_a_wrong_password_is_said_once_and_plainly(
    alice: Actor, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("not her password\n"))

    done = await cli("login", "--username", "alice", "--password-stdin")

    assert (done.code, done.out, done.err) == (1, "", "error: wrong username or password\n")


async def test_an_invalid_request_is_one_line_naming_the_field(alice: Actor, cli: Cli) -> None:
    done = await cli("jobs", "list", "--service", "x" * 101)

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        "error: the request is not valid: query.service_id: "
        "String should have at most 100 characters\n"
    )
