"""Benchmark: the hub's CPU per status call to a service, pooled clients vs a client per call.

Following thousands of running jobs is mostly status GETs. Before the pool, each call
opened its own httpx client, whose TLS context (certifi's bundle parsed anew, even for
plain http) cost more than the call. This times N sequential Michigan status polls to a
minimal keep-alive HTTP server on loopback (its own process, so its CPU is not counted),
as process CPU (time.process_time) per call:
- before: a new httpx.AsyncClient per call, as the connector did (answer read by `ask`,
  checked and mapped to a status);
- per-call client, shared TLS context: what a connector built without a pool does now;
- hub: MichiganConnector(clients=ClientPool()).poll, the worker's path;
- baseline: raw httpx, one shared client, `client.get` + `.json()` (no checks, no mapping).
A benchmark that prints, never a test:

    python bench/service_calls.py
    python bench/service_calls.py --calls 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from imputehub.connectors.base import ExternalRef, ServiceInfo
from imputehub.connectors.clients import ClientPool
from imputehub.connectors.http import ask
from imputehub.connectors.michigan import MichiganConnector, states
from imputehub.connectors.michigan.answers import check, json_object

JOB = {"id": "job-1", "state": 2, "steps": [{"name": "Phasing", "logMessages": []}]}
AUTH = "bench-token"


# ---- the server (run in a process of its own: `--serve`) ----------------------------------


class _Status(asyncio.Protocol):
    """Answers every request on a connection with the job's status, keeping it open."""

    body = json.dumps(JOB).encode()
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:  # GETs only: no bodies
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(self.answer)


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(_Status, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


# ---- the callers -------------------------------------------------------------------------


def service(url: str) -> ServiceInfo:
    return ServiceInfo(id="bench", slug="bench", api_type="michigan", base_url=url)


async def timed(calls: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(CPU ms per call, wall ms per call) over `calls` sequential calls, after a warm-up."""
    for _ in range(min(20, calls)):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await call()
    return (
        (time.process_time() - cpu) * 1000 / calls,
        (time.perf_counter() - wall) * 1000 / calls,
    )


async def run(calls: int, slow_calls: int, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    status_url = f"{url}/api/v2/jobs/job-1/status"
    ref = ExternalRef(external_id="job-1")
    timeout = httpx.Timeout(60.0, connect=15.0)

    async def before() -> object:
        async with httpx.AsyncClient(timeout=timeout, headers={"X-Auth-Token": AUTH}) as client:
            response = await ask(client, "GET", status_url)
        check(response, job="job-1")
        return states.to_status(json_object(response))

    unpooled = MichiganConnector()
    pool = ClientPool()
    pooled = MichiganConnector(clients=pool)

    async with httpx.AsyncClient(timeout=timeout) as shared:

        async def raw() -> object:
            response = await shared.get(status_url, headers={"X-Auth-Token": AUTH})
            return response.json()

        rows = [
            ("before: new client per call", slow_calls, before),
            (
                "per-call client, shared TLS context",
                slow_calls,
                lambda: unpooled.poll(service(url), ref, AUTH),
            ),
            ("hub: pooled client", calls, lambda: pooled.poll(service(url), ref, AUTH)),
            ("baseline: raw httpx, one shared client", calls, raw),
        ]
        print(
            f"{'status GETs to a loopback server':42} {'calls':>6} {'CPU ms/call':>12} "
            f"{'wall ms/call':>13}"
        )
        for name, count, call in rows:
            cpu, wall = await timed(count, call)
            print(f"{name:42} {count:6d} {cpu:12.3f} {wall:13.3f}")
    await pool.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="status GETs per pooled run")
    parser.add_argument(
        "--slow-calls",
        type=int,
        default=None,
        help="status GETs per client-per-call run (default: --calls, at most 2000)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    slow = args.slow_calls if args.slow_calls is not None else min(args.calls, 2000)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        asyncio.run(run(args.calls, slow, port))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
