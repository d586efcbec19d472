"""`meta.fetch`: HTTP(S) requests from plugin code, to public addresses only (unless the operator
allows private ones), with a capped body and a bounded number of redirects."""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from typing import Any

import httpx

from plugin_server.plugins.meta import outage
from plugin_server.plugins.meta._bridge import MetaError, serialize

MAX_FETCH_BYTES = 5 * 1024 * 1024  # of a fetched response body
FETCH_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 5


class Fetch:
    """`meta.fetch(url, method="GET", headers=None, body=None, timeout=10)` -> a dict
    `{status, ok, headers, text}`. Only http(s); redirects are followed (at most 5) and every hop
    is checked; the body is capped. Unless the operator allows private addresses, every address a
    host resolves to must be public (no loopback, link-local, private, reserved), and the request
    goes to the address that was checked (no DNS rebinding)."""

    __slots__ = ("_allow_private",)

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

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
                httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
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
        try:
            infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise MetaError(f"cannot resolve {hostname!r}: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
        if not self._allow_private:
            for address in addresses:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                if not ip.is_global or ip.is_multicast:
                    raise MetaError(f"fetching {hostname!r} ({ip}) is not allowed: not a public address")
        return addresses[0]
