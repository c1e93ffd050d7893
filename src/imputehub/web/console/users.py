"""Users: search, create, role, deactivate, approve sign-up requests, send a password reset, see
their jobs.

Each form calls the use case the REST API calls (accounts.administration, accounts.life_cycle),
so the rules (an admin cannot demote or deactivate themselves) and audit entries are the
same. The mails a use case returns go out after the answer, once its transaction committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import administration, life_cycle, passwords, user_console, users
from imputehub.accounts.account_mail import mail_later
from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.api.problems import status_for
from imputehub.domain.errors import ImputehubError
from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn
from imputehub.web.settings_common import NoticeQuery, error_of, field, redirect_done, too_long

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
JOBS_PAGE_SIZE = 20
MAX_PAGE = 10**6
MAX_QUERY = 100
MAX_USERNAME = 64
MAX_EMAIL = users.MAX_EMAIL_LENGTH
# The create form's fields, named apart from the search box's and the header's.
CREATE_FIELDS = {"username": "new_username", "email": "new_email", "role": "new_role"}
# What a redirect after a change says; only these texts, never one taken from the URL.
NOTICES = {
    "created": "The account was created. Its owner can sign in with the password you chose.",
    "role": "The role was changed.",
    "activated": "The account was activated: its owner can sign in again.",
    "deactivated": (
        "The account was deactivated: its owner cannot sign in, and their sessions and "
        "tokens stopped working."
    ),
    "reset_sent": "A mail with a link to set a new password is on its way to the user.",
    "approved": "The sign-up request was approved; the user was told by e-mail.",
    "rejected": "The sign-up request was rejected and the account removed; the requester was "
    "told by e-mail.",
}
STATES = tuple(state.value for state in users.AccountState)
PageQuery = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _state(text: str | None) -> users.AccountState | None:
    """The state filter; anything else (the "any state" choice) is no filter."""
    return users.AccountState(text) if text in STATES else None


async def list_page(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    *,
    q: str = "",
    state: users.AccountState | None = None,
    page: int = 1,
    notice: str | None = None,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    found = await users.search_users(
        session, opened.user, q=q, state=state, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    pages = max(1, -(-found.total // PAGE_SIZE))
    return render_console(
        request,
        "console/users/list.html",
        {
            "found": found,
            "users_q": q,
            "users_state": state.value if state else "",
            "users_states": STATES,
            "users_page": page,
            "users_pages": pages,
            "state_of": user_console.state_of,
            "roles": [role.value for role in users.Role],
            "form": form or {},
            "errors": errors or {},
            "min_password": passwords.MIN_PASSWORD_LENGTH,
            "notice": NOTICES.get(notice or "", ""),
            "error": error,
        },
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/users")
async def users_list(
    request: Request,
    session: SessionDep,
    opened: AdminSignedIn,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
    state: Annotated[str | None, Query(max_length=20)] = None,
    # The mail telling admins about a request links with ?status=pending.
    status: Annotated[str | None, Query(max_length=20)] = None,
    page: PageQuery = 1,
    done: NoticeQuery = None,
) -> Response:
    return await list_page(
        request,
        session,
        opened,
        q=q,
        state=_state(state if state is not None else status),
        page=page,
        notice=done,
    )


@router.post("/console/users")
async def create_user(
    request: Request, runtime: RuntimeDep, session: SessionDep, opened: AdminSignedIn, now: Now
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    username = field(form, "new_username").strip()
    email = field(form, "new_email").strip()
    role = field(form, "new_role")
    password = field(form, "new_password")
    errors: dict[str, str] = {}
    if not username:
        errors["new_username"] = "Enter a username."
    elif problem := too_long(username, MAX_USERNAME, "The username"):
        errors["new_username"] = problem
    if problem := too_long(email, MAX_EMAIL, "The e-mail address"):
        errors["new_email"] = problem
    if not password:
        errors["new_password"] = "Enter a password for the account."  # noqa: S105 - a message
    status_code = 422
    user = None
    if not errors:
        try:
            user = await administration.create_account(
                session,
                opened.user,
                username=username,
                password=password,
                email=email or None,
                role=role,
                origin=request_origin(request),
                now=now,
            )
        except ImputehubError as exc:
            fields = {**CREATE_FIELDS, "password": "new_password"}
            key, message = error_of(exc, fields, "new_username")
            errors[key] = message
            status_code = status_for(exc)
    if user is None:
        # What was typed comes back (bounded), never the password.
        typed = {"new_username": username[:200], "new_email": email[:300], "new_role": role[:20]}
        return await list_page(
            request, session, opened, form=typed, errors=errors, status_code=status_code
        )
    return redirect_done(f"/console/users/{user.id}", "created")


async def user_page(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    user_id: str,
    *,
    jobs_page: int = 1,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    jobs = await user_console.user_jobs(
        session,
        opened.user,
        user_id[:100],
        limit=JOBS_PAGE_SIZE,
        offset=(jobs_page - 1) * JOBS_PAGE_SIZE,
    )
    return render_console(
        request,
        "console/users/detail.html",
        {
            "account": jobs.user,
            "account_state": user_console.state_of(jobs.user),
            "is_self": jobs.user.id == opened.user.id,
            "jobs": jobs,
            "jobs_page": jobs_page,
            "jobs_pages": max(1, -(-jobs.total // JOBS_PAGE_SIZE)),
            "roles": [role.value for role in users.Role],
            "notice": NOTICES.get(notice or "", ""),
            "error": error,
        },
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/users/{user_id}")
async def user_detail(
    user_id: str,
    request: Request,
    session: SessionDep,
    opened: AdminSignedIn,
    jobs_page: PageQuery = 1,
    done: NoticeQuery = None,
) -> Response:
    return await user_page(request, session, opened, user_id, jobs_page=jobs_page, notice=done)


async def _update(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    user_id: str,
    *,
    now: datetime,
    notice: str,
    role: str | None = None,
    is_active: bool | None = None,
) -> Response:
    sent = frozenset(
        name for name, value in (("role", role), ("is_active", is_active)) if value is not None
    )
    try:
        await administration.update_account(
            session,
            opened.user,
            user_id[:100],
            now=now,
            origin=request_origin(request),
            fields_set=sent,
            role=role,
            is_active=is_active,
        )
    except ImputehubError as exc:
        if status_for(exc) == 404:
            raise
        return await user_page(
            request,
            session,
            opened,
            user_id,
            error=error_of(exc, {}, "")[1],
            status_code=status_for(exc),
        )
    return redirect_done(f"/console/users/{user_id}", notice)


@router.post("/console/users/{user_id}/role")
async def change_role(
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    role = field(form, "role")[:20]
    return await _update(request, session, opened, user_id, now=now, notice="role", role=role)


@router.post("/console/users/{user_id}/active")
async def set_active(
    user_id: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    active = field(form, "active")
    if active not in ("true", "false"):
        return await user_page(
            request,
            session,
            opened,
            user_id,
            error="Choose whether the account is active: send the form as the page does.",
            status_code=422,
        )
    is_active = active == "true"
    notice = "activated" if is_active else "deactivated"
    return await _update(
        request, session, opened, user_id, now=now, notice=notice, is_active=is_active
    )


@router.post("/console/users/{user_id}/password-reset")
async def send_password_reset(
    user_id: str,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    try:
        done = await life_cycle.send_reset(
            session,
            runtime.settings,
            opened.user,
            user_id[:100],
            origin=request_origin(request),
            now=now,
        )
    except ImputehubError as exc:
        if status_for(exc) == 404:
            raise
        return await user_page(
            request,
            session,
            opened,
            user_id,
            error=error_of(exc, {}, "")[1],
            status_code=status_for(exc),
        )
    mail_later(background, runtime.settings, done.mails)
    return redirect_done(f"/console/users/{user_id}", "reset_sent")


async def _decide(
    request: Request,
    background: BackgroundTasks,
    runtime: Runtime,
    session: AsyncSession,
    opened: OpenSession,
    user_id: str,
    *,
    now: datetime,
    approve: bool,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    decide = life_cycle.approve if approve else life_cycle.reject
    try:
        done = await decide(
            session,
            runtime.settings,
            opened.user,
            user_id[:100],
            origin=request_origin(request),
            now=now,
        )
    except ImputehubError as exc:
        if status_for(exc) == 404:
            raise
        return await list_page(
            request,
            session,
            opened,
            state=users.AccountState.PENDING,
            error=error_of(exc, {}, "")[1],
            status_code=status_for(exc),
        )
    mail_later(background, runtime.settings, done.mails)
    # Back to the requests still waiting, where the admin was.
    notice = "approved" if approve else "rejected"
    return RedirectResponse(f"/console/users?state=pending&done={notice}", status_code=303)


@router.post("/console/users/{user_id}/approve")
async def approve_signup(
    user_id: str,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    return await _decide(
        request, background, runtime, session, opened, user_id, now=now, approve=True
    )


@router.post("/console/users/{user_id}/reject")
async def reject_signup(
    user_id: str,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    return await _decide(
        request, background, runtime, session, opened, user_id, now=now, approve=False
    )
