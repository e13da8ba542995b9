"""Proxy headers from trusted peers: `X-Forwarded-For` / `X-Forwarded-Proto` -> client, scheme.

Which hop is the client follows uvicorn's ProxyHeadersMiddleware: every proxy appends the
address it received the request from, so the list is read from the right and the first
address that is not itself a trusted proxy is the client (all trusted, or `*`: the
left-most). That entry must be an IP address literal (IPv4, or IPv6 without a zone),
optionally with a port (`1.2.3.4:80`, `[::1]:80`); anything else (`admin`, markup, a huge
value) is not an address, and the peer's own address is kept. `X-Forwarded-Proto` counts
only as `http`, `https`, `ws` or `wss`.

Pure functions over header values: this module imports only `ipaddress` and `functools`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "forwarded_client", "forwarded_scheme"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The longest IP literal with a port: "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535".
_MAX_ENTRY = 53
_SCHEMES = {"http": False, "https": True, "ws": False, "wss": True}  # -> secure


class TrustedProxies:
    """The peers whose proxy headers count (`--forwarded-allow-ips`).

    Args:
        hosts: IP addresses, networks (`10.0.0.0/8`), other literal peer names, or `*`.
    """

    def __init__(self, hosts: Iterable[str]) -> None:
        self.exact = frozenset(hosts)
        self.always = "*" in self.exact
        self.addresses: set[_Address] = set()
        self.networks: list[_Network] = []
        for host in self.exact:
            try:
                if "/" in host:
                    self.networks.append(ipaddress.ip_network(host, strict=False))
                else:
                    self.addresses.add(ipaddress.ip_address(host))
            except ValueError:
                pass  # a literal name (kept in `exact`), compared as a string
        self._by_address = functools.lru_cache(maxsize=1024)(self._compute)

    def __contains__(self, host: str) -> bool:
        if self.always or host in self.exact:
            return True
        if len(host) > _MAX_ENTRY:
            return False  # not an address: never cached, never trusted
        return self._by_address(host)

    def _compute(self, host: str) -> bool:
        address = ip_literal(host)
        if address is None:
            return False
        return address in self.addresses or any(address in net for net in self.networks)


def ip_literal(host: str) -> _Address | None:
    """`host` as an IP address, or None when it is anything else (a zone id too)."""
    if not host or len(host) > _MAX_ENTRY:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    # "fe80::1%<anything>" parses (RFC 4007 zone ids are free text) but names no client.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None
    return address


def _host_port(entry: str) -> tuple[str, int] | None:
    """Split `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]` or `[::1]:80`; None when malformed."""
    port = "0"
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else "0"
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host = entry
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        return None
    return host, int(port)


def forwarded_client(trusted: TrustedProxies, values: list[str]) -> tuple[str, int] | None:
    """The client named by the `X-Forwarded-For` header lines `values` (in order), or None.

    None: no usable entry (empty, or the chosen hop is not an IP literal); the caller
    keeps the peer's address.
    """
    entries = [item.strip() for value in values for item in value.split(",")]
    chosen = entries[0]
    if not trusted.always:
        for entry in reversed(entries):
            parsed = _host_port(entry)
            if parsed is None or parsed[0] not in trusted:
                chosen = entry
                break
    parsed = _host_port(chosen) if len(chosen) <= _MAX_ENTRY else None
    if parsed is None or ip_literal(parsed[0]) is None:
        return None
    return parsed


def forwarded_scheme(value: str, websocket: bool) -> str | None:
    """The scope scheme from the last `X-Forwarded-Proto` value; None when not a known one."""
    secure = _SCHEMES.get(value.rsplit(",", 1)[-1].strip().lower())
    if secure is None:
        return None
    if websocket:
        return "wss" if secure else "ws"
    return "https" if secure else "http"
