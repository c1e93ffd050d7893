"""ASGI middleware: request ids and one access line per request, and rate limits.

Plain ASGI (not BaseHTTPMiddleware) so streaming responses (downloads, server-sent
events) pass through untouched and the request id's context variable reaches the route.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imputehub.api.problems import PROBLEM_JSON
from imputehub.logs import request_id_var
from imputehub.monitoring import client_address, ratelimit
from imputehub.runtime import Runtime

logger = logging.getLogger("imputehub.api")

# An incoming X-Request-ID is kept only when it is short and plain (it is logged and echoed).
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Password checks and the account routes anyone may call (sign-up, reset, verification):
# the API's and the pages', counted together per client address across processes.
LOGIN_PATHS = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/signup",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/auth/delete-account",
        "/login",
        "/signup",
        "/verify-email",
        "/forgot-password",
        "/reset-password",
        "/settings/account/delete",
    }
)
# Bulk transfer, bounded by sizes and quotas rather than by request counts: a fast link
# sends far more than one upload part a second, and a service fetching inputs by signed link
# may use many range requests. Counting them would throttle the hub's main job.
_BULK = re.compile(r"^(/app)?/api/v1/(uploads/[^/]+/part/\d+|links/.*)$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestContext:
    """Give each request an id (a sane incoming X-Request-ID, else a new one), return it
    in X-Request-ID, and log one access line per request: method, path, status, duration
    and request id (`GET /api/v1/jobs 200 12.3ms request_id=...`, action `http_request`).

    The line is written when the response has ended, not when it starts: for a download or
    an event stream the duration then covers the whole transfer (a slow download is a slow
    request), so an event stream's line appears when its client leaves. A request that fails
    before it answers is still logged, with 500 (the answer the error handler gives); the
    status is the one sent at the start of the response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_ID.match(incoming) else secrets.token_hex(16)
        token = request_id_var.set(request_id)
        started = time.monotonic()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log_access(scope, status, time.monotonic() - started, request_id)
            request_id_var.reset(token)


def _log_access(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    method = str(scope.get("method", ""))
    path = _log_path(str(scope.get("path", "")))
    duration_ms = round(seconds * 1000, 1)
    logger.info(
        "%s %s %d %.1fms request_id=%s",
        method,
        path,
        status,
        duration_ms,
        request_id,
        extra={
            "action": "http_request",
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
        },
    )


# Characters a path keeps as they are in a log line; anything else (spaces, newlines, other
# control characters, non-ASCII) is percent-encoded, so one request stays one line and
# one space-separated field.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _log_path(path: str) -> str:
    """The request's path as logged: never its query string (`scope["path"]` has none, and
    a query may hold `access_token=`), and percent-encoded so it cannot forge a line."""
    return quote(path, safe=_PATH_SAFE)


class RateLimit:
    """429 with Retry-After once a client exceeds its limit (see monitoring/ratelimit.py).

    Login attempts count per client address in the database; other /api/ calls per working
    bearer token, else per address, in this process. The address is the client's as the
    trusted proxies saw it (monitoring/client_address.py).
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.trusted = runtime.settings.trusted_proxy_networks
        self.login = ratelimit.parse(runtime.settings.rate_limit_login)
        self.api = ratelimit.ApiLimiter(ratelimit.parse(runtime.settings.rate_limit_api))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        limited = path.startswith(("/api/", "/app/api/")) or path in LOGIN_PATHS
        if scope["type"] != "http" or not limited:
            await self.app(scope, receive, send)
            return
        address = client_address.of_scope(scope, self.trusted)
        now = self.runtime.clock.now()
        decision: ratelimit.Decision | None = None
        if scope["path"] in LOGIN_PATHS and scope.get("method") == "POST" and self.login.enabled:
            async with self.runtime.db.session() as session:
                decision = await ratelimit.hit_shared(session, "login", self.login, address, now)
        elif self.api.limit.enabled and not _BULK.match(scope["path"]):
            authorization = _header(scope, b"authorization")
            decision = self.api.hit(authorization, address, now)
            if decision.allowed:
                send = self._learning(send, authorization)
        if decision is not None and not decision.allowed:
            logger.warning(
                "rate limit exceeded",
                extra={"action": "rate_limited", "path": scope["path"], "client_ip": address},
            )
            await _too_many(scope, send, decision.retry_after)
            return
        await self.app(scope, receive, send)

    def _learning(self, send: Send, authorization: str | None) -> Send:
        """`send`, telling the limiter whether the request's bearer was accepted."""

        async def learn(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.api.answered(authorization, int(message["status"]))
            await send(message)

        return learn


async def _too_many(scope: Scope, send: Send, retry_after: int) -> None:
    body: dict[str, Any] = {
        "type": "urn:imputehub:problem:rate_limited",
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"too many requests; try again in {retry_after} seconds",
        "code": "rate_limited",
        "instance": scope.get("path", ""),
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
