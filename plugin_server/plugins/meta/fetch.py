"""`meta.fetch`: HTTP(S) requests from plugin code, to public addresses only (unless the operator
allows private ones), with a capped body and a bounded number of redirects.

The address rule is `refusal(ip)`, a pure function with its whole table in
tests/unit/plugins/test_fetch_addresses.py. It does not trust `ipaddress`'s `is_global`, which
calls multicast, 192.88.99.0/24, fec0::/10 and every IPv6 form that embeds an IPv4 address
(::a.b.c.d, 64:ff9b::/96, 2002::/16) global, and which changed between CPython patch releases:
the special-purpose blocks are listed here, IPv6 must be global unicast (2000::/3), and
`is_global` is only a last check on top."""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from plugin_server.plugins.meta import outage
from plugin_server.plugins.meta._bridge import MetaError, serialize

MAX_FETCH_BYTES = 5 * 1024 * 1024  # of a fetched response body
FETCH_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(hostname, port) -> every address the name has, as text; OSError when it has none."""


def _blocks(*rows: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(network), why) for network, why in rows)


# The IANA special-purpose registry (RFC 6890 and its updates): none is a public web server.
_IPV4_REFUSED = _blocks(
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and 255.255.255.255, broadcast)"),
)
_IPV6_REFUSED = _blocks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("2001::/23", "IETF protocol assignments"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# IPv6 forms that carry an IPv4 address are refused whatever IPv4 they carry: each hands the
# packet to a translator or a tunnel (a NAT64 gateway, a 6to4 relay, a Teredo server, the kernel's
# sit device for IPv4-compatible addresses), and that box, not this rule, decides where the IPv4
# address leads, possibly inside the operator's network. A pipeline server has no business
# fetching through one: a public host has a native IPv4 or IPv6 address. The cost: on an IPv6-only
# network behind DNS64, IPv4-only hosts cannot be fetched unless the operator sets
# PLUGIN_FETCH_ALLOW_PRIVATE. A NAT64 gateway on an operator-chosen prefix (RFC 6052) cannot be
# told from a plain global address: refusing private IPv4 destinations there is the network's job.
# IPv4-mapped addresses are not translated (a dual-stack socket sends them as IPv4), so they are
# judged as the IPv4 address they are, and the connection goes to that IPv4 address.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def refusal(ip: IPAddress) -> str | None:
    """Why a fetch must not connect to `ip`, or None when `ip` is a public unicast address."""
    if isinstance(ip, ipaddress.IPv4Address):
        for network, why in _IPV4_REFUSED:
            if ip in network:
                return f"{why} ({network})"
        return None if ip.is_global else "not global"
    mapped = ip.ipv4_mapped
    if mapped is not None:
        inside = refusal(mapped)
        return None if inside is None else f"IPv4-mapped {mapped}: {inside}"
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are named below
        return f"IPv4-compatible (deprecated), embeds {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
    if ip in _NAT64:
        return f"NAT64 (64:ff9b::/96), embeds {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
    if ip in _NAT64_LOCAL:
        return "local-use NAT64 (64:ff9b:1::/48)"
    if ip.sixtofour is not None:
        return f"6to4 (2002::/16), embeds {ip.sixtofour}"
    if ip.teredo is not None:
        server, client = ip.teredo
        return f"Teredo (2001::/32), server {server}, client {client}"
    for network, why in _IPV6_REFUSED:
        if ip in network:
            return f"{why} ({network})"
    if ip not in _GLOBAL_UNICAST:
        return f"not global unicast (outside {_GLOBAL_UNICAST})"
    return None if ip.is_global else "not global"


def is_public_address(ip: IPAddress) -> bool:
    return refusal(ip) is None


def resolve(hostname: str, port: int) -> list[str]:
    """The system resolver (a `Resolver`): every address of `hostname` for TCP."""
    return [str(info[4][0]) for info in socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)]


class Fetch:
    """`meta.fetch(url, method="GET", headers=None, body=None, timeout=10)` -> a dict
    `{status, ok, headers, text}`. Only http(s); redirects are followed (at most 5) and every hop
    is checked; the body is capped. Unless the operator allows private addresses, every address a
    host resolves to must be public (`refusal`), and the request goes to the address that was
    checked (no second resolution, so no DNS rebinding). `resolver` and `transport` are for tests:
    a stub resolver and an httpx.MockTransport, so no test touches the network."""

    __slots__ = ("_allow_private", "_resolve", "_transport")

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = resolve,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolve = resolver
        self._transport = transport

    def __call__(
        self,
        url: str,
        method: str = "GET",
        headers: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float = FETCH_TIMEOUT_SECONDS,
    ) -> dict[str, Any]:
        outage.refuse_after_outage("fetch")
        method = str(method).upper()
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise MetaError(f"method {method!r} is not supported")
        content = body if isinstance(body, str | bytes) or body is None else serialize(body)
        timeout = min(max(float(timeout), 0.1), 60.0)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._once(str(url), method, dict(headers or {}), content, timeout)
            location = response.pop("location", None)
            if location is None:
                return response
            url = urllib.parse.urljoin(str(url), location)
            if response["status"] in (301, 302, 303):
                method, content = "GET", None
        raise MetaError(f"more than {MAX_REDIRECTS} redirects")

    def _once(self, url: str, method: str, headers: dict[str, Any], content: Any, timeout: float) -> dict[str, Any]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MetaError(f"only http(s) URLs can be fetched, not {url!r}")
        address = self._address(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        host = f"[{address}]" if ":" in address else address
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        target = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {str(k): str(v) for k, v in headers.items()} | {"Host": parts.netloc.rsplit("@", 1)[-1]}
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        try:
            with (
                httpx.Client(
                    timeout=timeout, follow_redirects=False, trust_env=False, transport=self._transport
                ) as client,
                client.stream(
                    method,
                    target,
                    headers=headers,
                    content=content,
                    extensions=extensions,
                ) as response,
            ):
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_FETCH_BYTES:
                        raise MetaError(f"response larger than {MAX_FETCH_BYTES} bytes")
                result = {
                    "status": response.status_code,
                    "ok": 200 <= response.status_code < 300,
                    "headers": {k.lower(): v for k, v in response.headers.items()},
                    "text": body.decode(response.encoding or "utf-8", errors="replace"),
                }
                if response.is_redirect and "location" in response.headers:
                    result["location"] = response.headers["location"]
                return result
        except httpx.HTTPError as exc:
            raise MetaError(f"fetch {parts.hostname}: {exc}") from None

    def _address(self, hostname: str, port: int) -> str:
        """The address to connect to: every address of `hostname` checked, the first one used."""
        try:
            addresses = [str(ipaddress.ip_address(hostname))]  # a literal is not looked up
        except ValueError:
            try:
                addresses = self._resolve(hostname, port)
            except OSError as exc:
                raise MetaError(f"cannot resolve {hostname!r}: {exc}") from None
        if not addresses:
            raise MetaError(f"cannot resolve {hostname!r}: no address")
        if self._allow_private:
            return addresses[0]
        checked: list[IPAddress] = []
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                raise MetaError(f"cannot resolve {hostname!r}: {address!r} is not an address") from None
            why = refusal(ip)
            if why is not None:
                raise MetaError(f"fetching {hostname!r} ({ip}) is not allowed: not a public address: {why}")
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # judged as this IPv4 address, so connect to it as one
            checked.append(ip)
        return str(checked[0])
