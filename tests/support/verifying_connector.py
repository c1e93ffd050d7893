"""A fake service behind our Connector Protocol that can verify credentials.

It knows a set of tokens, each with an expiry (or none); any other token is refused. It
remembers every credential it was asked about, so tests can check the hub decrypted the
right one. `PlainConnector` is the same service without `verify_credential`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from imputehub.connectors.base import (
    CredentialCheck,
    Health,
    HealthStatus,
    PanelInfo,
    ServiceInfo,
)
from imputehub.domain.errors import CredentialRejected, ImputehubError


@dataclass
class PlainConnector:
    """Healthy, no panels, and no way to verify a credential."""

    async def check_health(self, service: ServiceInfo) -> Health:
        return Health(status=HealthStatus.HEALTHY, response_time_ms=5.0)

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        return []


@dataclass
class VerifyingConnector(PlainConnector):
    # token -> its expiry (None: never expires)
    tokens: dict[str, datetime | None] = field(default_factory=dict)
    # "check": refused tokens come back as CredentialCheck(valid=False);
    # "raise": as CredentialRejected, as a connector does on a 401.
    refuse_by: str = "check"
    # raised instead of answering, when set
    error: ImputehubError | None = None
    # echo the token back in messages (a careless service), to test redaction
    echo: bool = False
    seen: list[str] = field(default_factory=list)

    async def verify_credential(self, service: ServiceInfo, credential: str) -> CredentialCheck:
        self.seen.append(credential)
        if self.error is not None:
            raise self.error
        suffix = f" ({credential})" if self.echo else ""
        if credential not in self.tokens:
            message = f"the service rejected the token{suffix}"
            if self.refuse_by == "raise":
                raise CredentialRejected(message)
            return CredentialCheck(valid=False, message=message)
        return CredentialCheck(
            valid=True, message=f"token accepted{suffix}", expires_at=self.tokens[credential]
        )
