"""A faithful local stand-in for DNAstack Workbench: its OAuth2 token endpoint and eWES.

Served over real HTTP on loopback (Starlette + uvicorn in a thread), following
../shared/reference/ga4gh-wes.md (the DNAstack bullet) and DNAstack's own client models:
- `POST /oauth/token`: the client-credentials grant, the client authenticated by HTTP
  Basic or by `client_id`/`client_secret` form fields; checks `resource` and `scope` when
  the emulator is told to; issues tokens that expire (`token_lifetime` seconds, or at once
  by `expire_tokens()`); an unknown client answers 401 `invalid_client`;
- eWES under `/{namespace}/ga4gh/wes/v1`: every call but service-info needs a live bearer
  token (else 401); POST /runs takes a JSON body only (multipart or any other type: 400)
  and refuses unknown top-level fields (400, as a strict JSON API does); GET /runs pages
  `page_size` (2) runs at a time, newest first, with `pagination.next_page_url`;
  GET /runs/{id}, /status, POST /cancel;
- a run's life: QUEUED -> PREPROCESSING -> RUNNING -> COMPLETE, one step per status read
  (or per `advance`). Leaving PREPROCESSING, the emulator downloads every http(s) URL in
  `workflow_params` — that is how DNAstack gets inputs — and a failed download ends the run
  in PREPROCESSING_ERROR with the reason in `errors`. A finished run's `outputs` point at
  files the emulator serves: each input copied as `<stem>.dose.vcf.gz`, plus `<stem>.info`
  describing it. `script(key, ...)` ends the run tagged with that hub job in
  COMPLETE_WITH_ERRORS instead.

Faults, queued per path prefix by `fault(prefix, kind, times)` and served before any route
(so a faulted request changes nothing at the Workbench): "slow" (no answer for
`slow_seconds`; a client that waits that long gets the real one), "500" (the Workbench's
error body), "malformed" (a 200 whose JSON breaks off), "drop" (the real answer's headers
and half its body, then the connection closes).

Tests read what it recorded: `submissions` (status, content type and body of every POST
/runs), `token_requests`, `fetches` (each input download: URL and HTTP status),
`downloads` (each output file served), `calls` (method and path of every request),
`bearers` (the token each API call bore), `faulted` (method, path and kind of each fault
served).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WES = "/{namespace}/ga4gh/wes/v1"
# ExtendedRunRequest's fields (DNAstack's client) and the engine choice.
KNOWN_FIELDS = frozenset(
    {
        "workflow_url",
        "workflow_name",
        "workflow_version",
        "workflow_authors",
        "workflow_type",
        "workflow_type_version",
        "workflow_id",
        "workflow_version_id",
        "submitted_by",
        "workflow_params",
        "workflow_engine_parameters",
        "dependencies",
        "tags",
        "samples",
        "hooks",
        "engine_id",
    }
)
LIFE = ("QUEUED", "PREPROCESSING", "RUNNING")
TERMINAL = frozenset(
    {"COMPLETE", "COMPLETE_WITH_ERRORS", "PREPROCESSING_ERROR", "EXECUTOR_ERROR", "CANCELED"}
)
TAG = "imputehub_job_id"
FAULT_KINDS = frozenset({"slow", "500", "malformed", "drop"})


@dataclass
class Fault:
    prefix: str
    kind: str
    times: int


@dataclass
class EmulatedRun:
    id: str
    namespace: str
    request: dict[str, Any]
    submitted_by: str
    start_time: str
    state: str = "QUEUED"
    end_time: str | None = None
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        tags = self.request.get("tags") or {}
        value = tags.get(TAG) if isinstance(tags, dict) else None
        return str(value) if value is not None else None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(message: str, status: int) -> JSONResponse:
    # The Workbench's error body (WorkbenchApiError): msg, error_code, timestamp.
    body = {"msg": message, "error_code": status, "timestamp": _now()}
    return JSONResponse(body, status_code=status)


def _urls_in(value: Any) -> list[str]:
    """Every http(s) URL in the workflow's parameters: the files preprocessing fetches."""
    if isinstance(value, str):
        return [value] if value.startswith(("http://", "https://")) else []
    if isinstance(value, list):
        return [url for item in value for url in _urls_in(item)]
    if isinstance(value, dict):
        return [url for item in value.values() for url in _urls_in(item)]
    return []


class DnastackEmulator:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clients: dict[str, str] = {}  # client id -> secret
        self.namespaces: set[str] = set()
        self.resource: str | None = None  # when set, a token request must name it
        self.scope: str | None = None
        self.token_lifetime = 3600
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client id, expiry)
        self.runs: dict[str, EmulatedRun] = {}
        self.order: list[str] = []  # run ids, oldest first
        self.page_size = 2
        self.relative_pages = False  # next_page_url as a path instead of an absolute URL
        self.auto_advance = True
        # While set, a run is created but the answer to its POST withheld: the client
        # reached the server yet never learns the run id, as when it dies mid-request.
        self.hold_submits = False
        self.scripted: dict[str, str] = {}  # hub job key -> COMPLETE_WITH_ERRORS message
        self.submissions: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, str]] = []
        self.fetches: list[tuple[str, int]] = []
        self.downloads: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.bearers: list[tuple[str, str, str]] = []  # method, path, token of each API call
        self.faults: list[Fault] = []
        self.faulted: list[tuple[str, str, str]] = []  # method, path, kind of each fault served
        self.slow_seconds = 2.0
        self.base_url = ""
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- configuration and control -----------------------------------------------------

    def add_client(self, client_id: str, secret: str, namespace: str) -> None:
        self.clients[client_id] = secret
        self.namespaces.add(namespace)

    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def endpoint(self) -> str:
        """What an admin enters as the service's URL: the eWES endpoint, before the namespace."""
        return f"{self.base_url}/ewes"

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as if their lifetime had run out)."""
        self.tokens = {token: (client, 0.0) for token, (client, _) in self.tokens.items()}

    def fault(self, prefix: str, kind: str, times: int = 1) -> None:
        """The next `times` requests whose path starts with `prefix` meet fault `kind`."""
        assert kind in FAULT_KINDS, kind
        with self._lock:
            self.faults.append(Fault(prefix=prefix, kind=kind, times=times))

    def take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.prefix) and fault.times > 0:
                    fault.times -= 1
                    self.faulted.append((method, path, fault.kind))
                    return fault.kind
        return None

    def script(self, key: str, message: str) -> None:
        """The run of hub job `key` ends in COMPLETE_WITH_ERRORS, giving `message`."""
        self.scripted[key] = message

    def run_tagged(self, key: str) -> EmulatedRun:
        matches = [run for run in self.runs.values() if run.key == key]
        assert len(matches) == 1, f"{len(matches)} runs tagged {key!r}"
        return matches[0]

    def accepted(self) -> list[dict[str, Any]]:
        return [s for s in self.submissions if s["status"] == 200]

    async def advance(self, run_id: str) -> str:
        """Move a run one step on (from the test's event loop, without blocking it)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._step(self.runs[run_id]), self._loop)
        await asyncio.wrap_future(future)
        return self.runs[run_id].state

    # ---- serving -----------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"

    def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve(sockets=[sock])

        asyncio.run(serve())

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def app(self) -> Starlette:
        return Starlette(
            middleware=[Middleware(_Faults, emulator=self)],
            routes=[
                Route("/oauth/token", self._token, methods=["POST"]),
                Route(f"/ewes{WES}/service-info", self._service_info),
                Route(f"/ewes{WES}/runs", self._list, methods=["GET"]),
                Route(f"/ewes{WES}/runs", self._submit, methods=["POST"]),
                Route(f"/ewes{WES}/runs/{{run_id}}", self._run),
                Route(f"/ewes{WES}/runs/{{run_id}}/status", self._status),
                Route(f"/ewes{WES}/runs/{{run_id}}/cancel", self._cancel, methods=["POST"]),
                Route("/outputs/{run_id}/{name}", self._output),
            ],
        )

    # ---- OAuth2 ------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[len("Basic ") :]).decode()
            client_id, _, secret = decoded.partition(":")
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not client_id or self.clients.get(client_id) != secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if self.resource is not None and form.get("resource") != self.resource:
            return JSONResponse({"error": "invalid_target"}, status_code=400)
        if self.scope is not None and form.get("scope") != self.scope:
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        token = uuid.uuid4().hex
        self.tokens[token] = (client_id, time.monotonic() + self.token_lifetime)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    def _caller(self, request: Request) -> str | Response:
        """The client a live bearer token belongs to, or the 401/404 answer."""
        self.calls.append((request.method, request.url.path))
        header = request.headers.get("Authorization", "")
        self.bearers.append((request.method, request.url.path, header.removeprefix("Bearer ")))
        held = self.tokens.get(header.removeprefix("Bearer ")) if header else None
        if held is None or held[1] <= time.monotonic():
            return _error("Full authentication is required to access this resource", 401)
        if request.path_params["namespace"] not in self.namespaces:
            return _error("namespace not found", 404)
        return held[0]

    # ---- eWES --------------------------------------------------------------------------

    async def _service_info(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        return JSONResponse(
            {
                "id": "com.dnastack.ewes",
                "name": "Workbench eWES (emulated)",
                "type": {"group": "com.dnastack.workbench", "artifact": "ewes-service"},
                "version": "1.0.0",
                "workflow_type_versions": {"WDL": {"workflow_type_version": ["1.0"]}},
                "supported_wes_versions": ["1.0.0"],
                "supported_filesystem_protocols": ["http", "https", "gs", "s3"],
            }
        )

    async def _submit(self, request: Request) -> Response:
        caller = self._caller(request)
        if isinstance(caller, Response):
            return caller
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        record: dict[str, Any] = {"content_type": content_type, "raw": raw, "body": None}
        self.submissions.append(record)

        def refuse(message: str) -> Response:
            record["status"] = 400
            return _error(message, 400)

        if content_type.split(";")[0].strip() != "application/json":
            return refuse(f"Content-Type '{content_type}' is not supported")
        try:
            body = json.loads(raw)
        except ValueError:
            return refuse("JSON parse error: the request body is not valid JSON")
        if not isinstance(body, dict):
            return refuse("JSON parse error: the request body must be an object")
        record["body"] = body
        unknown = sorted(set(body) - KNOWN_FIELDS)
        if unknown:
            return refuse(f'Unrecognized field "{unknown[0]}"')
        if not body.get("workflow_url") and not body.get("workflow_id"):
            return refuse("workflow_url or workflow_id is required")
        if not isinstance(body.get("workflow_params", {}), dict):
            return refuse("workflow_params must be an object")
        run = EmulatedRun(
            id=str(uuid.uuid4()),
            namespace=request.path_params["namespace"],
            request=body,
            submitted_by=caller,
            start_time=_now(),
        )
        with self._lock:
            self.runs[run.id] = run
            self.order.append(run.id)
        record["status"] = 200
        # The flag is flipped from the test's thread, which cannot set this loop's Event.
        while self.hold_submits:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return JSONResponse({"run_id": run.id, "state": run.state})

    async def _list(self, request: Request) -> Response:
        caller = self._caller(request)
        if isinstance(caller, Response):
            return caller
        namespace = request.path_params["namespace"]
        size = int(request.query_params.get("page_size") or self.page_size)
        size = min(size, self.page_size)  # the server's own limit
        start = int(request.query_params.get("page_token") or 0)
        newest = [self.runs[i] for i in reversed(self.order) if self.runs[i].namespace == namespace]
        page = newest[start : start + size]
        following = None
        if start + size < len(newest):
            following = f"{request.url.path}?page_size={size}&page_token={start + size}"
            if not self.relative_pages:
                following = f"{self.base_url}{following}"
        return JSONResponse(
            {
                "runs": [self._summary(run) for run in page],
                "pagination": {"next_page_url": following, "total_elements": len(newest)},
            }
        )

    def _summary(self, run: EmulatedRun) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "state": run.state,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "submitted_by": run.submitted_by,
            "workflow_url": run.request.get("workflow_url"),
            "workflow_name": run.request.get("workflow_name"),
            "engine_id": run.request.get("engine_id"),
            "tags": run.request.get("tags") or {},
        }

    def _find(self, request: Request) -> EmulatedRun | Response:
        caller = self._caller(request)
        if isinstance(caller, Response):
            return caller
        run = self.runs.get(request.path_params["run_id"])
        if run is None or run.namespace != request.path_params["namespace"]:
            return _error("run not found", 404)
        return run

    async def _run(self, request: Request) -> Response:
        run = self._find(request)
        if isinstance(run, Response):
            return run
        if self.auto_advance:
            await self._step(run)
        return JSONResponse(
            {
                "run_id": run.id,
                "engine_id": run.request.get("engine_id"),
                "request": run.request,
                "state": run.state,
                "run_log": {
                    "name": run.request.get("workflow_name") or "workflow",
                    "start_time": run.start_time,
                    "end_time": run.end_time,
                },
                "errors": run.errors,
                "task_logs": [],
                "outputs": run.outputs,
            }
        )

    async def _status(self, request: Request) -> Response:
        run = self._find(request)
        if isinstance(run, Response):
            return run
        if self.auto_advance:
            await self._step(run)
        return JSONResponse({"run_id": run.id, "state": run.state})

    async def _cancel(self, request: Request) -> Response:
        run = self._find(request)
        if isinstance(run, Response):
            return run
        if run.state in TERMINAL:
            return _error(f"run {run.id} is {run.state} and cannot be canceled", 400)
        run.state, run.end_time = "CANCELED", _now()
        return JSONResponse({"run_id": run.id, "state": run.state})

    async def _output(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        run = self.runs.get(request.path_params["run_id"])
        path = run.files.get(request.path_params["name"]) if run else None
        if path is None:
            return _error("no such object", 404)
        self.downloads.append(request.path_params["name"])
        return FileResponse(path)

    # ---- a run's life ------------------------------------------------------------------

    async def _step(self, run: EmulatedRun) -> None:
        if run.state == "QUEUED":
            run.state = "PREPROCESSING"
        elif run.state == "PREPROCESSING":
            if await self._fetch_inputs(run):
                run.state = "RUNNING"
            else:
                run.state, run.end_time = "PREPROCESSING_ERROR", _now()
        elif run.state == "RUNNING":
            self._finish(run)

    async def _fetch_inputs(self, run: EmulatedRun) -> bool:
        folder = self.workdir / run.id / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        async with httpx.AsyncClient(timeout=30.0, follow_redirects=True) as client:
            for url in _urls_in(run.request.get("workflow_params") or {}):
                name = unquote(Path(urlsplit(url).path).name) or "input"
                try:
                    async with client.stream("GET", url) as response:
                        self.fetches.append((url, response.status_code))
                        if response.status_code != 200:
                            run.errors.append(
                                f"Failed to localize input {name}: "
                                f"HTTP {response.status_code} from {urlsplit(url).netloc}"
                            )
                            return False
                        with (folder / name).open("wb") as out:
                            async for chunk in response.aiter_bytes(65536):
                                out.write(chunk)
                except httpx.HTTPError as exc:
                    self.fetches.append((url, 0))
                    run.errors.append(f"Failed to localize input {name}: {type(exc).__name__}")
                    return False
        return True

    def _finish(self, run: EmulatedRun) -> None:
        folder = self.workdir / run.id / "outputs"
        folder.mkdir(parents=True, exist_ok=True)
        doses: list[str] = []
        infos: list[str] = []
        for source in sorted((self.workdir / run.id / "inputs").iterdir()):
            stem = source.name.removesuffix(".gz").removesuffix(".vcf")
            dose, info = f"{stem}.dose.vcf.gz", f"{stem}.info"
            shutil.copyfile(source, folder / dose)
            with source.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            (folder / info).write_text(f"input\t{source.name}\nsha256\t{digest}\n")
            for name, names in ((dose, doses), (info, infos)):
                run.files[name] = folder / name
                names.append(f"{self.base_url}/outputs/{run.id}/{name}")
        # WDL outputs as the Workbench reports them: fully qualified names -> locations.
        run.outputs = {"impute.doses": doses, "impute.infos": infos}
        message = self.scripted.get(run.key or "")
        if message is not None:
            run.state = "COMPLETE_WITH_ERRORS"
            run.errors.append(message)
        else:
            run.state = "COMPLETE"
        run.end_time = _now()


class _Faults:
    """Serves the emulator's queued faults in front of its routes."""

    def __init__(self, app: ASGIApp, emulator: DnastackEmulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = None
        if scope["type"] == "http":
            kind = self.emulator.take_fault(scope["method"], scope["path"])
        if kind == "500":
            await _error("internal error", 500)(scope, receive, send)
        elif kind == "malformed":
            broken = Response(b'{"run_id": "x", "state": ', media_type="application/json")
            await broken(scope, receive, send)
        elif kind == "slow":
            await self._slow(scope, receive, send)
        elif kind == "drop":
            await self.app(scope, receive, _half_then_hang_up(send))
        else:
            await self.app(scope, receive, send)

    async def _slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Read the request, then wait: a client that gives up first gets no answer at all
        # (and the run is not stepped on); one that waits gets the real answer.
        request: list[Message] = []
        while not request or request[-1].get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            request.append(message)
        try:
            gone = await asyncio.wait_for(receive(), timeout=self.emulator.slow_seconds)
        except TimeoutError:
            gone = None
        if gone is not None:
            return

        async def replay() -> Message:
            return request.pop(0) if request else await receive()

        await self.app(scope, replay, send)


def _half_then_hang_up(send: Send) -> Send:
    """A `send` that passes the headers and half the promised body, then nothing more.

    The app then returns with its response incomplete, so the server closes the connection
    (uvicorn logs "ASGI callable returned without completing response": expected here).
    """
    room = 0
    cut = False

    async def cutting(message: MutableMapping[str, Any]) -> None:
        nonlocal room, cut
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers") or [])
            room = int(headers.get(b"content-length", b"0")) // 2
            await send(message)
            return
        if message["type"] != "http.response.body" or cut:
            return
        body = bytes(message.get("body", b""))
        if len(body) >= room:
            body, cut = body[:room], True
        room -= len(body)
        await send({"type": "http.response.body", "body": body, "more_body": True})

    return cutting


@contextlib.contextmanager
def running_emulator(workdir: Path) -> Iterator[DnastackEmulator]:
    emulator = DnastackEmulator(workdir)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
