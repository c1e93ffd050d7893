"""Errors on pages: an HTML page that says what happened and what to do, not problem+json.

A page asked for without a session goes to the sign-in page and comes back afterwards.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from imputehub.web.security_headers import is_page_path
from imputehub.web.templating import render

SIGN_IN_CODES = frozenset({"authentication_required", "not_signed_in", "session_expired"})
TITLES = {
    400: "This request cannot be answered",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not here",
    409: "Not now",
    413: "Too large",
    422: "Something is not right",
    429: "Too many tries",
    500: "Something went wrong on our side",
    502: "The service answered with an error",
    503: "Unavailable for a moment",
}


def sign_in_url(request: Request, *, expired: bool = False) -> str:
    """/login, coming back to this page (only to a path on this hub) afterwards."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    url = "/login?next=" + quote(target, safe="/")
    return url + "&expired=1" if expired else url


def page_answer(request: Request, problem: JSONResponse) -> Response | None:
    """problems.PageAnswer: pages get a page (or the sign-in page); the APIs keep theirs."""
    if not is_page_path(request.url.path):
        return None
    body = json.loads(bytes(problem.body))
    code = str(body.get("code", ""))
    if code in SIGN_IN_CODES and request.method in ("GET", "HEAD"):
        return RedirectResponse(
            sign_in_url(request, expired=code == "session_expired"), status_code=303
        )
    if code in SIGN_IN_CODES:
        return RedirectResponse("/login?expired=1", status_code=303)
    status = problem.status_code
    response = render(
        request,
        "error.html",
        {
            "status": status,
            "title": TITLES.get(status, "Something went wrong"),
            "detail": body.get("detail", ""),
            "code": code,
        },
        status_code=status,
    )
    retry_after = problem.headers.get("retry-after")
    if retry_after:
        response.headers["Retry-After"] = retry_after
    return response
