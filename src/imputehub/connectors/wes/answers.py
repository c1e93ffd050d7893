"""How the connector reads a WES server's answers: JSON, or the typed error they mean.

401/403 -> CredentialRejected; 404 for a run -> JobLost; 5xx, 429 and network errors ->
transient; any other 4xx -> permanent with the server's own `msg`.
"""

from __future__ import annotations

from typing import Any

import httpx

from imputehub.connectors.retry_after import retry_after
from imputehub.domain.errors import (
    CredentialRejected,
    JobLost,
    PermanentServiceError,
    TransientServiceError,
)


def message_of(response: httpx.Response) -> str:
    """The server's message: WES `{"msg": ...}` (or `detail`/`message`), else the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("msg", "message", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:500]
    text = response.text.strip()
    return text[:500] if text else f"HTTP {response.status_code}"


def check(response: httpx.Response, *, run: str | None = None) -> None:
    """Raise the typed error an unsuccessful answer means; `run` names the run asked about."""
    status = response.status_code
    if status < 400:
        return
    message = message_of(response)
    if status in (401, 403):
        raise CredentialRejected(f"the WES service refused the credential: {message}")
    if status >= 500 or status == 429:
        raise TransientServiceError(
            f"the WES service answered HTTP {status}", retry_after=retry_after(response)
        )
    if status == 404 and run is not None:
        raise JobLost(f"the WES service has no run {run} any more")
    raise PermanentServiceError(f"the WES service refused the request: {message}")


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientServiceError(
            f"the WES service sent a malformed answer (HTTP {response.status_code})"
        ) from exc
    if not isinstance(body, dict):
        raise TransientServiceError("the WES service sent an answer of an unexpected shape")
    return body
