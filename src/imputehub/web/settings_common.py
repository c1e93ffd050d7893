"""What the settings pages share: their sub-navigation, notices, labels, form reading and
the page frame. The pages: web/settings_pages.py (profile, password, tokens),
settings_credentials.py, settings_notify.py (preferences, webhooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.domain.errors import ImputehubError, PermissionDenied, TooManyAttempts
from imputehub.domain.notifications import Channel, EventKind
from imputehub.web import session_auth
from imputehub.web.templating import render

SECTIONS = (
    ("/settings", "Profile and password"),
    ("/settings/tokens", "API tokens"),
    ("/settings/credentials", "Service credentials"),
    ("/settings/notifications", "Notification preferences"),
    ("/settings/webhooks", "Webhooks"),
)
# What a redirect after a change says; only these texts, never one taken from the URL.
NOTICES = {
    "email": "Your e-mail address was saved.",
    "password": (
        "Your password was changed. Every other browser and every API token you had were "
        "signed out; this browser stays signed in with a new session."
    ),
    "token_revoked": "The token was revoked: it opens nothing any more.",
    "credential_set": "Your credential was saved.",
    "credential_deleted": "Your credential was deleted.",
    "credential_verified": "The service was asked; its answer is shown below.",
    "preferences": "Your notification preferences were saved.",
    "webhook_deleted": "The webhook was deleted.",
}
KIND_LABELS = {
    EventKind.JOB_QUEUED: "Job queued",
    EventKind.JOB_RUNNING: "Job running",
    EventKind.JOB_COMPLETED: "Job completed",
    EventKind.JOB_FAILED: "Job failed",
    EventKind.JOB_CANCELLED: "Job cancelled",
    EventKind.RESULTS_READY: "Results ready",
    EventKind.CREDENTIAL_EXPIRING: "Credential expiring",
}
CHANNEL_LABELS = {
    Channel.IN_APP: "In the app",
    Channel.EMAIL: "E-mail",
    Channel.WEBHOOK: "Webhooks",
}
NoticeQuery = Annotated[str | None, Query(alias="done", max_length=40)]


Detached = session_auth.DetachedSignedIn


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def too_long(value: str, limit: int, what: str) -> str | None:
    return f"{what} must be at most {limit} characters." if len(value) > limit else None


def sentence(message: str) -> str:
    """A use case's message as a sentence on the page."""
    text = message.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def page(
    request: Request,
    opened: OpenSession,
    name: str,
    context: Mapping[str, Any],
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        f"settings/{name}.html",
        {"sections": SECTIONS, "notice": NOTICES.get(notice or "", ""), **context},
        opened=opened,
        status_code=status_code,
    )


def redirect_done(path: str, notice: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"{path}?done={notice}{anchor}", status_code=303)


def error_of(exc: ImputehubError, fields: Mapping[str, str], fallback: str) -> tuple[str, str]:
    """(the form field the error belongs to, its message): a use case's `field` names the
    API's field, `fields` maps it to the page's."""
    named = str(exc.extra.get("field") or "")
    return fields.get(named, fallback), sentence(exc.message)


def password_refusal(exc: ImputehubError) -> tuple[str, int] | None:
    """What a form says when the password it was given was refused (a password change,
    deleting the account), and its status; None for any other error."""
    if isinstance(exc, TooManyAttempts):
        wait = int(exc.extra.get("retry_after") or 1)
        return f"Too many wrong passwords. Wait {wait} seconds, then try again.", 429
    if isinstance(exc, PermissionDenied):
        return "The password is wrong. Check it (it is case-sensitive) and try again.", 403
    return None
