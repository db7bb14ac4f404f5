"""Fetching an ``image_url`` for a caller without letting the caller reach what the host can.

Only ``http`` and ``https``; the host name is resolved once and every address it has must
be public (no loopback, private, link-local, shared, multicast or reserved address: not the
host itself, its network or a cloud metadata service); the connection goes to that address
(a second lookup cannot change it); redirects are not followed; at most ``max_bytes`` are
read, within ``timeout`` seconds in all. Every refusal is a ``FetchError`` whose message
names the URL's host and the reason, never a local detail.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from facelens.urls import redact_credentials

__all__ = ["FetchError", "fetch"]


class FetchError(Exception):
    """The URL was refused or could not be fetched (the message is safe to show)."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a resolved address, the certificate checked against the URL's host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def fetch(url: str, max_bytes: int, timeout: float = 10.0, allow_private: bool = False) -> bytes:
    """The body of ``url``, under the rules above (``allow_private`` lifts the address
    rule, for tests and closed networks).

    Example:
        >>> fetch("file:///etc/passwd", 1000)
        Traceback (most recent call last):
        ...
        facelens.service.fetch.FetchError: file:///etc/passwd: only http and https URLs are fetched
    """
    shown = redact_credentials(url)
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"{shown}: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{shown}: only http and https URLs are fetched")
    host = parts.hostname
    if not host:
        raise FetchError(f"{shown}: no host")
    deadline = time.monotonic() + timeout
    infos = _resolve(host, port, timeout, shown)
    addresses = [str(i[4][0]) for i in infos]
    if not allow_private and not all(_public(a) for a in addresses):
        raise FetchError(f"{shown}: the host is not a public address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _PinnedHTTPS(host, addresses[0], port, timeout)
    else:
        conn = http.client.HTTPConnection(addresses[0], port, timeout=timeout)
    # The socket's timeout bounds each read, not their sum: a server dripping a byte a
    # second kept a fetch with timeout=3 for 20-35 s. So the connection is also shut down
    # when the deadline passes, wherever the fetch is (connecting, reading headers or body).
    cutoff = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (conn,))
    cutoff.daemon = True
    cutoff.start()
    try:
        conn.request("GET", path, headers={"Host": parts.netloc.rsplit("@", 1)[-1]})
        resp = conn.getresponse()
        if 300 <= resp.status < 400:
            raise FetchError(f"{shown}: redirects are not followed (HTTP {resp.status})")
        if resp.status != 200:
            raise FetchError(f"{shown}: HTTP {resp.status}")
        chunks, total = [], 0
        while total <= max_bytes:
            if time.monotonic() > deadline:
                raise FetchError(f"{shown}: took longer than {timeout:g} s")
            chunk = resp.read(min(65536, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{shown}: more than {max_bytes} bytes")
        return b"".join(chunks)
    except (OSError, http.client.HTTPException) as e:
        if time.monotonic() >= deadline:
            raise FetchError(f"{shown}: took longer than {timeout:g} s") from None
        raise FetchError(f"{shown}: could not be fetched ({type(e).__name__})") from None
    finally:
        cutoff.cancel()
        conn.close()


def _shut(conn: http.client.HTTPConnection) -> None:
    """End a connection's blocked reads now (the deadline has passed)."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _resolve(host: str, port: int, timeout: float, shown: str) -> list[Any]:
    """``getaddrinfo`` within ``timeout`` (a resolver that does not answer holds a thread
    of its own, not the request)."""
    found: list[Any] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            failed.append(e)

    t = threading.Thread(target=lookup, name="resolve", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise FetchError(f"{shown}: the host name did not resolve within {timeout:g} s")
    if failed or not found:
        raise FetchError(f"{shown}: the host name does not resolve")
    return found
