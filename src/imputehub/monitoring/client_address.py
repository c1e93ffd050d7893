"""The client's address: the direct peer, or behind trusted reverse proxies the address they
saw. Rate limits, the login throttle and the audit log all take it from here.

X-Forwarded-For is a list each proxy appends its own peer to, and anyone can send one: only
entries appended by proxies we trust are believed. So it is read only when the direct peer
is a trusted proxy, from the right, skipping trusted proxies; the first address that is not
one is the client. Whatever the client itself wrote sits further left and is never reached,
unless every hop is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]
) -> bool:
    return any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address, given the direct peer, the X-Forwarded-For header values (in
    the order received) and the trusted proxies' networks."""
    if not peer:
        return UNKNOWN
    peer_address = _parse(peer)
    if peer_address is None or not trusted or not _trusted(peer_address, trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    nearest = str(peer_address)
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            # Not something a proxy of ours writes: what lies left of it is not believable.
            break
        if not _trusted(address, trusted):
            return str(address)
        nearest = str(address)
    # Every believable hop is one of our proxies: the furthest of them is the client.
    return nearest


def of_scope(scope: Scope, trusted: Sequence[Network]) -> str:
    """`client_address` for an ASGI request."""
    client = scope.get("client")
    forwarded = [
        value.decode("latin-1")
        for key, value in scope.get("headers", [])
        if key.lower() == b"x-forwarded-for"
    ]
    return client_address(str(client[0]) if client else None, forwarded, trusted)
