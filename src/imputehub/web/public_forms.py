"""Forms for visitors without a session (sign-up, forgotten password, the mailed links'
pages): their CSRF token is bound to a short pre-session cookie (double submit, HMAC under
the secret key, one purpose per form), as the sign-in form's is (web/signin.py)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.templating import render

COOKIE = "imputehub_form"
FIELD = "form_token"
MAX_FIELD = 1024


def _token(runtime: Runtime, nonce: str, purpose: str) -> str:
    message = f"public-form:{purpose}:{nonce}".encode()
    return hmac.new(runtime.secret_key.encode(), message, hashlib.sha256).hexdigest()


def render_form(
    request: Request,
    runtime: Runtime,
    name: str,
    context: Mapping[str, Any],
    *,
    purpose: str,
    status_code: int = 200,
) -> Response:
    """A page with a visitor's form: a fresh nonce cookie and the token bound to it."""
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        name,
        {**context, "form_token": _token(runtime, nonce, purpose), "form_field": FIELD},
        status_code=status_code,
    )
    response.set_cookie(
        COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=session_auth.is_secure(runtime, request),
        path="/",
        max_age=3600,
    )
    # The mailed links carry their token in the address: it must not leave for another
    # site in a Referer. (Not "no-referrer": Chromium then sends `Origin: null` with the
    # form's POST, which check_origin rightly refuses.)
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def read_form(request: Request, runtime: Runtime, *, purpose: str) -> FormData | None:
    """The posted form, or None when its token is missing or not this browser's (the page
    then shows the form again, fresh)."""
    session_auth.check_origin(request, runtime)
    form = await request.form(max_files=0, max_fields=10, max_part_size=8 * MAX_FIELD)
    nonce = request.cookies.get(COOKIE, "")
    presented = form.get(FIELD)
    if not nonce or not isinstance(presented, str):
        return None
    if not hmac.compare_digest(presented, _token(runtime, nonce, purpose)):
        return None
    return form


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:MAX_FIELD] if isinstance(value, str) else ""
