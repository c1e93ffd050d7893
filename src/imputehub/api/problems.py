"""The one place errors become HTTP: RFC 9457 problem+json with a stable `code`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from imputehub.domain import errors

log = logging.getLogger("imputehub.api")

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[errors.ImputehubError], int], ...] = (
    (errors.TooManyAttempts, 429),
    (errors.AuthenticationRequired, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.Gone, 410),
    (errors.InvalidTransition, 409),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.LimitExceeded, 429),
    (errors.InvalidInput, 422),
    (errors.TransientServiceError, 503),
    (errors.StorageUnavailable, 503),
    (errors.HubInMaintenance, 503),
    (errors.ServiceError, 502),
)

# Keys of error.extra that are safe and useful to show to clients.
_PUBLIC_EXTRA = {
    "field",
    "current",
    "target",
    "limit",
    "retry_after",
    "errors",
    "targets",
    "report",
    "missing",
}


def status_for(error: errors.ImputehubError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400


def problem(
    status: int,
    *,
    code: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:imputehub:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _imputehub_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ImputehubError)
    status = status_for(exc)
    extra = {k: v for k, v in exc.extra.items() if k in _PUBLIC_EXTRA}
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = exc.extra.get("retry_after")
    if retry_after is None and isinstance(exc, errors.TransientServiceError):
        retry_after = exc.retry_after
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return problem(
        status,
        code=exc.code,
        detail=exc.message,
        instance=request.url.path,
        headers=headers or None,
        **extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ()) if part != "body"),
            "message": err.get("msg", "invalid"),
        }
        for err in exc.errors()
    ]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return problem(
        422,
        code="invalid_input",
        detail=f"the request is not valid: {summary}",
        instance=request.url.path,
        errors=details,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(
        exc.status_code,
        code=code,
        detail=detail,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value it was given: a data exception (SQLSTATE class 22),
    such as a NUL character in a text (PostgreSQL stores none) or a number out of range.
    Every such value came from the request, so it is the client's error (422), not ours;
    the statement and the value stay out of the answer."""
    assert isinstance(exc, DataError)
    log.info(
        "the database refused a value",
        extra={"action": "data_refused", "reason": type(exc.orig).__name__},
    )
    return problem(
        422,
        code="invalid_input",
        detail=(
            "a value in the request cannot be stored "
            "(e.g. a NUL character in a text, or a number out of range)"
        ),
        instance=request.url.path,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error", extra={"action": "unhandled_error", "incident": incident})
    return problem(
        500,
        code="internal_error",
        detail=f"an unexpected error occurred (incident {incident}); it has been logged",
        instance=request.url.path,
    )


# Given a request and the problem answer made for it, another answer (the web pages answer
# their own requests with an HTML page or a redirect to sign in), or None to keep it.
PageAnswer = Callable[[Request, JSONResponse], Response | None]
Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _answered(handler: Handler, pages: PageAnswer | None) -> Handler:
    async def handle(request: Request, exc: Exception) -> Any:
        answer = await handler(request, exc)
        if pages is not None and (page := pages(request, answer)) is not None:
            return page
        return answer

    return handle


def install(app: FastAPI, *, pages: PageAnswer | None = None) -> None:
    """Every error becomes a problem+json answer, or for a page, what `pages` makes of it."""
    for error, handler in (
        (errors.ImputehubError, _imputehub_error),
        (RequestValidationError, _validation_error),
        (StarletteHTTPException, _http_error),
        (DataError, _data_error),
        (Exception, _unexpected_error),
    ):
        app.add_exception_handler(error, _answered(handler, pages))
