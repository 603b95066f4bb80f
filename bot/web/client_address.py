"""The address a sign-in comes from: the socket peer, or a trusted proxy's forwarding header.

A forwarding header is believed only when the connection comes from one of
the configured proxies; anyone else could write any address into it and get a
fresh sign-in limit with every request. The header is read from the right:
each trusted proxy appends the address it saw, so the first address that is
not one of ours is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"


def parse_proxies(proxies: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Parse proxy addresses or networks (``10.0.0.5``, ``10.0.0.0/8``, ``::1``).

    Raises:
        ValueError: One of them is not an IP address or network.
    """
    networks = []
    for proxy in proxies:
        try:
            networks.append(ipaddress.ip_network(proxy.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {proxy!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.9:443
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class ClientAddressResolver:
    """Finds the client address of a request from the peer and, behind trusted proxies, one header."""

    def __init__(self, header: str | None, trusted_proxies: Sequence[str]) -> None:
        """Believe ``header`` (e.g. X-Forwarded-For) only on connections from ``trusted_proxies``."""
        self.header = header
        self._proxies = parse_proxies(trusted_proxies)

    def _trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._proxies)

    def resolve(self, peer: str | None, header_values: Sequence[str]) -> str:
        """Return the client address for a connection from ``peer`` carrying ``header_values``."""
        peer_address = _address(peer or "")
        if peer_address is None:
            return UNKNOWN
        if not self.header or not self._trusted(peer_address):
            return str(peer_address)
        hops = [hop for value in header_values for hop in value.split(",")]
        client = peer_address
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Garbage left of a trusted hop cannot be told apart from a forgery: stop at the last good one.
                break
            client = address
            if not self._trusted(address):
                break
        return str(client)
