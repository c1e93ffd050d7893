"""The HTTP clients connectors talk to services with: kept open and reused, one per need.

Opening an httpx client per call costs far more than the call: building its TLS context
alone (certifi's bundle parsed anew, even for plain http) took 42 % of a worker's CPU while
it followed 500 Michigan jobs. So the process builds ONE TLS context, and a `ClientPool`
keeps one keep-alive client per service and kind of use, which later calls reuse with the
connections it holds open:
- a kind is the timeouts, whether redirects are followed, and whether the client is the
  guarded one for URLs the service names (`url_guard.py`);
- a client depends on the service's base URL (the guard's own origin) and its
  `allow_private_urls` setting: when an admin changes either, the next call gets a new
  client, and the old one is closed once no call uses it any more;
- credentials never live on a client: every request carries its own headers, and no
  client keeps the cookies a service sets;
- `await pool.aclose()` closes them all (the runtime does at shutdown).

A lease (`async with pool.client(service, timeout=...) as client:`) also translates network
failures inside it into TransientServiceError (`http.translated`), so no httpx exception
leaves a connector. `ClientPool(keep_alive=False)` — what a connector built without a pool
gets — opens a client per lease and closes it after, as the hub did before, but still with
the one TLS context: tests build connectors freely and run each on its own event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from imputehub.connectors.base import ServiceInfo
from imputehub.connectors.http import translated
from imputehub.connectors.url_guard import allows_private, guarded, origin
from imputehub.outbound.tls import ssl_context

# Per client, i.e. per service and kind. A worker runs up to 200 steps at once, mostly polls
# waiting on the network: at a service's ~0.3 s answer time, 100 connections carry the 333
# polls/s that 10,000 jobs at a 30 s interval need. Requests beyond the limit wait in httpx's
# queue, which is costly (it rescans every connection per waiting request).
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=15.0)


def _no_cookies() -> CookieJar:
    """A jar that keeps nothing: a shared client serves every user of the service, so a
    cookie one user's call was given must never go with another's."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


@dataclass(frozen=True)
class _Kind:
    identity: str  # the service's id, or a foreign endpoint's origin
    timeout: tuple[float | None, ...]  # httpx.Timeout is not hashable: its four limits
    guard: bool
    follow_redirects: bool
    timeouts: httpx.Timeout = field(compare=False)


def _kind(identity: str, timeout: httpx.Timeout, *, guard: bool, follow_redirects: bool) -> _Kind:
    limits = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    return _Kind(identity, limits, guard, follow_redirects, timeout)


@dataclass(frozen=True)
class _Options:
    """What a client is built from besides its kind: a change means a new client."""

    base_url: str
    allow_private: bool
    label: str
    guard_label: str


@dataclass(eq=False)
class _Entry:
    client: httpx.AsyncClient
    options: _Options
    loop: asyncio.AbstractEventLoop
    leases: int = 0
    retired: bool = False


class ClientPool:
    """Keep-alive httpx clients by service and kind (see the module's doc)."""

    def __init__(self, *, keep_alive: bool = True, limits: httpx.Limits = LIMITS) -> None:
        self.keep_alive = keep_alive
        self.limits = limits
        self._entries: dict[_Kind, _Entry] = {}
        self._retired: set[_Entry] = set()  # replaced, closed when their last call ends
        self._closing: set[asyncio.Task[None]] = set()

    def client(
        self,
        service: ServiceInfo,
        *,
        timeout: httpx.Timeout,
        guard: bool = False,
        follow_redirects: bool = False,
        label: str = "the service",
        guard_label: str | None = None,
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """A lease of this service's client of that kind; `guard` for URLs it names.

        `label` names the service in translated errors ("could not reach {label}: ..."),
        `guard_label` (else `label`) in the guard's refusals.
        """
        kind = _kind(service.id, timeout, guard=guard, follow_redirects=follow_redirects)
        allow = guard and allows_private(service.api_config)
        options = _Options(service.base_url, allow, label, guard_label or label)
        return self._lease(kind, options)

    def endpoint(
        self, url: str, *, timeout: httpx.Timeout, label: str
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """A lease of a client for an endpoint the service's settings name on another
        origin (an OAuth2 token URL): one per origin, shared by the services using it."""
        scheme, host, port = origin(url)
        own = f"{scheme}://{host}:{port}"
        kind = _kind(own, timeout, guard=False, follow_redirects=False)
        return self._lease(kind, _Options(own, False, label, label))

    @asynccontextmanager
    async def _lease(self, kind: _Kind, options: _Options) -> AsyncIterator[httpx.AsyncClient]:
        with translated(kind.timeouts, service=options.label):
            entry = self._take(kind, options)
            try:
                yield entry.client
            finally:
                await self._give_back(entry)

    def _take(self, kind: _Kind, options: _Options) -> _Entry:
        loop = asyncio.get_running_loop()
        entry = self._entries.get(kind) if self.keep_alive else None
        if entry is not None and (entry.options != options or entry.loop is not loop):
            # The admin changed the service (or this is another event loop's client, which
            # cannot be used here): calls still under way finish on the old client.
            del self._entries[kind]
            self._retire(entry)
            entry = None
        if entry is None:
            entry = _Entry(self._build(kind, options), options, loop)
            if self.keep_alive:
                self._entries[kind] = entry
            else:
                entry.retired = True  # closed when its one lease ends
        entry.leases += 1
        return entry

    async def _give_back(self, entry: _Entry) -> None:
        entry.leases -= 1
        if entry.retired and entry.leases == 0:
            self._retired.discard(entry)
            await entry.client.aclose()

    def _retire(self, entry: _Entry) -> None:
        entry.retired = True
        if entry.leases > 0:
            self._retired.add(entry)  # closed by the last lease's end
        elif entry.loop is asyncio.get_running_loop():
            # Nothing holds it: close its connections soon, without delaying this call.
            task = entry.loop.create_task(entry.client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _build(self, kind: _Kind, options: _Options) -> httpx.AsyncClient:
        transport: dict[str, Any] = {"verify": ssl_context(), "limits": self.limits}
        if kind.guard:
            api_config = {"allow_private_urls": True} if options.allow_private else {}
            extra = guarded(options.base_url, api_config, service=options.guard_label, **transport)
        else:
            extra = {}
        return httpx.AsyncClient(
            timeout=kind.timeouts,
            follow_redirects=kind.follow_redirects,
            cookies=_no_cookies(),
            **(transport | extra),
        )

    async def aclose(self) -> None:
        """Close every client of this event loop (idempotent); others' loops are gone."""
        loop = asyncio.get_running_loop()
        entries = [*self._entries.values(), *self._retired]
        self._entries.clear()
        self._retired.clear()
        for entry in entries:
            if entry.loop is loop:
                await entry.client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
