"""Services are untrusted: an answer far larger than the hub reads (200 MiB, made as it is
sent by a hostile server on loopback) ends in a clear error after at most the limit, not in
a process that buffers it all. The server counts what it managed to send before the hub
hung up; that count stays near the limit, far below what was offered."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from imputehub.connectors.base import ExternalRef, HealthStatus, ServiceInfo
from imputehub.connectors.dnastack.connector import DnastackConnector
from imputehub.connectors.http import ANSWER_LIMIT, ERROR_ANSWER_LIMIT, ask
from imputehub.connectors.michigan.connector import MichiganConnector
from imputehub.connectors.wes.connector import WesConnector
from imputehub.domain.errors import CredentialRejected, TransientServiceError
from tests.support.threaded_http import running

OFFERED = 200 * 1024 * 1024
BLOCK = b'"' + b"x" * (64 * 1024 - 3) + b'",'
# What the hub may take in before it stops, plus what the loopback sockets may hold
# meanwhile (Linux lets a receiving socket grow to 32 MiB; some MiB are usual): still far
# below what was offered, which a hub reading the whole answer would have taken in.
MOST_SENT = ANSWER_LIMIT + 40 * 1024 * 1024
WES = "/ga4gh/wes/v1"


@dataclass
class Hostile:
    """What the server answers every request with, and what it managed to send."""

    url: str = ""
    status: int = 200
    size: int = OFFERED  # bytes of body offered (decoded), or a small JSON answer when 0
    chunked: bool = False  # no Content-Length: an endless-looking stream
    gzip: bool = False  # sent compressed: the limit counts what it decodes to
    sent: int = 0  # body bytes the server got onto the wire
    paths: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def body(self) -> Iterator[bytes]:
        if not self.size:
            yield b'{"state": "RUNNING", "run_id": "r1", "note": "' + b"y" * 5000 + b'"}'
            return
        yield b'{"runs": ['
        offered = 10
        while offered < self.size:
            yield BLOCK
            offered += len(BLOCK)

    def wire(self) -> Iterator[bytes]:
        if not self.gzip:
            yield from self.body()
            return
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        for block in self.body():
            if packed := packer.compress(block):
                yield packed
        yield packer.flush()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        state = self.server.state
        state.paths.append(self.path)
        try:
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            if state.gzip:
                self.send_header("Content-Encoding", "gzip")
            if state.chunked or state.gzip:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(sum(map(len, state.body()))))
            self.end_headers()
            for block in state.wire():
                if state.chunked or state.gzip:
                    block = b"%x\r\n%s\r\n" % (len(block), block)
                self.wfile.write(block)
                state.sent += len(block)
            if state.chunked or state.gzip:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the hub hung up: what it wanted to happen
        finally:
            state.done.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: Hostile) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def hostile_server() -> Iterator[Hostile]:
    state = Hostile()
    with running(_Server(state)) as url:
        state.url = url
        yield state


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with hostile_server() as state:
        yield state


def stopped_early(hostile: Hostile) -> int:
    """What the server sent before the hub hung up; fails if it went on sending."""
    assert hostile.done.wait(10), "the server was still sending: the hub kept reading"
    assert hostile.sent < MOST_SENT, f"{hostile.sent} bytes sent of {OFFERED} offered"
    return hostile.sent


def wes_service(hostile: Hostile) -> ServiceInfo:
    return ServiceInfo(id="w", slug="w", api_type="ga4gh_wes", base_url=f"{hostile.url}{WES}")


async def test_wes_health_check_with_a_huge_service_info_is_unhealthy(hostile: Hostile) -> None:
    health = await WesConnector().check_health(wes_service(hostile))

    assert health.status is HealthStatus.UNHEALTHY
    assert health.message is not None
    assert f"larger than 8 MiB to GET {WES}/service-info" in health.message
    stopped_early(hostile)


async def test_wes_poll_of_an_endless_run_answer_is_transient(hostile: Hostile) -> None:
    hostile.chunked = True

    with pytest.raises(TransientServiceError) as caught:
        await WesConnector().poll(wes_service(hostile), ExternalRef(external_id="r1"), None)

    assert caught.value.message.startswith(
        f"the WES service sent an answer larger than 8 MiB to GET {WES}/runs/r1;"
    )
    stopped_early(hostile)


async def test_wes_poll_of_a_gzip_bomb_counts_what_it_decodes_to(hostile: Hostile) -> None:
    hostile.gzip = True  # 200 MiB of JSON in well under 1 MiB on the wire

    with pytest.raises(TransientServiceError, match="larger than 8 MiB"):
        await WesConnector().poll(wes_service(hostile), ExternalRef(external_id="r1"), None)

    stopped_early(hostile)


async def test_michigan_job_status_poll_of_a_huge_answer_is_transient(hostile: Hostile) -> None:
    service = ServiceInfo(id="m", slug="m", api_type="michigan", base_url=hostile.url)

    with pytest.raises(TransientServiceError) as caught:
        await MichiganConnector().poll(service, ExternalRef(external_id="job-1"), "token")

    assert caught.value.message.startswith(
        "the service sent an answer larger than 8 MiB to GET /api/v2/jobs/job-1/status;"
    )
    stopped_early(hostile)


async def test_dnastack_token_endpoint_with_a_huge_answer_is_transient(hostile: Hostile) -> None:
    service = ServiceInfo(
        id="d",
        slug="d",
        api_type="dnastack",
        base_url=f"{hostile.url}/api/ewes",
        api_config={
            "namespace": "ns",
            "token_url": f"{hostile.url}/oauth/token",
            "client_id": "hub",
        },
    )

    with pytest.raises(TransientServiceError) as caught:
        await DnastackConnector().poll(service, ExternalRef(external_id="r1"), "secret")

    assert caught.value.message.startswith(
        "the token endpoint sent an answer larger than 8 MiB to POST /oauth/token;"
    )
    assert hostile.paths == ["/oauth/token"]  # no run asked about without a token
    stopped_early(hostile)


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [
        (500, TransientServiceError, "answered HTTP 500"),
        (401, CredentialRejected, "refused the credential"),
    ],
)
async def test_a_huge_error_answer_is_judged_by_its_status(
    hostile: Hostile, status: int, error: type[Exception], said: str
) -> None:
    hostile.status = status

    with pytest.raises(error, match=said):
        await WesConnector().poll(wes_service(hostile), ExternalRef(external_id="r1"), None)

    stopped_early(hostile)


@pytest.mark.parametrize("gzip", [False, True])
async def test_an_answer_within_the_limit_reads_as_an_ordinary_one(
    hostile: Hostile, gzip: bool
) -> None:
    hostile.size = 0  # a small JSON answer
    hostile.gzip = gzip

    async with httpx.AsyncClient() as client:
        answer = await ask(client, "GET", f"{hostile.url}{WES}/runs/r1?x=1")

    assert answer.status_code == 200
    assert answer.json()["state"] == "RUNNING"  # decoded once, even when gzipped
    assert str(answer.url) == f"{hostile.url}{WES}/runs/r1?x=1"
    assert answer.headers["Content-Type"] == "application/json"


async def test_a_limit_of_one_call_is_its_own(hostile: Hostile) -> None:
    hostile.size = 0

    async with httpx.AsyncClient() as client:
        with pytest.raises(TransientServiceError, match=r"larger than 4 KiB to GET /small"):
            await ask(client, "GET", f"{hostile.url}/small", limit=4096)


async def test_only_the_head_of_an_error_answer_is_kept(hostile: Hostile) -> None:
    hostile.status = 502

    async with httpx.AsyncClient() as client:
        answer = await ask(client, "GET", f"{hostile.url}/anything")

    assert answer.status_code == 502
    assert len(answer.content) == ERROR_ANSWER_LIMIT
    assert answer.content.startswith(b'{"runs": ["xxx')
    stopped_early(hostile)
