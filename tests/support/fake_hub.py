"""A stand-in hub for command-line client tests: a real HTTP server on loopback that
answers canned responses and records what it was sent."""

from __future__ import annotations

import json as jsonlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


@dataclass
class FakeHub:
    routes: dict[tuple[str, str], Reply] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def reply(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        payload = body if body is not None else jsonlib.dumps(json).encode()
        self.routes[(method, path)] = Reply(status, payload, content_type)

    def problem(self, method: str, path: str, *, status: int, code: str, detail: str) -> None:
        body = {
            "type": f"urn:imputehub:problem:{code}",
            "status": status,
            "code": code,
            "detail": detail,
            "title": "problem",
        }
        self.reply(method, path, status=status, json=body, content_type="application/problem+json")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                hub.received.append(
                    Received(
                        method=self.command,
                        path=parts.path,
                        query=parts.query,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=self.rfile.read(length) if length else b"",
                    )
                )
                reply = hub.routes.get((self.command, parts.path)) or Reply(
                    404,
                    b'{"code": "not_found", "detail": "no such route"}',
                    "application/problem+json",
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
