"""Process entry points: `serve` (API + worker), `api`, `worker` and `db upgrade`.

Heavy imports (FastAPI, SQLAlchemy, uvicorn) happen inside the commands so that the
client commands start quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from imputehub.cli.errors import CliError, run_async
from imputehub.cli.listen import listen
from imputehub.cli.options import DataDirOption
from imputehub.cli.settings import load_settings
from imputehub.logs import configure_logging

if TYPE_CHECKING:
    from imputehub.config import Settings
    from imputehub.runtime import Runtime

log = logging.getLogger("imputehub.cli")

HostOption = Annotated[
    str | None, typer.Option("--host", help="Interface to listen on (env IMPUTEHUB_HOST).")
]
PortOption = Annotated[
    int | None,
    typer.Option("--port", min=1, max=65535, help="Port to listen on (env IMPUTEHUB_PORT)."),
]
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def serve(host: HostOption = None, port: PortOption = None, data_dir: DataDirOption = None) -> None:
    """Run the whole hub in one process: HTTP API and worker (migrates the database first)."""
    settings = load_settings(host=host, port=port, data_dir=data_dir)
    _configure_logging(settings)
    # Owner-only: the data dir holds the secret key, the database and users' files.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Everything that can stop the start comes before the first admin is made: a generated
    # password is shown once, and must not scroll past a hub that then fails to start.
    runtime = _runtime(settings)
    listening = listen(settings.host, settings.port)
    from imputehub.cli import database

    database.upgrade(settings.resolved_database_url)
    run_async(bootstrap_first_admin(settings))
    from imputehub.clock import SystemClock
    from imputehub.engine.bootstrap import bootstrap_local_engine

    # The local engine and its demo panel, once (a few seconds on the very first start).
    with database.database_errors(settings.resolved_database_url):
        run_async(bootstrap_local_engine(settings, now=SystemClock().now()))
    _run_http(runtime, listening, run_worker=True)


def api(host: HostOption = None, port: PortOption = None, data_dir: DataDirOption = None) -> None:
    """Run the HTTP API only (run several behind a load balancer; needs a migrated database)."""
    settings = load_settings(host=host, port=port, data_dir=data_dir)
    _configure_logging(settings)
    runtime = _runtime(settings)
    listening = listen(settings.host, settings.port)
    _require_current_schema(settings)
    _run_http(runtime, listening, run_worker=False)


def worker(
    host: HostOption = None, port: PortOption = None, data_dir: DataDirOption = None
) -> None:
    """Run a background worker (run several on PostgreSQL; needs a migrated database).

    --host and --port are accepted for symmetry with `serve` and `api`; a worker does not
    listen on the network.
    """
    settings = load_settings(host=host, port=port, data_dir=data_dir)
    _configure_logging(settings)
    _require_current_schema(settings)
    asyncio.run(_run_worker(settings))


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None) -> None:
    """Apply the database migrations (before starting `api` or `worker` processes)."""
    settings = load_settings(data_dir=data_dir)
    from imputehub.cli import database

    url = settings.resolved_database_url
    database.upgrade(url)
    typer.echo(f"database {database.display_url(url)} is at the latest schema")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("api")(api)
    app.command("worker")(worker)
    app.add_typer(db_app, name="db")


def _configure_logging(settings: Settings) -> None:
    level = settings.log_level.upper()
    if level not in logging.getLevelNamesMapping():
        raise CliError(
            f"IMPUTEHUB_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, not {level}"
        )
    configure_logging(level, settings.log_format)


def _require_current_schema(settings: Settings) -> None:
    from imputehub.cli import database

    run_async(database.require_current_schema(settings.resolved_database_url))


async def bootstrap_first_admin(settings: Settings) -> None:
    """Create the first admin on a fresh hub; show a generated password once."""
    from imputehub.accounts.users import bootstrap_admin
    from imputehub.cli import database
    from imputehub.clock import SystemClock
    from imputehub.db.session import Database

    url = settings.resolved_database_url
    db = Database(url)
    try:
        with database.database_errors(url):
            async with db.session() as session:
                result = await bootstrap_admin(
                    session,
                    username=settings.admin_username,
                    password=(
                        settings.admin_password.get_secret_value()
                        if settings.admin_password
                        else None
                    ),
                    email=settings.admin_email,
                    now=SystemClock().now(),
                )
    finally:
        await db.dispose()
    if result.user is None:
        return
    # The log only says that an admin was made; the password goes to the terminal alone.
    log.info("created the first admin account %r", result.user.username)
    if result.generated_password is None:
        typer.echo(
            f"Created the first admin account '{result.user.username}' with the password "
            "from IMPUTEHUB_ADMIN_PASSWORD."
        )
        return
    rule = "=" * 72
    typer.echo(
        f"\n{rule}\n"
        f"  First admin account created.\n"
        f"    username: {result.user.username}\n"
        f"    password: {result.generated_password}\n"
        f"  This password is shown only this once: store it, or change it after logging in.\n"
        f"  Lost it? On this machine: imputehub users set-password {result.user.username}\n"
        f"{rule}\n"
    )
    sys.stdout.flush()


def _runtime(settings: Settings) -> Runtime:
    from imputehub.runtime import build_runtime

    try:
        return build_runtime(settings)
    except ValueError as exc:  # e.g. a too short IMPUTEHUB_SECRET_KEY
        raise CliError(str(exc)) from exc


# How long a stopping server lets responses in flight finish (a client resumes a cut
# download with Range); within systemd's default 90 s stop timeout.
GRACEFUL_SHUTDOWN_SECONDS = 20


def _end_streams(runtime: Runtime) -> None:
    if runtime.live_feed is not None:
        runtime.live_feed.end_streams()


def _run_http(runtime: Runtime, listening: socket.socket, *, run_worker: bool) -> None:
    import uvicorn

    from imputehub.app import create_app
    from imputehub.cli.http_server import AnnouncingServer

    settings = runtime.settings
    config = uvicorn.Config(
        create_app(runtime, run_worker=run_worker),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our logging configuration, set above
        lifespan="on",
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; the hub decides
        # whom to believe itself (IMPUTEHUB_TRUSTED_PROXIES, monitoring/client_address.py).
        proxy_headers=False,
        # Ctrl-C or SIGTERM waits this long at most for responses in flight (a download)
        # before they are cut; live event streams are ended at once (`_end_streams`).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    url = settings.public_url or f"http://{_url_host(settings.host)}:{settings.port}"
    # uvicorn re-raises SIGTERM after its graceful shutdown; treat it like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    server = AnnouncingServer(config, url=url, on_shutdown=lambda: _end_streams(runtime))
    _freeze_startup_objects()
    with contextlib.suppress(KeyboardInterrupt):
        try:
            # Server.run, not asyncio.run(server.serve()): it builds the event loop that
            # loop="auto" picks (uvloop when installed); http="auto" picks httptools.
            server.run(sockets=[listening])
        except SystemExit as exc:  # uvicorn's way to say it could not start
            if server.started:
                raise
            raise CliError(
                f"could not start on {settings.host}:{settings.port} (the log above says why)"
            ) from exc
    typer.echo("imputehub stopped")


def _freeze_startup_objects() -> None:
    """Leave what start-up built (modules, models, routes) out of every garbage collection.

    A full collection otherwise walks those hundreds of thousands of objects again and
    again while requests wait: gc.freeze() took the p99 of status reads from 155 to 93 ms
    (bench/api_reads.py).
    """
    gc.collect()
    gc.freeze()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - only turned into a URL to show
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def _run_worker(settings: Settings) -> None:
    from imputehub.worker.loop import Worker

    runtime = _runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        log.info("received %s; finishing the current steps", signum.name)
        stop.set()
        # A second signal stops at once.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)
    worker = Worker(runtime)
    _freeze_startup_objects()  # once the runtime, its connectors and the worker are built
    try:
        await worker.run(stop)
    finally:
        await runtime.close()
