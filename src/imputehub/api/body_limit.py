"""A size limit on every request body the hub would buffer, checked before it is buffered.

JSON and form bodies (login and setup included) are read whole by FastAPI before a route
runs, so without a limit one request of 400 MiB costs 400 MiB and more of the server's
memory. This middleware answers 413 problem+json:
- at once, without reading a byte, when `Content-Length` says the body is too large;
- as soon as the bytes received pass the limit, for a body sent without a length (chunked).

The routes that stream a body to storage keep their own limits (the upload size, the
quota): a direct file upload, an upload part, and a job created as a multipart form with
its files. Plain ASGI, so nothing else about the request changes.
"""

from __future__ import annotations

import re

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imputehub.api.problems import problem

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# (method, path) of the routes that stream their bodies; the last only as multipart.
_STREAMED = (
    ("POST", re.compile(r"/api/v1/files")),
    ("PUT", re.compile(r"/api/v1/uploads/[^/]+/part/[^/]+")),
)
_MULTIPART_JOBS = re.compile(r"/api/v1/jobs")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _streamed(scope: Scope) -> bool:
    method, path = scope["method"], scope["path"]
    if any(method == m and pattern.fullmatch(path) for m, pattern in _STREAMED):
        return True
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return (
        method == "POST"
        and _MULTIPART_JOBS.fullmatch(path) is not None
        and content_type == "multipart/form-data"
    )


def _too_large(limit: int) -> str:
    return (
        f"a request body here is at most {limit} bytes (IMPUTEHUB_MAX_REQUEST_BODY_BYTES); "
        "files go through the upload routes"
    )


class BodyLimit:
    """Refuse request bodies over `max_bytes` on every route that buffers its body."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS or _streamed(scope):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _header(scope, b"content-length") or ""
        # (Digits only, compared by length first: any number of them may arrive.)
        if declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
            response = problem(
                413,
                code="payload_too_large",
                detail=_too_large(limit),
                instance=scope["path"],
                limit=limit,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised where the body is read: FastAPI passes it on, and the problem
                    # handlers answer 413 like any other.
                    raise HTTPException(413, detail=_too_large(limit))
            return message

        await self.app(scope, counted, send)
