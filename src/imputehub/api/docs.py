"""The API documentation page, /docs (Swagger UI), served without internet access.

FastAPI's own page loads its JavaScript, CSS and favicon from a public CDN, so on a hub
without internet access (a common place for genotype data) it stays blank. The same assets
ship, pinned, in the `fastapi-offline` package; the hub serves them itself from
/docs/assets/, and the page asks no other host for anything (no CDN, no validator badge).

There is no /redoc: ReDoc's bundle always loads its logo from the Redocly CDN, and /docs
already shows the whole API.

The OpenAPI description tells the truth about errors: see `document_problems`.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from imputehub.api import problems

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
# The package's static folder: swagger-ui-bundle.js, swagger-ui.css and favicon.png (and
# redoc.standalone.js, unused).
ASSETS_PACKAGE = ("fastapi_offline", "static")


def install(app: FastAPI) -> None:
    """Serve /docs and its assets (the app is made with docs_url=None, redoc_url=None), and
    describe every error as the problem+json the hub sends (`document_problems`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        assets = _root(request) + ASSETS_URL
        return get_swagger_ui_html(
            openapi_url=_root(request) + openapi_url,
            title=f"{app.title} - API documentation",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            # Bearer tokens only, no OAuth2 flow: no redirect page.
            oauth2_redirect_url=None,
            # The validator would send the schema's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )


def _root(request: Request) -> str:
    """The prefix a reverse proxy mounts the hub under (uvicorn --root-path), if any."""
    return str(request.scope.get("root_path", "")).rstrip("/")


# --- Errors in the OpenAPI description -------------------------------------------------
#
# Every error the hub answers is RFC 9457 problem+json (api/problems.py), but FastAPI
# documents only a 422 `application/json` body of its own shape, which the hub never sends.
# `document_problems` rewrites the description once, when it is first built: each operation
# lists the 4xx (and 5xx) it can answer, each as `application/problem+json` with the
# Problem schema below.

PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": (
            "An error (RFC 9457). `code` is stable and meant for programs; `detail` is for "
            "people. Some problems carry more members: `errors` (the invalid fields), "
            "`field`, `limit`, `retry_after`, `current`, `target`, `report`, `missing`."
        ),
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "examples": ["urn:imputehub:problem:not_found"]},
            "title": {"type": "string", "examples": ["Not Found"]},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "code": {"type": "string", "examples": ["not_found"]},
            "instance": {"type": "string", "description": "the request's path"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
        },
        "additionalProperties": True,
    },
    "FieldError": {
        "title": "FieldError",
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    },
}

# What each status means here; the operation's own description, if it has one, is kept.
_MEANING = {
    400: "the request body cannot be parsed",
    401: "no valid credentials: log in, or send 'Authorization: Bearer <token>'",
    403: "authenticated, but not allowed to do this",
    404: "no such thing, or not one the caller may see",
    409: "the request clashes with the current state (e.g. a job that cannot be cancelled)",
    410: "the thing existed but is no longer usable",
    413: "the request body, upload or quota is larger than allowed",
    422: "a value in the request breaks a rule (`errors` lists the fields)",
    429: "too many requests or a limit reached; try again after Retry-After seconds",
    502: "an imputation service misbehaved or refused",
    503: "object storage or an imputation service is unavailable, or the hub is in "
    "maintenance; try again later",
}
_RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer"}}
_WWW_AUTHENTICATE = {"description": "the scheme to use: Bearer", "schema": {"type": "string"}}
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_WRITES = frozenset({"post", "put", "patch", "delete"})
_API_PREFIX = "/api/"
# Routes without a declared security scheme that still check credentials of their own: a
# password (401 for a wrong one), a token in the query, a metrics token.
_OWN_CREDENTIALS = re.compile(r"/api/v1/auth/login|/api/v1/(jobs/[^/]+/)?events|/metrics")
# Routes that read or write object storage (503 storage_unavailable).
_STORAGE = re.compile(
    r"(post|delete) /api/v1/files(/\{file_id\})?|get /api/v1/files/\{file_id\}/content"
    r"|(put|post|delete) /api/v1/uploads/\{upload_id\}.*|(post|delete) /api/v1/jobs(/\{job_id\})?"
    r"|get /api/v1/links/.+"
)
# Routes that call an imputation service (502 service_error, 503 service_unavailable).
_SERVICE = re.compile(
    r"post /api/v1/services/\{ref\}/(health-check|sync-panels|credential/verify)"
    r"|put /api/v1/services/\{ref\}/credential|post /api/v1/jobs/\{job_id\}/cancel"
)

# Routes that create a job: refused (503 hub_in_maintenance) while admins hold the hub
# in maintenance and chose to refuse new jobs.
_NEW_JOBS = re.compile(r"post /api/v1/jobs(/check|/compatibility|/\{job_id\}/retry)?")
# Public account routes, with the answers of their own (sign-ups closed, a username taken,
# a used or expired link).
_ACCOUNT = {
    "post /api/v1/auth/signup": {403, 409},
    "post /api/v1/auth/verify-email": {410},
    "post /api/v1/auth/password-reset/confirm": {410},
}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer (beyond those it documents itself)."""
    has_input = bool(operation.get("parameters") or operation.get("requestBody"))
    secured = bool(operation.get("security"))
    found: set[int] = set()
    if path.startswith(_API_PREFIX):
        found.add(429)  # the rate limit (monitoring/middleware.py) covers every API route
    if has_input:
        found.add(422)
    if secured or _OWN_CREDENTIALS.fullmatch(path):
        found.add(401)
    if secured or path == "/metrics":
        found.add(403)  # roles (/metrics: a token that is not an admin's) and ownership
    if "{" in path or (secured and has_input):
        found.add(404)  # ids named in the path, the query or the body
    if method in _WRITES and (secured or path == "/api/v1/setup"):
        found.add(409)
    if operation.get("requestBody"):
        found.add(400)  # a body that cannot be parsed (not JSON, a broken form)
        found.add(413)  # api/body_limit.py, or an upload's size and the quota
    if path.startswith("/api/v1/uploads/{"):
        found.add(410)  # an expired upload
    key = f"{method} {path}"
    if _STORAGE.fullmatch(key):
        found.add(503)
    if _SERVICE.fullmatch(key):
        found |= {502, 503}
    if _NEW_JOBS.fullmatch(key):
        found.add(503)
    found |= _ACCOUNT.get(key, set())
    return found


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI description in place so that its errors are problem+json."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(PROBLEM_SCHEMAS)
    # FastAPI's own 422 shape, which the hub never sends (problems.py answers instead).
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    content = {problems.PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            statuses = error_statuses(method, path, operation) | {
                int(code) for code in responses if code.isdigit() and int(code) >= 400
            }
            for status in sorted(statuses):
                entry = responses.setdefault(str(status), {})
                if not entry.get("description") or entry["description"] == "Validation Error":
                    entry["description"] = _MEANING.get(status, HTTPStatus(status).phrase)
                entry["content"] = content
                if status == 429:
                    entry["headers"] = {"Retry-After": _RETRY_AFTER}
                elif status == 401:
                    entry["headers"] = {"WWW-Authenticate": _WWW_AUTHENTICATE}
    return schema
