"""A real SMTP server for tests (aiosmtpd on a free loopback port), keeping what arrives.

Plain, or with STARTTLS (required) and a login, using a self-signed certificate made here
with `cryptography`; `client_context()` is the matching trust store for the hub's mailer.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.peers import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None  # the user name the client logged in with, if it did
    tls: bool  # whether the session was encrypted when the mail was sent

    def body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, f"no text/{subtype} part"
        content = part.get_content()  # type: ignore[attr-defined]
        assert isinstance(content, str)
        return content


class _Handler:
    def __init__(self, box: SmtpServer) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.box.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.auth_data else None
        self.box._arrived(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                login=login,
                tls=session.ssl is not None,
            )
        )
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse  # recipients answered "550 no such mailbox"
        self.host = "127.0.0.1"
        self.port = port
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def _arrived(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[Received]:
        """The first `count` messages, once they arrived (the server runs in a thread)."""
        for _ in range(int(within / 0.01)):
            if len(self.messages()) >= count:
                return self.messages()
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.messages())} e-mails arrived, expected {count}")


@contextmanager
def smtp_server(
    *,
    tls_dir: Path | None = None,
    users: dict[str, str] | None = None,
    refuse: frozenset[str] = frozenset(),
) -> Iterator[SmtpServer]:
    """An SMTP server; with `tls_dir` it requires STARTTLS (certificate written there) and,
    with `users`, a login by one of them."""
    box = SmtpServer(free_port(), refuse)
    kwargs: dict[str, Any] = {}
    if tls_dir is not None:
        cert, key = self_signed(tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs |= {"tls_context": context, "require_starttls": True}
    if users is not None:

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and users.get(data.login.decode()) == data.password.decode()
            )
            return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

        kwargs |= {"authenticator": authenticator, "auth_required": True}
    controller = Controller(_Handler(box), hostname=box.host, port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imputehub test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_context(tls_dir: Path) -> ssl.SSLContext:
    """A client context trusting only the test server's certificate."""
    return ssl.create_default_context(cafile=str(tls_dir / "smtp-cert.pem"))
