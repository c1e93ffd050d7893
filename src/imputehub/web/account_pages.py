"""Getting and recovering an account in the browser, without an operator: sign up (as the
hub's sign-up mode allows), confirm an address, ask for and use a password-reset link; and
deleting your own account from the settings.

A mailed link opens a page with a button; only the button (a POST) uses the link, so a mail
scanner that follows links cannot spend it. Mails go after the answer (account_mail).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.accounts import deletion, life_cycle, password_reset, passwords
from imputehub.accounts.account_mail import mail_later
from imputehub.api.admin import request_origin
from imputehub.api.auth import throttle_policy
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.domain.errors import (
    Conflict,
    Gone,
    ImputehubError,
    InvalidInput,
    PermissionDenied,
    TooManyAttempts,
)
from imputehub.operations import hub_settings
from imputehub.runtime import Runtime
from imputehub.web import public_forms, session_auth
from imputehub.web.settings_common import password_refusal, sentence
from imputehub.web.signin import MaybeSignedIn

router = APIRouter(include_in_schema=False)

TokenQuery = Annotated[str, Query(max_length=200)]
SIGNUP, VERIFY, FORGOT, RESET = "signup", "verify", "forgot", "reset"
# Form field names (not secrets).
CONFIRM = "confirm_password"
DELETE_PASSWORD = "delete_password"  # noqa: S105


def _field_of(exc: ImputehubError, default: str) -> str:
    field = exc.extra.get("field")
    return field if isinstance(field, str) else default


# --- sign up -----------------------------------------------------------------------------


async def _signup_page(
    request: Request,
    runtime: Runtime,
    session: SessionDep,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    await session_auth.note_banner(request, session)
    settings = await hub_settings.load(session)
    context: dict[str, Any] = {
        "mode": settings.signup_mode.value,
        "domains": settings.signup_domains,
        "values": values or {},
        "errors": errors or {},
        "min_password": passwords.MIN_PASSWORD_LENGTH,
    }
    return public_forms.render_form(
        request, runtime, "account/signup.html", context, purpose=SIGNUP, status_code=status_code
    )


@router.get("/signup")
async def signup_form(
    request: Request, runtime: RuntimeDep, session: SessionDep, opened: MaybeSignedIn
) -> Response:
    if opened is not None:
        return RedirectResponse("/", status_code=303)
    return await _signup_page(request, runtime, session)


@router.post("/signup")
async def sign_up(
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
) -> Response:
    form = await public_forms.read_form(request, runtime, purpose=SIGNUP)
    if form is None:
        return await _signup_page(
            request,
            runtime,
            session,
            errors={"form": "The form had expired. It has been reloaded: please fill it in again."},
            status_code=403,
        )
    values = {name: public_forms.text(form, name).strip() for name in ("username", "email")}
    password = public_forms.text(form, "password")
    errors: dict[str, str] = {}
    if password != public_forms.text(form, CONFIRM):
        errors[CONFIRM] = "The two passwords differ: type the same one twice."
    if not errors:
        try:
            made = await life_cycle.sign_up(
                session,
                runtime.settings,
                username=values["username"],
                email=values["email"],
                password=password,
                origin=request_origin(request),
                now=now,
            )
        except PermissionDenied as exc:
            errors["form"] = sentence(exc.message)
        except (InvalidInput, Conflict) as exc:
            errors[_field_of(exc, "username")] = sentence(exc.message)
        else:
            mail_later(background, runtime.settings, made.mails)
            return RedirectResponse("/signup/sent", status_code=303)
    return await _signup_page(
        request, runtime, session, values=values, errors=errors, status_code=422
    )


@router.get("/signup/sent")
async def signup_sent(request: Request, session: SessionDep) -> Response:
    await session_auth.note_banner(request, session)
    return _message(
        request,
        "Check your inbox",
        "We sent you a link to confirm your e-mail address. It works once, within 24 hours. "
        "No mail after a few minutes? Look in the spam folder, or sign up again.",
    )


def _message(
    request: Request,
    title: str,
    text: str,
    *,
    link: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    from imputehub.web.templating import render

    return render(
        request,
        "account/message.html",
        {"title": title, "text": text, "link": link},
        status_code=status,
    )


def _dead_link(request: Request, exc: ImputehubError, then: tuple[str, str]) -> Response:
    """A mailed link that is unknown, used or expired: why, and what to do instead."""
    return _message(
        request, "This link does not work", sentence(exc.message), link=then, status=410
    )


# --- confirm an address ------------------------------------------------------------------


@router.get("/verify-email")
async def verify_form(
    request: Request, runtime: RuntimeDep, session: SessionDep, token: TokenQuery = ""
) -> Response:
    await session_auth.note_banner(request, session)
    return public_forms.render_form(
        request, runtime, "account/verify.html", {"token": token}, purpose=VERIFY
    )


@router.post("/verify-email")
async def verify(
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
) -> Response:
    await session_auth.note_banner(request, session)
    form = await public_forms.read_form(request, runtime, purpose=VERIFY)
    if form is None:
        return _message(
            request,
            "The page had expired",
            "Open the link from the mail again and press the button.",
            status=403,
        )
    try:
        done = await life_cycle.verify_email(
            session,
            runtime.settings,
            public_forms.text(form, "token"),
            origin=request_origin(request),
            now=now,
        )
    except (Gone, InvalidInput) as exc:
        return _dead_link(request, exc, ("/signup", "Sign up again"))
    mail_later(background, runtime.settings, done.mails)
    if done.value.signup_status is None:
        return _message(
            request,
            "Your address is confirmed",
            "Your account is ready.",
            link=("/login", "Sign in"),
        )
    return _message(
        request,
        "Your address is confirmed",
        "An admin of the hub will look at your request; you will get an e-mail when they "
        "have decided.",
    )


# --- a forgotten password ------------------------------------------------------------------


@router.get("/forgot-password")
async def forgot_form(request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    await session_auth.note_banner(request, session)
    return public_forms.render_form(
        request, runtime, "account/forgot.html", {"errors": {}}, purpose=FORGOT
    )


@router.post("/forgot-password")
async def forgot(
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
) -> Response:
    await session_auth.note_banner(request, session)
    form = await public_forms.read_form(request, runtime, purpose=FORGOT)
    address = "" if form is None else public_forms.text(form, "email").strip()
    if form is None or not address:
        problem = "Enter the e-mail address of your account." if form else "The form had expired."
        return public_forms.render_form(
            request,
            runtime,
            "account/forgot.html",
            {"errors": {"email": problem}},
            purpose=FORGOT,
            status_code=403 if form is None else 422,
        )
    asked = await life_cycle.ask_for_reset(
        session, runtime.settings, address, origin=request_origin(request), now=now
    )
    mail_later(background, runtime.settings, asked.mails)
    return _message(
        request, "Check your inbox", password_reset.ANSWER[0].upper() + password_reset.ANSWER[1:]
    )


async def _reset_page(
    request: Request,
    runtime: Runtime,
    token: str,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return public_forms.render_form(
        request,
        runtime,
        "account/reset.html",
        {"token": token, "errors": errors or {}, "min_password": passwords.MIN_PASSWORD_LENGTH},
        purpose=RESET,
        status_code=status_code,
    )


@router.get("/reset-password")
async def reset_form(
    request: Request, runtime: RuntimeDep, session: SessionDep, token: TokenQuery = ""
) -> Response:
    await session_auth.note_banner(request, session)
    return await _reset_page(request, runtime, token)


@router.post("/reset-password")
async def reset(request: Request, runtime: RuntimeDep, session: SessionDep, now: Now) -> Response:
    await session_auth.note_banner(request, session)
    form = await public_forms.read_form(request, runtime, purpose=RESET)
    if form is None:
        return _message(
            request,
            "The page had expired",
            "Open the link from the mail again.",
            link=("/forgot-password", "Ask for a new link"),
            status=403,
        )
    token = public_forms.text(form, "token")
    new = public_forms.text(form, "new_password")
    if new != public_forms.text(form, CONFIRM):
        return await _reset_page(
            request,
            runtime,
            token,
            errors={CONFIRM: "The two passwords differ: type the same one twice."},
            status_code=422,
        )
    try:
        await password_reset.reset_password(
            session, token, new, origin=request_origin(request), now=now
        )
    except (Gone, InvalidInput) as exc:
        if isinstance(exc, Gone) or exc.extra.get("field") == "token":
            return _dead_link(request, exc, ("/forgot-password", "Ask for a new link"))
        return await _reset_page(
            request, runtime, token, errors={"new_password": sentence(exc.message)}, status_code=422
        )
    return RedirectResponse("/login?notice=password_reset", status_code=303)


# --- delete your own account -------------------------------------------------------------


@router.post("/settings/account/delete")
async def delete_account(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    from imputehub.web.settings_pages import profile_page

    form = await session_auth.read_form(request, runtime, opened)
    password = public_forms.text(form, DELETE_PASSWORD)
    errors: dict[str, str] = {}
    if form.get("delete_confirm") != "yes":
        errors["delete_confirm"] = "Tick the box to confirm that everything should go."
    if not password:
        errors[DELETE_PASSWORD] = "Enter your password to confirm."
    status_code = 422
    if not errors:
        try:
            stopping = await deletion.request_deletion(
                runtime.db,
                session,
                opened.user,
                password=password,
                origin=request_origin(request),
                now=now,
                policy=throttle_policy(runtime),
            )
        except (TooManyAttempts, PermissionDenied, Conflict) as exc:
            refusal = password_refusal(exc)
            errors[DELETE_PASSWORD], status_code = refusal or (sentence(exc.message), 409)
    if errors:
        return profile_page(request, opened, errors=errors, status_code=status_code)
    await session.commit()
    if stopping:
        runtime.wake_workers()
    else:
        await deletion.finish(runtime, opened.user.id, now=now)
    response = RedirectResponse("/login?notice=account_deleted", status_code=303)
    session_auth.clear_cookie(runtime, request, response)
    return response
