"""Sign in and sign out: the session cookie's beginning and end.

The sign-in form has no session yet, so its CSRF token is bound to a short pre-session
cookie instead (double submit, HMAC under the secret key): another site cannot sign a
visitor in to an account of its own choosing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.accounts import browser_sessions, self_service
from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.auth import throttle_policy
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.domain.errors import (
    AuthenticationRequired,
    ImputehubError,
    PermissionDenied,
    TooManyAttempts,
)
from imputehub.operations.hub_settings import SignupMode
from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)

PRE_SESSION_COOKIE = "imputehub_signin"
MAX_FIELD = 1024


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this hub only (never //other.host or a URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ch in target for ch in "\r\n\t") or target.startswith("/login"):
        return "/"
    return target


def _form_token(runtime: Runtime, nonce: str) -> str:
    return hmac.new(
        runtime.secret_key.encode(), f"signin:{nonce}".encode(), hashlib.sha256
    ).hexdigest()


async def optional_session(
    request: Request, runtime: RuntimeDep, session: SessionDep, now: Now
) -> OpenSession | None:
    try:
        return await session_auth.current_session(request, runtime, session, now)
    except AuthenticationRequired:
        return None


MaybeSignedIn = Annotated[OpenSession | None, Depends(optional_session)]


def _sign_in_page(
    request: Request,
    runtime: Runtime,
    *,
    next_path: str,
    username: str = "",
    error: str = "",
    notice: str = "",
    status_code: int = 200,
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        "signin.html",
        {
            "next": next_path,
            "username": username,
            "error": error,
            "notice": notice,
            "signin_token": _form_token(runtime, nonce),
            "signup_open": _signup_open(request),
        },
        status_code=status_code,
    )
    response.set_cookie(
        PRE_SESSION_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=session_auth.is_secure(runtime, request),
        path="/login",
        max_age=3600,
    )
    return response


def _signup_open(request: Request) -> bool:
    hub = getattr(request.state, "hub_settings", None)
    return hub is not None and hub.signup_mode is not SignupMode.CLOSED


NOTICES = {
    "signed_out": "You have signed out.",
    "expired": "Your session ended after a while without activity. Sign in again to go on.",
    "password_changed": "Your password was changed. Sign in with the new one.",
    "password_reset": "Your new password is set. Sign in with it.",
    "account_deleted": "Your account is closed; its jobs, files and results are being deleted.",
}


@router.get("/login")
async def sign_in_form(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: MaybeSignedIn,
    next_: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    expired: Annotated[str | None, Query(max_length=10)] = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    if opened is not None:
        return RedirectResponse(safe_next(next_), status_code=303)
    await session_auth.note_banner(request, session)
    shown = NOTICES.get(notice or "", "")
    if expired and not shown:
        shown = NOTICES["expired"]
    return _sign_in_page(request, runtime, next_path=safe_next(next_), notice=shown)


@router.post("/login")
async def sign_in(request: Request, runtime: RuntimeDep, session: SessionDep, now: Now) -> Response:
    session_auth.check_origin(request, runtime)
    await session_auth.note_banner(request, session)
    form = await request.form(max_files=0, max_fields=10, max_part_size=8 * MAX_FIELD)
    username = str(form.get("username") or "").strip()[:MAX_FIELD]
    password = str(form.get("password") or "")[:MAX_FIELD]
    next_path = safe_next(str(form.get("next") or ""))
    nonce = request.cookies.get(PRE_SESSION_COOKIE, "")
    presented = str(form.get("signin_token") or "")
    if not nonce or not hmac.compare_digest(presented, _form_token(runtime, nonce)):
        return _sign_in_page(
            request,
            runtime,
            next_path=next_path,
            username=username,
            error="The sign-in form had expired. It has been reloaded: please sign in again.",
            status_code=403,
        )
    if not username or not password:
        return _sign_in_page(
            request,
            runtime,
            next_path=next_path,
            username=username,
            error="Enter your username (or e-mail address) and your password.",
            status_code=422,
        )
    try:
        user = await self_service.log_in(
            runtime.db,
            username=username,
            password=password,
            origin=request_origin(request),
            now=now,
            policy=throttle_policy(runtime),
        )
    except TooManyAttempts as exc:
        wait = int(exc.extra.get("retry_after") or 1)
        response = _sign_in_page(
            request,
            runtime,
            next_path=next_path,
            username=username,
            error=(
                f"Too many failed attempts. Wait {wait} seconds, then try again; "
                'if you have forgotten your password, use "Forgotten your password?" below.'
            ),
            status_code=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    except PermissionDenied as exc:
        # The right password for an account not open yet (its address or an admin's
        # approval awaited): say which.
        return _sign_in_page(
            request,
            runtime,
            next_path=next_path,
            username=username,
            error=exc.message[0].upper() + exc.message[1:] + ".",
            status_code=403,
        )
    except ImputehubError:
        return _sign_in_page(
            request,
            runtime,
            next_path=next_path,
            username=username,
            error=(
                "Wrong username or password. Check both (the password is case-sensitive); "
                'if you have forgotten it, use "Forgotten your password?" below.'
            ),
            status_code=401,
        )
    cookie, _ = await browser_sessions.start(
        session, user, now=now, lifetime=session_auth.lifetime(runtime)
    )
    response = RedirectResponse(next_path, status_code=303)
    session_auth.set_cookie(runtime, request, response, cookie)
    response.delete_cookie(PRE_SESSION_COOKIE, path="/login")
    return response


@router.post("/logout")
async def sign_out(
    request: Request, runtime: RuntimeDep, session: SessionDep, opened: session_auth.SignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    await browser_sessions.end(session, session_auth.read_cookie(runtime, request))
    response = RedirectResponse("/login?notice=signed_out", status_code=303)
    session_auth.clear_cookie(runtime, request, response)
    return response
