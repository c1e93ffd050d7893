"""A loopback HTTP/1.1 server that counts the TCP connections it accepted and saw closed,
answering each GET or POST with what a test set for its path (Michigan and WES status answers)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.threaded_http import running


@dataclass
class Answer:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow service)
    # Answered only once set; `arrived` is set when the request came (a call under way).
    gate: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.accepted = 0
        self.closed = 0
        self.requests: list[dict[str, str]] = []  # each request's headers, in order
        self.answers: dict[str, Answer] = {}

    def get_request(self) -> Any:
        accepted = super().get_request()
        with self.lock:
            self.accepted += 1
        return accepted

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.changed:
            self.closed += 1
            self.changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up waiting (a timeout test) left: not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def wait_closed(self, count: int, timeout: float = 10.0) -> int:
        """Wait until `count` connections were closed (or the timeout); how many were."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.closed < count and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            return self.closed


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services
    server: CountingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.requests.append(dict(self.headers.items()))
            answer = self.server.answers.get(path)
        if answer is None:
            answer = Answer({"message": "not found"}, status=404)
        if answer.gate is not None:
            answer.arrived.set()
            answer.gate.wait(10)
        if answer.delay:
            time.sleep(answer.delay)
        body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[tuple[CountingServer, str]]:
    server = CountingServer()
    with running(server) as url:
        yield server, url
