"""The mails of the account life cycle: verify an address, set a new password, a sign-up
approved or rejected, a request for admins to look at.

They go out from the API process right after its answer (a background task), not through
the notification outbox: each is asked for by someone who is there to ask again, a link in
them must never sit in the database, and sending after the answer keeps "is there such an
account?" out of the answer's timing. A failed send is logged (never with the link).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlencode

from starlette.background import BackgroundTasks

from imputehub.accounts import account_links
from imputehub.accounts.account_links import Purpose
from imputehub.config import Settings
from imputehub.notify.email import Mailer

log = logging.getLogger(__name__)


def hub_url(settings: Settings) -> str:
    """Where links in mails point: PUBLIC_URL, else the address the hub listens on. Never
    the request's Host header, which a client chooses (and would point reset links at)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def link(settings: Settings, page: str, token: str) -> str:
    return f"{hub_url(settings)}{page}?{urlencode({'token': token})}"


def _message(
    settings: Settings,
    *,
    to: str,
    subject: str,
    paragraphs: Iterable[str],
    action: tuple[str, str] | None = None,
) -> EmailMessage:
    lines = list(paragraphs)
    text = [*lines]
    parts = [f"<p>{html.escape(line)}</p>" for line in lines]
    if action is not None:
        label, href = action
        text += [f"{label}: {href}"]
        parts.append(f'<p><a href="{html.escape(href, quote=True)}">{html.escape(label)}</a></p>')
    footer = "If you did not ask for this, you can ignore this mail."
    text += ["", "-- ", f"imputehub at {hub_url(settings)}. {footer}"]
    parts.append(f"<p><small>imputehub at {html.escape(hub_url(settings))}. {footer}</small></p>")
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    message.set_content("\n\n".join(text) + "\n")
    message.add_alternative(
        "<!doctype html><html><body>" + "".join(parts) + "</body></html>\n", subtype="html"
    )
    return message


def verify_email(settings: Settings, *, to: str, username: str, token: str) -> EmailMessage:
    lifetime = account_links.describe_lifetime(Purpose.VERIFY_EMAIL)
    return _message(
        settings,
        to=to,
        subject="Confirm your e-mail address for imputehub",
        paragraphs=[
            f"Someone, hopefully you, asked for the imputehub account {username} with this "
            "address.",
            f"Confirm the address within {lifetime} with the link below.",
        ],
        action=("Confirm my address", link(settings, "/verify-email", token)),
    )


def reset_password(
    settings: Settings, *, to: str, username: str, token: str, by_admin: bool
) -> EmailMessage:
    lifetime = account_links.describe_lifetime(Purpose.RESET_PASSWORD)
    why = (
        "An admin of the hub sent you this link"
        if by_admin
        else "Someone, hopefully you, asked to set a new password"
    )
    return _message(
        settings,
        to=to,
        subject="Set a new imputehub password",
        paragraphs=[
            f"{why} for the imputehub account {username}.",
            f"The link works once, within {lifetime}. Setting a new password signs the "
            "account out everywhere and ends its personal API tokens.",
        ],
        action=("Set a new password", link(settings, "/reset-password", token)),
    )


def signup_decided(settings: Settings, *, to: str, username: str, approved: bool) -> EmailMessage:
    if approved:
        return _message(
            settings,
            to=to,
            subject="Your imputehub account is ready",
            paragraphs=[f"An admin approved your account {username}. You can sign in now."],
            action=("Sign in", f"{hub_url(settings)}/login"),
        )
    return _message(
        settings,
        to=to,
        subject="Your imputehub sign-up was not approved",
        paragraphs=[
            f"An admin did not approve the account {username}. Ask the hub's admins if you "
            "think this is a mistake."
        ],
    )


def request_waiting(settings: Settings, *, to: str, username: str, email: str) -> EmailMessage:
    return _message(
        settings,
        to=to,
        subject=f"Sign-up request from {username}",
        paragraphs=[f"{username} ({email}) verified their address and asks for an account."],
        action=("Review sign-up requests", f"{hub_url(settings)}/console/users?state=pending"),
    )


async def send(settings: Settings, *messages: EmailMessage) -> None:
    """Send now (a background task's body); failures are logged, without the mail's text."""
    if not settings.smtp_host:
        log.warning(
            "no SMTP server is configured: an account mail was not sent",
            extra={"action": "account_mail_not_sent"},
        )
        return
    mailer = Mailer(settings)
    for message in messages:
        result = await mailer.send(message)
        if result.error is not None:
            log.warning(
                "could not send an account mail: %s",
                result.error,
                extra={"action": "account_mail_failed", "subject": str(message["Subject"])},
            )


def mail_later(
    background: BackgroundTasks, settings: Settings, mails: tuple[EmailMessage, ...]
) -> None:
    """Send `mails` once the answer is out (and the transaction that made them committed)."""
    if mails:
        background.add_task(send, settings, *mails)
