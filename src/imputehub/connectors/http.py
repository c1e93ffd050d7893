"""The HTTP client connectors talk to services with: network failures come out typed.

A timeout or a connection that could not be made or broke off is worth retrying, so it
leaves as TransientServiceError, saying which service and how long the hub waited; no httpx
exception leaves a connector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from imputehub.domain.errors import TransientServiceError


@asynccontextmanager
async def transient_client(
    timeouts: httpx.Timeout, *, service: str = "the service", **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient (options as httpx's) whose network failures are transient errors."""
    try:
        async with httpx.AsyncClient(timeout=timeouts, **options) as client:
            yield client
    except httpx.TimeoutException as exc:
        limit = timeouts.connect if isinstance(exc, httpx.ConnectTimeout) else timeouts.read
        waited = f" after {limit:g} s" if limit is not None else ""
        raise TransientServiceError(
            f"{service} did not answer in time ({type(exc).__name__}{waited})"
        ) from exc
    except httpx.TransportError as exc:
        raise TransientServiceError(
            f"could not reach {service}: {type(exc).__name__} {exc}".strip()
        ) from exc
