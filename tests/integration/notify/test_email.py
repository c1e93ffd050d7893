"""E-mails reach a real SMTP server (aiosmtpd on loopback): to the user's address, from the
hub's sender, with plain-text and HTML bodies naming the job, its status, its error or a
link to its results; over STARTTLS with a login when configured, never leaking the password."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from imputehub.config import Settings
from imputehub.domain.notifications import EventKind
from imputehub.notify import email
from tests.support.smtp_server import client_context, smtp_server

JOB = "6f1c2d4e-0000-4000-8000-000000000001"


def payload(**fields: object) -> dict[str, object]:
    return {
        "job_id": JOB,
        "job_name": "chr20 <b>cohort</b> & co",
        "status": "completed",
        "progress": 100,
        "service_id": "svc",
        "message": "",
        "error_message": None,
        "files": 3,
    } | fields


def smtp_settings(settings: Settings, port: int, **more: object) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_from": "hub@imputehub.example.org",
            **more,
        }
    )


def message_for(kind: EventKind, settings: Settings, **fields: object) -> email.EmailMessage:
    return email.compose(
        kind,
        payload(**fields),
        to="dana@example.org",
        sender=settings.smtp_from,
        public_url=settings.public_url,
    )


async def test_results_ready_arrives_with_both_bodies_and_the_link(settings: Settings) -> None:
    with smtp_server() as server:
        s = smtp_settings(settings, server.port, public_url="https://hub.example.org/")
        result = await email.Mailer(s).send(message_for(EventKind.RESULTS_READY, s))
        [mail] = await server.wait_for(1)

    assert result.error is None
    assert mail.rcpt_tos == ["dana@example.org"]
    assert mail.mail_from == "hub@imputehub.example.org"
    assert mail.message["Subject"] == "Results of job 'chr20 <b>cohort</b> & co' are ready"
    link = f"https://hub.example.org/api/v1/jobs/{JOB}/results"
    text, html = mail.body("plain"), mail.body("html")
    assert link in text
    assert "3 result files ready to download." in text
    assert "chr20 <b>cohort</b> & co" in text
    assert f'href="{link}"' in html
    # The job's name is the user's text: escaped in HTML, never markup.
    assert "chr20 &lt;b&gt;cohort&lt;/b&gt; &amp; co" in html
    assert "<b>cohort</b>" not in html


async def test_a_failure_mail_carries_the_error_and_no_link(settings: Settings) -> None:
    with smtp_server() as server:
        s = smtp_settings(settings, server.port, public_url="https://hub.example.org")
        failed = message_for(
            EventKind.JOB_FAILED,
            s,
            status="failed",
            error_message="Chromosome 23 is <not> supported",
        )
        result = await email.Mailer(s).send(failed)
        [mail] = await server.wait_for(1)

    assert result.error is None
    assert mail.message["Subject"] == "Job 'chr20 <b>cohort</b> & co' failed"
    assert "Error: Chromosome 23 is <not> supported" in mail.body("plain")
    assert "Status: failed" in mail.body("plain")
    assert "Chromosome 23 is &lt;not&gt; supported" in mail.body("html")
    assert "/results" not in mail.body("plain") + mail.body("html")


async def test_without_a_public_url_the_mail_says_how_to_download(settings: Settings) -> None:
    with smtp_server() as server:
        s = smtp_settings(settings, server.port)
        await email.Mailer(s).send(message_for(EventKind.RESULTS_READY, s))
        [mail] = await server.wait_for(1)

    assert f"imputehub jobs download {JOB}" in mail.body("plain")
    assert "http" not in mail.body("plain")


async def test_starttls_and_login_deliver_encrypted(settings: Settings, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    with smtp_server(tls_dir=tls, users={"hub-mailer": "s3cret-smtp-pass"}) as server:
        s = smtp_settings(
            settings,
            server.port,
            smtp_security="starttls",
            smtp_username="hub-mailer",
            smtp_password=SecretStr("s3cret-smtp-pass"),
        )
        mailer = email.Mailer(s, tls_context=client_context(tls))
        result = await mailer.send(message_for(EventKind.JOB_COMPLETED, s))
        [mail] = await server.wait_for(1)

    assert result.error is None
    assert mail.tls is True
    assert mail.login == "hub-mailer"
    assert mail.rcpt_tos == ["dana@example.org"]


async def test_a_wrong_password_is_refused_without_showing_it(
    settings: Settings, tmp_path: Path
) -> None:
    tls = tmp_path / "tls"
    with smtp_server(tls_dir=tls, users={"hub-mailer": "right-password"}) as server:
        s = smtp_settings(
            settings,
            server.port,
            smtp_security="starttls",
            smtp_username="hub-mailer",
            smtp_password=SecretStr("wrong-password-xyz"),
        )
        result = await email.Mailer(s, tls_context=client_context(tls)).send(
            message_for(EventKind.JOB_COMPLETED, s)
        )
        arrived = server.messages()

    assert result.error is not None
    assert "refused" in result.error
    assert result.status_code == 535
    assert "wrong-password-xyz" not in result.error
    assert arrived == []


async def test_an_untrusted_certificate_gets_nothing(settings: Settings, tmp_path: Path) -> None:
    # The system trust store does not know the test's self-signed certificate.
    with smtp_server(tls_dir=tmp_path / "tls") as server:
        s = smtp_settings(settings, server.port, smtp_security="starttls")
        result = await email.Mailer(s).send(message_for(EventKind.JOB_COMPLETED, s))
        arrived = server.messages()

    assert result.error is not None
    assert arrived == []


async def test_starttls_required_but_not_offered_sends_nothing_in_clear(
    settings: Settings,
) -> None:
    with smtp_server() as server:  # a plain server: no STARTTLS
        s = smtp_settings(
            settings,
            server.port,
            smtp_security="starttls",
            smtp_username="hub-mailer",
            smtp_password=SecretStr("never-in-clear"),
        )
        result = await email.Mailer(s).send(message_for(EventKind.JOB_COMPLETED, s))
        arrived = server.messages()

    assert result.error is not None
    assert "never-in-clear" not in result.error
    assert arrived == []


async def test_an_unreachable_server_is_an_error_not_an_exception(settings: Settings) -> None:
    with smtp_server() as server:
        port = server.port  # stopped when the block ends: nothing listens there any more
    s = smtp_settings(settings, port, smtp_timeout_seconds=5.0)

    result = await email.Mailer(s).send(message_for(EventKind.JOB_COMPLETED, s))

    assert result.error is not None
    assert "SMTP" in result.error
