"""How connectors read services' answers: network failures come out typed, answers bounded.

A timeout or a connection that could not be made or broke off is worth retrying, so it
leaves as TransientServiceError, saying which service and how long the hub waited; no httpx
exception leaves a connector. The clients themselves are pooled (`clients.py`), whose
leases apply `translated`.

Every answer a connector parses is read through `ask` (or `read_answer` for a stream it
opened): at most ANSWER_LIMIT bytes, then a clear error instead of a memory spike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from imputehub.domain.errors import TransientServiceError


@contextmanager
def translated(timeouts: httpx.Timeout, *, service: str = "the service") -> Iterator[None]:
    """Network failures of the requests inside as TransientServiceError (see the module's
    doc); `timeouts` are the client's, named in the message."""
    try:
        yield
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


# How much of a service's answer the hub reads: services are untrusted, and an answer read
# whole could take the process's memory (a 1.5 GiB /service-info once did).
ANSWER_LIMIT = 8 * 1024 * 1024  # a JSON answer of an API call
ERROR_ANSWER_LIMIT = 64 * 1024  # an error answer: only its status and first words matter


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit // 1024} KiB"


async def read_answer(
    response: httpx.Response, *, service: str = "the service", limit: int | None = None
) -> httpx.Response:
    """The streamed `response` with its body read, never more than a limit in memory.

    A successful answer larger than `limit` (ANSWER_LIMIT unless given) raises
    TransientServiceError naming the request; of an error answer (4xx/5xx) only its first
    ERROR_ANSWER_LIMIT bytes are kept, so it is still judged by its status. The body counts
    as it arrives decoded (gzip too). Call it inside `client.stream(...)`; the answer it
    gives back reads as an ordinary one (`.json()`, `.text`, headers, `.url`).
    """
    error = response.status_code >= 400
    cap = ERROR_ANSWER_LIMIT if error else (ANSWER_LIMIT if limit is None else limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > cap:
            if error:
                del body[cap:]
                break
            request = response.request
            raise TransientServiceError(
                f"{service} sent an answer larger than {_size(cap)} to {request.method} "
                f"{request.url.path}; the hub reads no more of an answer than that, "
                "and will ask again later"
            )
    # Built anew from the decoded bytes, so no Content-Encoding may decode them twice.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body),
        request=response.request,
        extensions=response.extensions,
    )


async def ask(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str = "the service",
    limit: int | None = None,
    **options: Any,
) -> httpx.Response:
    """`client.request(method, url, **options)`, its answer read by `read_answer`.

    The one way connectors send an API request whose answer they read: the body streams
    in and stops at the limit, where `client.request` would have buffered all of it.
    """
    async with client.stream(method, url, **options) as response:
        return await read_answer(response, service=service, limit=limit)
