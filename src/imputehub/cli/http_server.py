"""uvicorn, announcing the hub's URL once it really listens."""

from __future__ import annotations

import socket
import sys

import typer
import uvicorn


class AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            typer.echo(f"imputehub is running at {self.url}  (API docs: {self.url}/docs)")
            typer.echo("Press Ctrl-C to stop it.")
            sys.stdout.flush()
