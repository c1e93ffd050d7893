"""How the connector reads a Michigan server's HTTP answers: JSON or a typed error."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from imputehub.connectors.retry_after import retry_after
from imputehub.domain.errors import (
    CredentialRejected,
    JobLost,
    PermanentServiceError,
    ServiceBusy,
    ServiceInMaintenance,
    TransientServiceError,
)

# A wait the server gives no hint for: a busy per-user job slot. (How long a job waits for
# the end of a maintenance is the worker's choice: one health-check interval.)
JOB_LIMIT_RETRY_SECONDS = 300.0
_JOB_LIMIT = re.compile(r"Only (\d+) jobs per user", re.IGNORECASE)


def in_maintenance(server: Mapping[str, Any]) -> bool:
    """Whether `GET /api/v2/server` says maintenance (the misspelling is the servers' own)."""
    return bool(server.get("maintenace") or server.get("maintenance"))


def maintenance(retry_after: float | None = None) -> ServiceInMaintenance:
    """The error for a server in maintenance, whether it said so before or after an upload."""
    return ServiceInMaintenance(
        "the service is in maintenance; waiting for it to come back", retry_after=retry_after
    )


def job_limit(message: str, retry_after: float | None = None) -> ServiceBusy:
    """The error for an account at its job limit; `message` is the server's words."""
    said = _JOB_LIMIT.search(message)
    return ServiceBusy(
        f"the service is busy with this account's other jobs ({message}); waiting",
        retry_after=JOB_LIMIT_RETRY_SECONDS if retry_after is None else retry_after,
        limit=int(said.group(1)) if said else None,
    )


def message_of(response: httpx.Response) -> str:
    """The server's own message: `{"message": ...}` when JSON, else the plain-text body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = response.text.strip()
    return text[:500] if text else f"HTTP {response.status_code}"


def check(response: httpx.Response, *, job: str | None = None) -> None:
    """Raise the typed error an unsuccessful answer means; `job` names the job asked about."""
    status = response.status_code
    if status < 400:
        return
    message = message_of(response)
    if status == 401:
        raise CredentialRejected(
            "the service rejected the API token (invalid or expired): create a new token "
            "in the service's web interface"
        )
    if status == 403:
        raise CredentialRejected(f"the service refused this API token access: {message}")
    if status == 503:
        raise maintenance(retry_after(response, None))
    if status == 400 and _JOB_LIMIT.search(message):
        raise job_limit(message, retry_after(response, None))
    if status >= 500 or status == 429:
        raise TransientServiceError(
            f"the service answered HTTP {status}", retry_after=retry_after(response, None)
        )
    if status == 404 and job is not None:
        raise JobLost(f"the service has no job {job} any more")
    raise PermanentServiceError(f"the service refused the request: {message}")


def json_of(response: httpx.Response) -> Any:
    """The JSON body of a successful answer; a malformed one is worth another try."""
    try:
        return response.json()
    except ValueError as exc:
        raise TransientServiceError(
            f"the service sent a malformed answer (HTTP {response.status_code})"
        ) from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_of(response)
    if not isinstance(body, dict):
        raise TransientServiceError("the service sent an answer of an unexpected shape")
    return body
