"""A health check by one GET of a JSON endpoint: the shape the HTTP connectors share.

Unreachable, an HTTP error or an answer that is not a JSON object means unhealthy (with
why); a maintenance signal — a status code or a flag in the body — means maintenance; any
other JSON object means healthy. The response time is measured around the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from imputehub.connectors.base import Health, HealthStatus
from imputehub.connectors.http import ask
from imputehub.domain.errors import TransientServiceError

MAINTENANCE_MESSAGE = "the service is in maintenance"


async def probe_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    detail: Callable[[httpx.Response], str],
    maintenance_status: int | None = None,
    in_maintenance: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Health:
    """GET `url` with `client` (the service's pooled health client) and judge the service's
    health by the answer; `what` names the document."""
    started = time.monotonic()
    try:
        response = await ask(client, "GET", url)
    except httpx.HTTPError as exc:
        return Health(
            status=HealthStatus.UNHEALTHY,
            message=f"could not reach the service: {type(exc).__name__}",
        )
    except TransientServiceError as exc:  # an answer beyond the hub's limit
        return Health(status=HealthStatus.UNHEALTHY, message=exc.message)
    elapsed = round((time.monotonic() - started) * 1000.0, 1)

    def health(status: HealthStatus, message: str | None = None) -> Health:
        return Health(status=status, response_time_ms=elapsed, message=message)

    if maintenance_status is not None and response.status_code == maintenance_status:
        return health(HealthStatus.MAINTENANCE, MAINTENANCE_MESSAGE)
    if response.status_code != 200:
        return health(
            HealthStatus.UNHEALTHY, f"HTTP {response.status_code}: {detail(response)[:200]}"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return health(HealthStatus.UNHEALTHY, f"the service sent a malformed {what}")
    if in_maintenance is not None and in_maintenance(body):
        return health(HealthStatus.MAINTENANCE, MAINTENANCE_MESSAGE)
    return health(HealthStatus.HEALTHY)
