"""A small WES + DRS + file server on loopback, for the WES connector's edge cases.

Real HTTP over real sockets, with the answers and faults a test asks for: runs whose states
follow a script, RunLogs whose `stdout`/`stderr` are URLs, outputs given as any JSON the
test builds (http URLs or `drs://` URIs), DRS 1.x objects and access ids, files served with
Range support, and faults queued per path prefix: an answer slower than the client waits,
HTTP 500, malformed JSON, a connection dropped halfway through a body, corrupted bytes.
Two instances on two ports are two origins (for "the credential goes only to the WES
server" checks). Every request is recorded with its headers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.threaded_http import running

WES = "/ga4gh/wes/v1"
DRS = "/ga4gh/drs/v1/objects/"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Run:
    run_id: str
    tags: dict[str, Any]
    states: list[str]  # answered in turn, the last one for ever after
    asked: int = 0

    def state(self) -> str:
        state = self.states[min(self.asked, len(self.states) - 1)]
        self.asked += 1
        return state


@dataclass
class Fault:
    prefix: str
    kind: str  # slow | 500 | malformed | drop | corrupt
    times: int


@dataclass
class TinyState:
    url: str = ""
    runs: dict[str, Run] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # served at /files/<name>
    redirects: dict[str, str] = field(default_factory=dict)  # GET path -> 302 Location
    drs_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    drs_access: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    # What a new run's states will be; its RunLog's outputs and run_log, built per run.
    states: list[str] = field(default_factory=lambda: ["RUNNING", "COMPLETE"])
    outputs: Callable[[str], Any] = lambda run_id: {}
    run_log: Callable[[str], dict[str, Any]] = lambda run_id: {}
    honour_range: bool = True
    slow_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault(self, prefix: str, kind: str, times: int = 1) -> None:
        """The next `times` requests whose path starts with `prefix` meet `kind`."""
        with self.lock:
            self.faults.append(Fault(prefix=prefix, kind=kind, times=times))

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.prefix) and fault.times > 0:
                    fault.times -= 1
                    return fault.kind
        return None

    def requests(self, method: str, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.startswith(prefix)]

    @property
    def wes_url(self) -> str:
        return f"{self.url}{WES}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> TinyState:
        return self.server.state

    def _send(self, status: int, data: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _fault(self, kind: str | None) -> bool:
        """Answer with the fault, if one is due; True when the request is done with."""
        if kind == "slow":
            time.sleep(self.state.slow_seconds)  # the client has given up by now
            self.close_connection = True
            return True
        if kind == "500":
            self._json(500, {"msg": "internal error", "status_code": 500})
            return True
        if kind == "malformed":
            self._send(200, b'{"run_id": "x", "state": ', "application/json")
            return True
        return False

    def _record(self) -> str:
        self.state.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        return self.path.split("?", 1)[0]

    def do_POST(self) -> None:
        path = self._record()
        length = int(self.headers.get("Content-Length", "0"))
        while length > 0:  # a submission's body: read, not kept
            length -= len(self.rfile.read(min(length, 1 << 16)))
        if self._fault(self.state.take_fault(path)):
            return
        if path == f"{WES}/runs":
            run_id = uuid.uuid4().hex
            self.state.runs[run_id] = Run(
                run_id=run_id, tags={"imputehub_job_id": "?"}, states=list(self.state.states)
            )
            self._json(200, {"run_id": run_id})
        elif path.startswith(f"{WES}/runs/") and path.endswith("/cancel"):
            run_id = path.split("/")[-2]
            if run_id in self.state.runs:
                self.state.runs[run_id].states = ["CANCELED"]
            self._json(200, {"run_id": run_id})
        else:
            self._json(404, {"msg": "no such path", "status_code": 404})

    def do_GET(self) -> None:
        path = self._record()
        kind = self.state.take_fault(path)
        if self._fault(kind):
            return
        if path in self.state.redirects:
            self._send(302, b"", "text/plain", Location=self.state.redirects[path])
        elif path == f"{WES}/runs":
            runs = [{"run_id": r.run_id, "state": r.states[-1]} for r in self.state.runs.values()]
            self._json(200, {"runs": runs, "next_page_token": ""})
        elif path.startswith(f"{WES}/runs/"):
            self._run(path.split("/")[-1])
        elif path.startswith(DRS):
            self._drs(path[len(DRS) :].split("/"))
        elif path.startswith("/files/"):
            self._file(path[len("/files/") :], kind)
        else:
            self._json(404, {"msg": "no such path", "status_code": 404})

    def _run(self, run_id: str) -> None:
        run = self.state.runs.get(run_id)
        if run is None:
            self._json(404, {"msg": "run not found", "status_code": 404})
            return
        state = run.state()
        self._json(
            200,
            {
                "run_id": run_id,
                "request": {"tags": run.tags},
                "state": state,
                "run_log": self.state.run_log(run_id),
                "outputs": self.state.outputs(run_id) if state == "COMPLETE" else {},
            },
        )

    def _drs(self, parts: list[str]) -> None:
        if len(parts) == 1 and parts[0] in self.state.drs_objects:
            self._json(200, self.state.drs_objects[parts[0]])
        elif (
            len(parts) == 3
            and parts[1] == "access"
            and (parts[0], parts[2]) in (self.state.drs_access)
        ):
            self._json(200, self.state.drs_access[(parts[0], parts[2])])
        else:
            self._json(404, {"msg": "no such DRS object", "status_code": 404})

    def _file(self, name: str, kind: str | None) -> None:
        if name not in self.state.files:
            self._json(404, {"msg": "no such file", "status_code": 404})
            return
        data = self.state.files[name]
        wanted = self.headers.get("Range", "")
        if self.state.honour_range and wanted.startswith("bytes=-") and data:
            start = max(len(data) - int(wanted[len("bytes=-") :]), 0)
            self._send(
                206,
                data[start:],
                "text/plain",
                Content_Range=f"bytes {start}-{len(data) - 1}/{len(data)}",
            )
            return
        if kind == "corrupt":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if kind == "drop":
            # Promise the whole body, send half, hang up.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, data, "application/octet-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: TinyState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a slow answer is what the test wanted


@contextmanager
def tiny_server() -> Iterator[TinyState]:
    """A running server on a free loopback port; its state is what tests arrange and read."""
    state = TinyState()
    with running(_Server(state)) as url:
        state.url = url
        yield state
