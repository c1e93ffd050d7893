"""The hub settings kept in the database: sign-up mode and domains, maintenance mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.domain.errors import InvalidInput
from imputehub.jobs import slots
from imputehub.operations import hub_settings, maintenance
from imputehub.operations.hub_settings import HeldOrRefused, SignupMode
from imputehub.registry import services
from imputehub.web import session_auth
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn, DetachedAdminSignedIn
from imputehub.web.settings_common import field, sentence

router = APIRouter(include_in_schema=False)

# The textarea of domains: MAX_DOMAINS names of at most 253 characters, with separators.
MAX_DOMAINS_TEXT = hub_settings.MAX_DOMAINS * 256
SIGNUP_SENTENCES = {
    SignupMode.CLOSED: "Closed: only admins create accounts.",
    SignupMode.APPROVAL: (
        "Approval: people ask for an account on the sign-in page; an admin approves or "
        "rejects each request."
    ),
    SignupMode.OPEN: (
        "Open: anyone with a verified e-mail address (at an allowed domain) gets an account."
    ),
}
NEW_JOB_SENTENCES = {
    HeldOrRefused.HOLD: "Hold: accept new jobs and keep them in the hub until maintenance ends.",
    HeldOrRefused.REFUSE: "Refuse: turn new jobs away with a message to try again later.",
}
LABELS = {
    "signup_mode": "Sign-up mode",
    "signup_domains": "Allowed e-mail domains",
    "maintenance": "Maintenance mode",
    "maintenance_message": "Maintenance message",
    "maintenance_new_jobs": "New jobs during maintenance",
}


def _form_values(settings: hub_settings.HubSettings) -> dict[str, Any]:
    return {
        "signup_mode": settings.signup_mode.value,
        "signup_domains": "\n".join(settings.signup_domains),
        "maintenance": settings.maintenance,
        "maintenance_message": settings.maintenance_message,
        "maintenance_new_jobs": settings.maintenance_new_jobs.value,
    }


async def _page(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    values: Mapping[str, Any],
    *,
    error: str = "",
    error_field: str = "",
    notice: str = "",
    status_code: int = 200,
) -> Response:
    found = await services.list_services(session, opened.user, include_all=True)
    return render_console(
        request,
        "console/settings.html",
        {
            "values": values,
            "error": error,
            "error_field": error_field,
            "notice": notice,
            "signup_sentences": [(mode.value, text) for mode, text in SIGNUP_SENTENCES.items()],
            "new_job_sentences": [(mode.value, text) for mode, text in NEW_JOB_SENTENCES.items()],
            "max_message": hub_settings.MAX_MESSAGE,
            "settings_slots": [(service, slots.limit_of(service)) for service in found],
        },
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/settings")
async def settings_page(request: Request, session: SessionDep, opened: AdminSignedIn) -> Response:
    current = await hub_settings.load(session)
    notice = "The hub settings were saved." if request.query_params.get("done") == "saved" else ""
    return await _page(request, session, opened, _form_values(current), notice=notice)


def changes_of(form: Mapping[str, str]) -> dict[str, Any]:
    """The form as changes to every setting (a checkbox left unticked is 'off')."""
    domains = form["signup_domains"]
    if len(domains) > MAX_DOMAINS_TEXT:
        raise InvalidInput("too many allowed domains", field="signup_domains")
    return {
        "signup_mode": form["signup_mode"],
        "signup_domains": domains,
        "maintenance": form["maintenance"] == "on",
        "maintenance_message": form["maintenance_message"],
        "maintenance_new_jobs": form["maintenance_new_jobs"],
    }


def message_of(exc: InvalidInput) -> tuple[str, str]:
    """(field, a sentence naming the field as the form does)."""
    name = str(exc.extra.get("field") or "")
    text = exc.message.removeprefix(f"{name}: ")
    if name in LABELS:
        if name in ("signup_mode", "maintenance_new_jobs") and "Input should be" in text:
            text = "choose one of the options"
        return name, sentence(f"{LABELS[name]}: {text}")
    return name, sentence(text)


@router.post("/console/settings")
async def save_settings(
    request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, now: Now
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    typed = {name: field(form, name) for name in LABELS}
    try:
        async with runtime.db.session() as session:
            await maintenance.change_settings(
                session, opened.user, changes_of(typed), origin=request_origin(request), now=now
            )
    except InvalidInput as exc:
        name, message = message_of(exc)
        shown = {
            **typed,
            "maintenance": typed["maintenance"] == "on",
            "maintenance_message": typed["maintenance_message"][: hub_settings.MAX_MESSAGE * 2],
        }
        async with runtime.db.session() as session:
            return await _page(
                request, session, opened, shown, error=message, error_field=name, status_code=422
            )
    runtime.wake_workers()  # committed: held jobs released by the end of maintenance go now
    return RedirectResponse("/console/settings?done=saved", status_code=303)
