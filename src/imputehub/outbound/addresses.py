"""The public-address rule for URLs the hub did not choose itself (server-side request forgery).

A webhook URL a user registered, a result URL a service handed back: the hub calls such a
URL only when every address its host resolves to is public, and then connects to the very
address it checked, so a DNS answer that changes between the check and the connection
cannot steer the request inward. Used by `notify/webhooks.py` and `connectors/url_guard.py`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

RESOLVE_TIMEOUT = 5.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Well-known NAT64 prefix (RFC 6052): the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(Exception):
    """The host's address is not public (`private` True) or cannot be found (False)."""

    def __init__(self, message: str, *, host: str, private: bool) -> None:
        super().__init__(message)
        self.host = host
        self.private = private


def is_public_address(address: IpAddress) -> bool:
    """False for private, loopback, link-local, multicast, reserved, unspecified and other
    special-purpose addresses, IPv4 inside IPv6 (mapped, 6to4, Teredo, NAT64) judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return is_public_address(embedded)
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    # is_global also rules out shared (100.64/10) and documentation ranges.
    return address.is_global


async def resolve(url: httpx.URL, *, allow_private: bool) -> IpAddress:
    """The address to connect to: every address of the host must be public (unless allowed).

    All of them, not just the first: a host answering with one public and one private
    address could otherwise be steered inward by whoever controls its DNS.
    """
    host = url.host
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                RESOLVE_TIMEOUT,
            )
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise AddressRefused(
                f"the host {host!r} cannot be resolved", host=host, private=False
            ) from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise AddressRefused(f"the host {host!r} has no address", host=host, private=False)
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise AddressRefused(
                    f"the host {host!r} has a private, loopback, link-local or otherwise "
                    "non-public address",
                    host=host,
                    private=True,
                )
    return addresses[0]


def pinned(url: httpx.URL, address: IpAddress) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """`url` aimed at the checked `address`: (the URL, headers, extensions) to send with.

    The Host header and the TLS server name keep the host name, so virtual hosting and
    certificate checks work as they would for the name itself.
    """
    target = url.copy_with(host=str(address))
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return target, headers, extensions
