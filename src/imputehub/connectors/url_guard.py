"""The guard on URLs a service hands back: result files, DRS objects and access URLs, log
URLs, and every redirect hop on the way to them.

Services are untrusted: a compromised or buggy one could name `http://127.0.0.1:…` or a
cloud metadata address as a result and have the hub fetch it and store the answer as the
job owner's file. So clients that fetch such URLs send every request through
`GuardedTransport`:
- a URL on the service's own origin (scheme, host and port of its base URL, which an admin
  set) goes as it is: sapporo, for one, serves its outputs itself;
- any other URL must be http(s), and every address of its host public
  (`outbound/addresses.py`); the request then goes to the very address checked;
- an admin may lift the address rule for one service on a private network with
  `allow_private_urls: true` in its `api_config`.
httpx hands every redirect hop to the transport, so each hop is checked anew. A refused URL
fails the job (PermanentServiceError) with a message naming the host and the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from imputehub.domain.errors import PermanentServiceError, TransientServiceError
from imputehub.outbound.addresses import AddressRefused, pinned, resolve

SETTING = "allow_private_urls"


class UrlRefused(PermanentServiceError):
    """The service named a URL the hub will not fetch (a non-public address, a bad scheme)."""


def allows_private(api_config: Mapping[str, Any]) -> bool:
    """Whether an admin allowed this service's URLs to reach private addresses."""
    return api_config.get(SETTING) is True


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = httpx.URL(str(url))
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), port


class GuardedTransport(httpx.AsyncBaseTransport):
    """Sends requests on; those to a foreign origin only to a checked public address."""

    def __init__(
        self,
        *,
        own_origin: str,
        service: str,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.own = origin(own_origin)
        self.service = service
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise UrlRefused(
                f"{self.service} named a {url.scheme}: URL; the hub fetches http(s) only"
            )
        if origin(url) == self.own:
            return await self.inner.handle_async_request(request)
        try:
            address = await resolve(url, allow_private=False)
        except AddressRefused as exc:
            if not exc.private:
                raise TransientServiceError(
                    f"{self.service} named a URL on {exc.host!r}, which cannot be resolved "
                    "now; it will be tried again"
                ) from exc
            raise UrlRefused(
                f"{self.service} named a URL on host {exc.host!r}, which has a private, "
                "loopback, link-local or otherwise non-public address; the hub fetches such "
                "URLs only from the service's own base URL. If the service lives on your "
                f"private network, an admin can allow it with `{SETTING}: true` in the "
                "service's api_config"
            ) from exc
        target, host_header, pins = pinned(url, address)
        # A request of our own aimed at the address; httpx still sees the original one, so
        # redirects are resolved against the host name, and each hop comes back here.
        pinned_request = httpx.Request(
            request.method,
            target,
            headers=[*request.headers.multi_items()],
            stream=request.stream,
            extensions={**request.extensions, **pins},
        )
        pinned_request.headers.update(host_header)
        return await self.inner.handle_async_request(pinned_request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded(
    base_url: str, api_config: Mapping[str, Any], *, service: str, **transport: Any
) -> dict[str, Any]:
    """httpx client options for fetching URLs this service names (see the module's doc).

    With `allow_private_urls` the client is an ordinary one. Otherwise proxies from the
    environment are not used: the guard must see, and connect to, the address itself.
    `transport` are httpx.AsyncHTTPTransport's options for the guard's inner transport
    (the pool's TLS context and connection limits).
    """
    if allows_private(api_config):
        return {}
    inner = httpx.AsyncHTTPTransport(**transport)
    return {
        "transport": GuardedTransport(own_origin=base_url, service=service, inner=inner),
        "trust_env": False,
    }


def shown(url: str) -> str:
    """A URL fit for messages: no query or fragment, where signed links keep their secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
