"""The HTTP `Retry-After` header as seconds, shared by the HTTP connectors."""

from __future__ import annotations

import httpx


def retry_after(response: httpx.Response, default: float | None = None) -> float | None:
    """Seconds the server asks us to wait (delta-seconds form), else `default`."""
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return default
