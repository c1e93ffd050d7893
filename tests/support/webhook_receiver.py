"""A real HTTP webhook receiver on loopback: records each request, answers scripted codes.

`script` lists what to answer, one entry per request, then 200 for ever: an HTTP status,
or "hang" (hold the request until the receiver stops: a receiver that never answers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from tests.support.hub_server import reserve_socket, url_of


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: int  # unix seconds by the receiver's clock (to check signature freshness)


class Receiver:
    def __init__(
        self, script: list[int | str] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.script = list(script or [])
        self.clock = clock
        self.requests: list[Request] = []
        self.url = ""
        self._release = asyncio.Event()
        self._arrived = asyncio.Condition()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        async with self._arrived:
            self.requests.append(
                Request(
                    path=scope["path"],
                    headers=headers,
                    body=body,
                    received_at=int(self.clock()),
                )
            )
            self._arrived.notify_all()
        answer = self.script.pop(0) if self.script else 200
        if answer == "hang":
            await self._release.wait()
            answer = 200
        assert isinstance(answer, int)
        await send({"type": "http.response.start", "status": answer, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[Request]:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.requests) >= count), within
            )
        return list(self.requests)


@asynccontextmanager
async def receiving(
    script: list[int | str] | None = None, clock: Callable[[], float] = time.time
) -> AsyncIterator[Receiver]:
    """A receiver served over real HTTP until the block ends; `receiver.url` ends in /hook.

    `clock`: the receiver's time (a test's fake clock, to match the hub's)."""
    receiver = Receiver(script, clock)
    sock = reserve_socket()
    server = uvicorn.Server(uvicorn.Config(receiver, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the receiver stopped before it started")
        await asyncio.sleep(0.01)
    receiver.url = url_of(sock) + "/hook"
    try:
        yield receiver
    finally:
        receiver._release.set()
        server.should_exit = True
        await task
        sock.close()
