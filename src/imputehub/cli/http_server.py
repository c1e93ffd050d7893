"""uvicorn, announcing the hub's URL once it really listens."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

import typer
import uvicorn


class AnnouncingServer(uvicorn.Server):
    """`on_shutdown` runs when the server starts to stop, before it waits for the open
    responses to end (the hub ends its live event streams there, which never end alone)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        url: str,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.url = url
        self.on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown()
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            typer.echo(f"imputehub is running at {self.url}  (API docs: {self.url}/docs)")
            typer.echo("Press Ctrl-C to stop it.")
            sys.stdout.flush()
