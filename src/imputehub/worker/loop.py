"""The worker loop (being built: see worker/ in ARCHITECTURE.md)."""

from __future__ import annotations

import asyncio

from imputehub.runtime import Runtime


class Worker:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
