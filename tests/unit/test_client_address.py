"""Which address is the client's: X-Forwarded-For believed only as far as trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from imputehub.config import Settings
from imputehub.monitoring.client_address import client_address

TRUSTED = Settings.from_environ({}, trusted_proxies="10.0.0.1, 10.1.0.0/16, fd00::/8")
NETWORKS = TRUSTED.trusted_proxy_networks


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # No trusted proxy in front: the peer, whatever the header says.
        ("192.0.2.9", ["203.0.113.5"], "192.0.2.9"),
        ("192.0.2.9", [], "192.0.2.9"),
        (None, ["203.0.113.5"], "unknown"),
        # From a trusted proxy: the right-most address that is not a trusted proxy.
        ("10.0.0.1", ["203.0.113.5"], "203.0.113.5"),
        ("10.0.0.1", ["1.1.1.1, 203.0.113.5"], "203.0.113.5"),  # 1.1.1.1: the client's claim
        ("10.0.0.1", ["203.0.113.5, 10.1.4.4"], "203.0.113.5"),  # through two proxies
        ("10.0.0.1", ["203.0.113.5", "10.1.4.4"], "203.0.113.5"),  # the header twice
        ("10.0.0.1", [" 203.0.113.5 ,10.1.4.4 "], "203.0.113.5"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        # Nothing believable beyond the proxies: the furthest proxy reached.
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["10.1.4.4"], "10.1.4.4"),
        ("10.0.0.1", ["203.0.113.5, not-an-address"], "10.0.0.1"),
        ("10.0.0.1", ["not-an-address, 10.1.4.4"], "10.1.4.4"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert client_address(peer, forwarded, NETWORKS) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert Settings.from_environ({}).trusted_proxy_networks == ()
    assert client_address("10.0.0.1", ["203.0.113.5"], ()) == "10.0.0.1"


def test_trusted_proxies_are_read_from_the_environment() -> None:
    settings = Settings.from_environ({"IMPUTEHUB_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"})
    assert settings.trusted_proxy_networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )


@pytest.mark.parametrize("value", ["nginx", "10.0.0.0/33", "10.0.0.1; 10.0.0.2"])
def test_malformed_trusted_proxies_are_refused_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="not an address or network"):
        Settings.from_environ({"IMPUTEHUB_TRUSTED_PROXIES": value})
