"""E-mail: the message for an event (plain text and HTML) and sending it over SMTP.

Connection security follows `smtp_security`: "starttls" (upgrade required: a server that
does not offer STARTTLS gets nothing), "tls" (TLS from the first byte, usually port 465) or
"none" (closed networks only). With `smtp_username` the hub logs in; the password is never
logged nor put in an error message.
"""

from __future__ import annotations

import html
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from imputehub.config import Settings
from imputehub.domain.notifications import EventKind, describe


@dataclass(frozen=True, kw_only=True)
class SendResult:
    error: str | None  # None: the server accepted the message
    status_code: int | None = None  # the SMTP reply code of a refusal, when there was one


def results_link(public_url: str | None, job_id: str) -> str | None:
    if not public_url or not job_id:
        return None
    return f"{public_url.rstrip('/')}/api/v1/jobs/{job_id}/results"


def compose(
    kind: EventKind,
    payload: dict[str, Any],
    *,
    to: str,
    sender: str,
    public_url: str | None,
) -> EmailMessage:
    """The message: subject and text from the event, with the job's error or results link."""
    title, summary = describe(kind, payload)
    job_id = str(payload.get("job_id") or "")
    lines: list[tuple[str, str]] = []  # (label, value); values escaped in HTML below
    if job_id:
        lines.append(("Job", str(payload.get("job_name") or job_id)))
        lines.append(("Job id", job_id))
    if payload.get("status"):
        lines.append(("Status", str(payload["status"])))
    error = payload.get("error_message")
    if error:
        lines.append(("Error", str(error)))
    link = None
    if kind in (EventKind.RESULTS_READY, EventKind.JOB_COMPLETED):
        link = results_link(public_url, job_id)

    text = [title, ""]
    if summary:
        text += [summary, ""]
    text += [f"{label}: {value}" for label, value in lines]
    if link:
        text += ["", f"Results: {link}"]
    elif kind is EventKind.RESULTS_READY and job_id:
        text += ["", f"Download them with: imputehub jobs download {job_id}"]
    text += ["", "-- ", "imputehub. Change which e-mails you get in your notification preferences."]

    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in lines
    )
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if summary:
        parts.append(f"<p>{html.escape(summary)}</p>")
    if rows:
        parts.append(f"<table>{rows}</table>")
    if link:
        href = html.escape(link, quote=True)
        parts.append(f'<p><a href="{href}">Download the results</a></p>')
    elif kind is EventKind.RESULTS_READY and job_id:
        command = html.escape(f"imputehub jobs download {job_id}")
        parts.append(f"<p>Download them with <code>{command}</code></p>")
    parts.append(
        "<p><small>imputehub. Change which e-mails you get in your notification "
        "preferences.</small></p>"
    )

    message = EmailMessage()
    message["Subject"] = title.replace("\r", " ").replace("\n", " ")
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content("\n".join(text) + "\n")
    message.add_alternative(
        "<!doctype html><html><body>" + "".join(parts) + "</body></html>\n", subtype="html"
    )
    return message


class Mailer:
    """Sends messages with the hub's SMTP settings.

    `tls_context` replaces the system's trust store (a private CA, or a test's own cert).
    """

    def __init__(self, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls_context = tls_context

    async def send(self, message: EmailMessage) -> SendResult:
        """Hand the message to the server; never raises."""
        s = self._settings
        if not s.smtp_host:
            return SendResult(error="no SMTP server is configured")
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",  # False: never upgrade
                username=s.smtp_username or None,
                password=password if s.smtp_username else None,
                timeout=s.smtp_timeout_seconds,
                tls_context=self._tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if not exc.recipients:
                return SendResult(error="the SMTP server refused the recipient")
            refused = exc.recipients[0]
            reason = f"{refused.code} {refused.message}"[:400]
            return SendResult(
                error=f"the SMTP server refused the recipient: {reason}",
                status_code=refused.code,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # The server's own words; they never echo our password.
            return SendResult(
                error=f"the SMTP server refused: {exc.code} {exc.message}"[:500],
                status_code=exc.code,
            )
        except aiosmtplib.SMTPTimeoutError:
            return SendResult(
                error=f"the SMTP server did not answer within {s.smtp_timeout_seconds:g} s"
            )
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return SendResult(error=f"could not send through the SMTP server: {type(exc).__name__}")
        return SendResult(error=None)
