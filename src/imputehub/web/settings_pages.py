"""Settings: profile and password, and personal API tokens; the router of every settings
page (service credentials: settings_credentials.py; notification preferences and webhooks:
settings_notify.py) and of the in-app notifications (notification_pages.py).

Each page calls the same use cases as the REST API (accounts.self_service,
registry.user_credentials, notify.inbox, notify.webhooks), so rules and audit entries are
written once. A form with a mistake comes back with the message next to its field and what
was typed (never a secret); a change that worked redirects (post/redirect/get) to the page
with a notice. Secrets made here (a token, a webhook's signing secret) are shown once, in
the answer to the form that made them.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import api_tokens, browser_sessions, passwords, self_service
from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.auth import throttle_policy
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.api.problems import status_for
from imputehub.domain.errors import (
    ImputehubError,
    InvalidInput,
    PermissionDenied,
    TooManyAttempts,
)
from imputehub.runtime import Runtime
from imputehub.web import notification_pages, session_auth, settings_credentials, settings_notify
from imputehub.web.settings_common import (
    NoticeQuery,
    error_of,
    field,
    page,
    password_refusal,
    redirect_done,
    sentence,
    too_long,
)

router = APIRouter(include_in_schema=False)
for module in (notification_pages, settings_credentials, settings_notify):
    router.include_router(module.router)

MAX_PASSWORD = passwords.MAX_PASSWORD_LENGTH
MAX_TOKEN_NAME = 100
DEFAULT_TOKEN_DAYS = 90
# The password form's fields.
CURRENT, NEW, CONFIRM = "current_password", "new_password", "confirm_password"


# --- profile and password --------------------------------------------------------------


def profile_page(
    request: Request,
    opened: OpenSession,
    *,
    notice: str | None = None,
    email: str | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        opened,
        "profile",
        {
            "email": (opened.user.email or "") if email is None else email,
            "errors": errors or {},
            "min_password": passwords.MIN_PASSWORD_LENGTH,
        },
        notice=notice,
        status_code=status_code,
    )


@router.get("/settings")
async def profile(
    request: Request, opened: session_auth.SignedIn, done: NoticeQuery = None
) -> Response:
    return profile_page(request, opened, notice=done)


@router.post("/settings/email")
async def change_email(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    email = field(form, "email").strip()
    problem = too_long(email, 254, "The e-mail address")
    if problem is None:
        try:
            await self_service.change_email(
                session, opened.user, email=email, origin=request_origin(request), now=now
            )
        except InvalidInput as exc:
            problem = sentence(exc.message)
    if problem is not None:
        return profile_page(
            request, opened, email=email[:300], errors={"email": problem}, status_code=422
        )
    return redirect_done("/settings", "email")


@router.post("/settings/password")
async def change_password(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    current = field(form, CURRENT)
    new = field(form, NEW)
    confirm = field(form, CONFIRM)
    errors: dict[str, str] = {}
    if not current:
        errors[CURRENT] = "Enter your current password."
    if not new:
        errors[NEW] = "Enter a new password."
    else:
        try:
            passwords.check_password_rules(new)
        except InvalidInput as exc:
            errors[NEW] = sentence(exc.message.replace("password", "the new password"))
    if new and confirm != new:
        errors[CONFIRM] = "The two new passwords differ: type the same one twice."
    if too_long(current, MAX_PASSWORD, "The password"):
        errors[CURRENT] = "The current password is wrong."
    status_code = 422
    if not errors:
        try:
            await self_service.change_password(
                runtime.db,
                session,
                opened.user,
                current_password=current,
                new_password=new,
                origin=request_origin(request),
                now=now,
                policy=throttle_policy(runtime),
            )
        except (TooManyAttempts, PermissionDenied) as exc:
            errors[CURRENT], status_code = password_refusal(exc) or (sentence(exc.message), 403)
        except InvalidInput as exc:
            errors[NEW] = sentence(exc.message)
    if errors:
        return profile_page(request, opened, errors=errors, status_code=status_code)
    # The change ended every session, this one too; this browser goes on in a new one.
    cookie, _ = await browser_sessions.start(
        session, opened.user, now=now, lifetime=session_auth.lifetime(runtime)
    )
    response = redirect_done("/settings", "password")
    session_auth.set_cookie(runtime, request, response, cookie)
    return response


# --- personal API tokens ---------------------------------------------------------------


async def tokens_page(
    request: Request,
    runtime: Runtime,
    session: AsyncSession,
    opened: OpenSession,
    *,
    notice: str | None = None,
    created: api_tokens.NewToken | None = None,
    name: str = "",
    days: str = str(DEFAULT_TOKEN_DAYS),
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        opened,
        "tokens",
        {
            "tokens": await api_tokens.list_tokens(session, opened.user),
            "created": created,
            "name": name,
            "days": days,
            "max_days": api_tokens.MAX_TOKEN_DAYS,
            "max_name": MAX_TOKEN_NAME,
            "errors": errors or {},
            "now": runtime.clock.now(),
            "api_base": (runtime.settings.public_url or str(request.base_url)).rstrip("/"),
        },
        notice=notice,
        status_code=status_code,
    )


@router.get("/settings/tokens")
async def tokens(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    done: NoticeQuery = None,
) -> Response:
    return await tokens_page(request, runtime, session, opened, notice=done)


def parse_days(text: str) -> tuple[int | None, str | None]:
    """The expiry in days from the form ('' = never); or the message saying what is wrong."""
    text = text.strip()
    if not text:
        return None, None
    if not text.isdigit() or not 1 <= int(text) <= api_tokens.MAX_TOKEN_DAYS:
        return None, (
            f"Enter a whole number of days from 1 to {api_tokens.MAX_TOKEN_DAYS}, "
            "or leave it empty for a token that does not expire."
        )
    return int(text), None


@router.post("/settings/tokens")
async def create_token(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    name = field(form, "name").strip()
    days_text = field(form, "expires_in_days")[:20]
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the token a name, e.g. the machine or script that will use it."
    elif problem := too_long(name, MAX_TOKEN_NAME, "The name"):
        errors["name"] = problem
    days, problem = parse_days(days_text)
    if problem:
        errors["expires_in_days"] = problem
    status_code = 422
    created = None
    if not errors:
        try:
            created = await self_service.create_token(
                session,
                opened.user,
                name=name,
                expires_in_days=days,
                max_tokens=runtime.settings.max_api_tokens_per_user,
                origin=request_origin(request),
                now=now,
            )
        except ImputehubError as exc:
            key, message = error_of(exc, {"expires_in_days": "expires_in_days"}, "name")
            errors[key] = message
            status_code = status_for(exc)
    if created is None:
        return await tokens_page(
            request,
            runtime,
            session,
            opened,
            name=name[: MAX_TOKEN_NAME * 2],
            days=days_text,
            errors=errors,
            status_code=status_code,
        )
    return await tokens_page(request, runtime, session, opened, created=created)


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke_token(
    token_id: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    # Another user's token is "not found" (an HTML 404), as in the API.
    await self_service.revoke_token(
        session, opened.user, token_id[:100], origin=request_origin(request), now=now
    )
    return redirect_done("/settings/tokens", "token_revoked")
