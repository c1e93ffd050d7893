"""`imputehub login` / `logout`: keep a personal API token for a hub."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from imputehub.cli.client import HubClient, HubError, HubUnreachable, normalise_url, segment
from imputehub.cli.errors import CliError
from imputehub.cli.options import UrlOption
from imputehub.cli.output import warn
from imputehub.cli.prompts import read_password
from imputehub.cli.settings import load_settings
from imputehub.cli.token_store import StoredLogin, forget_login, load_login, save_login


def token_name() -> str:
    return f"imputehub-cli@{socket.gethostname()}"[:100]


def login(
    url: UrlOption = None,
    username: Annotated[str | None, typer.Option("--username", help="Your login name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Log in to a hub and store an API token for the other commands."""
    settings = load_settings()
    previous = load_login(settings.client_config_dir)
    if url is None:
        url = (
            settings.url if "url" in settings.model_fields_set or previous is None else previous.url
        )
    url = normalise_url(url)
    if username is None:
        if password_stdin:  # stdin carries the password; the name cannot come from there too
            raise CliError("give --username together with --password-stdin")
        username = str(typer.prompt("Username")).strip()
    password = read_password(from_stdin=password_stdin, confirm=False)

    with HubClient(url) as anonymous:
        session = anonymous.post("/auth/login", json={"username": username, "password": password})
    with HubClient(url, session["access_token"]) as client:
        created = client.post("/auth/tokens", json={"name": token_name()})
    save_login(
        settings.client_config_dir,
        StoredLogin(url=url, token=created["token"], token_id=created["id"]),
    )
    if previous is not None and previous.token_id is not None:
        _revoke(previous)  # the old token would otherwise stay valid, forgotten
    typer.echo(f"logged in to {url} as {session['user']['username']}")


def logout() -> None:
    """Delete the stored token, at the hub and on this machine."""
    settings = load_settings()
    stored = load_login(settings.client_config_dir)
    if stored is None:
        raise CliError("not logged in")
    _revoke(stored)
    forget_login(settings.client_config_dir)
    typer.echo(f"logged out of {stored.url}")


def _revoke(stored: StoredLogin) -> None:
    """Best effort: a hub that is gone or already forgot the token must not block logout."""
    if stored.token_id is None:
        warn("the stored login has no token id; delete the token in the hub's web pages")
        return
    try:
        with HubClient(stored.url, stored.token) as client:
            client.delete(f"/auth/tokens/{segment(stored.token_id)}")
    except HubError as exc:
        if exc.status not in (401, 404):
            warn(f"could not delete the token at {stored.url}: {exc.message}")
    except HubUnreachable as exc:
        warn(f"{exc.message}; the token stays valid there until deleted")


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
