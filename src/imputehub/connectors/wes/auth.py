"""How the connector authenticates to a WES server, chosen by `api_config["auth"]`.

- "none": no header (many WES servers are open on a private network);
- "bearer": `Authorization: Bearer <credential>` (a static token);
- "oauth2": the client-credentials grant at `api_config["token_url"]` with
  `api_config["client_id"]` and the credential as client secret (plus optional `scope`,
  `audience`, `resource`), the access token cached until shortly before it expires.
Without "auth", it is "oauth2" when a token_url is set, else "bearer" when a credential is
set, else "none".
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from imputehub.connectors.clients import ClientPool
from imputehub.connectors.http import ask
from imputehub.domain.errors import CredentialRejected, PermanentServiceError, TransientServiceError

# Renew a cached token this long before the server says it expires.
EXPIRY_MARGIN_SECONDS = 60.0
DEFAULT_TOKEN_SECONDS = 300.0
TOKEN_TIMEOUT = httpx.Timeout(30.0, connect=15.0)


def scheme(api_config: dict[str, Any], credential: str | None) -> str:
    chosen = api_config.get("auth")
    if chosen is None:
        if api_config.get("token_url"):
            return "oauth2"
        return "bearer" if credential else "none"
    if chosen not in ("none", "bearer", "oauth2"):
        raise PermanentServiceError(f"unknown WES auth scheme {chosen!r} in the service settings")
    return str(chosen)


@dataclass
class TokenCache:
    """OAuth2 access tokens by (token URL, client id, secret digest); process-wide. Asked
    for with the pool's client for the token URL's origin."""

    clients: ClientPool
    _tokens: dict[tuple[str, str, str], tuple[str, float]] = field(default_factory=dict)

    async def headers(self, api_config: dict[str, Any], credential: str | None) -> dict[str, str]:
        chosen = scheme(api_config, credential)
        if chosen == "none":
            return {}
        if not credential:
            raise CredentialRejected("no credential is set for this service")
        if chosen == "bearer":
            return {"Authorization": f"Bearer {credential}"}
        return {"Authorization": f"Bearer {await self._token(api_config, credential)}"}

    def forget(self, api_config: dict[str, Any], credential: str | None) -> None:
        """Drop a token the server rejected, so the next call asks for a new one."""
        if credential and api_config.get("token_url"):
            self._tokens.pop(self._key(api_config, credential), None)

    @staticmethod
    def _key(api_config: dict[str, Any], secret: str) -> tuple[str, str, str]:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return (str(api_config.get("token_url")), str(api_config.get("client_id")), digest)

    async def _token(self, api_config: dict[str, Any], secret: str) -> str:
        token_url = api_config.get("token_url")
        client_id = api_config.get("client_id")
        if not token_url or not client_id:
            raise PermanentServiceError("OAuth2 needs token_url and client_id in the settings")
        key = self._key(api_config, secret)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        form = {"grant_type": "client_credentials"}
        for name in ("scope", "audience", "resource"):
            if api_config.get(name):
                form[name] = str(api_config[name])
        async with self.clients.endpoint(
            str(token_url), timeout=TOKEN_TIMEOUT, label="the token endpoint"
        ) as client:
            try:
                response = await ask(
                    client,
                    "POST",
                    str(token_url),
                    service="the token endpoint",
                    data=form,
                    auth=(str(client_id), secret),
                )
            except httpx.TransportError as exc:
                raise TransientServiceError(f"could not reach the token endpoint: {exc}") from exc
        if response.status_code in (400, 401, 403):
            raise CredentialRejected(
                f"the token endpoint refused the client credentials (HTTP {response.status_code})"
            )
        if response.status_code >= 300:
            raise TransientServiceError(f"the token endpoint answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientServiceError("the token endpoint sent a malformed answer") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TransientServiceError("the token endpoint sent no access_token")
        try:
            lifetime = float(body.get("expires_in", DEFAULT_TOKEN_SECONDS))
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_SECONDS
        expires = time.monotonic() + max(lifetime - EXPIRY_MARGIN_SECONDS, 0.0)
        self._tokens[key] = (token, expires)
        return token
