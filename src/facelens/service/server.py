"""Running the service: uvicorn with what it lacks against slow and numerous clients.

(uvicorn runs on uvloop, installed with the ``server`` extra: accepting a burst of thousands
of connections in C rather than in asyncio's Python took ``/v1/health``'s p99 under 5,000
slow clients from 780-880 ms to 120-150 ms on a shared 2-core machine.)

uvicorn closes an idle keep-alive connection, but a connection that sends its request's
headers slowly (a line every few seconds: "slowloris") is kept forever, and connections are
accepted until the process runs out of file descriptors - after which every accept fails
and is logged with a traceback (21,000 such clients wrote 274 MB of log in 45 s). Here:

- ``GuardedH11`` (uvicorn's h11 protocol) gives a request's headers ``HEADER_TIMEOUT_S``
  (and up to ``HEADER_JITTER_S`` more, so that connections made in one burst are not closed
  in one burst, and reconnect in one) from the connection's first moment, or the end of its
  previous answer, to arrive in full; past it the connection is closed with a 408. A client
  that has read nothing of its answer for ``WRITE_STALL_S`` is disconnected. Each is a timer
  of the connection's own. Bodies have their own limits (``facelens.service.gate``).
- At most ``connection_cap()`` connections are open at once (``--max-connections``). A new
  one past the cap first takes the place of the connection that has waited longest for its
  headers (a slow client is the one that gives way); only when every connection is working
  on a request is the newcomer refused, with a 503 and ``Retry-After``, and closed.
- The process's file-descriptor limit is raised to its hard limit, and the cap kept below it
  (``prepare_process``, which ``facelens.service.main.build`` runs in every worker).
- Every log record passes a rate limit (``RateLimited``): at most ``LOG_BURST`` of one kind
  (logger and message) at once and one a second after, then a count of those left out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import resource
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "HEADER_TIMEOUT_S",
    "WRITE_STALL_S",
    "GuardedH11",
    "RateLimited",
    "connection_cap",
    "prepare_process",
    "rate_limit_logging",
]

log = logging.getLogger(__name__)

# A request's line and headers arrive in one or two packets from any client; 10 s is more
# than a mobile network's worst round trips, and far below the 30 s a slow client may hold a
# connection.
HEADER_TIMEOUT_S = 10.0
HEADER_JITTER_S = 5.0
# A client that reads nothing of its answer for this long is gone or hostile.
WRITE_STALL_S = 30.0
# descriptors kept for what is not a connection: the store, models, decode processes' pipes,
# log files, event sinks
RESERVED_FDS = 256
DEFAULT_MAX_CONNECTIONS = 10_000
LOG_BURST = 20


def _raw_answer(status: str, error: str, detail: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, in the service's error shape."""
    body = json.dumps({"error": error, "detail": detail, "reasons": []}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_REFUSED = _raw_answer(
    "503 Service Unavailable",
    "too_many_connections",
    "the service has too many open connections; try again shortly",
    "retry-after: 5\r\n",
)
_TIMED_OUT = _raw_answer(
    "408 Request Timeout", "request_timeout", "the request's headers took too long to arrive"
)


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a write-stall deadline and a
    connection cap (``Config.limit_concurrency``, taken over from uvicorn's own use of it,
    which counts idle connections against requests)."""

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None):
        super().__init__(config, server_state, app_state, _loop)
        self.max_connections = connection_cap(config.limit_concurrency)
        self.limit_concurrency = None  # the cap is kept here, not per request
        self.waiting_since: float | None = None  # waiting for a request's headers
        self._headers_due: asyncio.TimerHandle | None = None
        self._stall_due: asyncio.TimerHandle | None = None

    # -- the cap ----------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._await_headers()
        if len(self.connections) <= self.max_connections:
            return
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedH11) and c is not self and c.waiting_since is not None
        ]
        oldest = min(waiting, key=lambda c: c.waiting_since or 0.0, default=None)
        if oldest is not None:
            oldest.time_out()
        else:
            transport.write(_REFUSED)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._cancel()

    # -- the deadlines ----------------------------------------------------------------------

    def _await_headers(self) -> None:
        """A request's headers are due within ``HEADER_TIMEOUT_S`` (and a random second or
        two more, so that connections made together are not all closed in one moment)."""
        self.waiting_since = self.loop.time()
        if self._headers_due is not None:
            self._headers_due.cancel()
        self._headers_due = self.loop.call_later(
            HEADER_TIMEOUT_S + random.uniform(0.0, HEADER_JITTER_S), self.time_out
        )

    def _cancel(self) -> None:
        for handle in (self._headers_due, self._stall_due):
            if handle is not None:
                handle.cancel()
        self._headers_due = self._stall_due = None
        self.waiting_since = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.waiting_since is not None and self.conn.their_state is not h11.IDLE:
            self.waiting_since = None  # its headers are in
            if self._headers_due is not None:
                self._headers_due.cancel()
                self._headers_due = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_headers()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_due is None:
            self._stall_due = self.loop.call_later(WRITE_STALL_S, self.time_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall_due is not None:
            self._stall_due.cancel()
            self._stall_due = None

    def time_out(self) -> None:
        """Close the connection; with a 408 when it was still sending its headers."""
        if not self.transport.is_closing():
            if self.waiting_since is not None and self.conn.their_state is h11.IDLE:
                self.transport.write(_TIMED_OUT)
                self.transport.close()
            else:
                self.transport.abort()
        self._cancel()


class RateLimited(logging.Filter):
    """At most ``burst`` records of one kind (logger and message template) at once, then one
    a second; the next one let through says how many were left out."""

    def __init__(self, name: str = "", burst: int = LOG_BURST, per_s: float = 1.0) -> None:
        super().__init__(name)
        self.burst, self.per_s = float(burst), per_s
        self._kinds: dict[tuple[str, str], list[float]] = {}  # tokens, at, left out

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = time.monotonic()
        tokens, at, dropped = self._kinds.get(key, [self.burst, now, 0.0])
        tokens = min(self.burst, tokens + (now - at) * self.per_s)
        if tokens < 1:
            self._kinds[key] = [tokens, now, dropped + 1]
            return False
        if dropped:
            record.msg = f"{record.msg} ({int(dropped)} more like it left out)"
        if len(self._kinds) > 10_000:  # kinds are few; anything else is not worth memory
            self._kinds.clear()
        self._kinds[key] = [tokens - 1, now, 0.0]
        return True


def rate_limit_logging() -> None:
    """Put ``RateLimited`` on every handler of the root and uvicorn loggers (adding a
    stderr handler to the root when it has none: asyncio's and facelens's records go there)."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(stderr)
        root.setLevel(logging.WARNING)
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RateLimited) for f in handler.filters):
                handler.addFilter(RateLimited())


def connection_cap(wanted: int | None = None) -> int:
    """The connections a worker keeps open at once: ``wanted`` (default
    ``DEFAULT_MAX_CONNECTIONS``), kept ``RESERVED_FDS`` below the file-descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = wanted or DEFAULT_MAX_CONNECTIONS
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, max(16, soft - RESERVED_FDS))
    return cap


def prepare_process() -> None:
    """What a worker process does once, before it serves: raise its file-descriptor limit
    to the hard limit, and rate-limit its logging."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rate_limit_logging()
