"""Where events go. Every sink's ``emit`` returns at once: slow or failing receivers are
served by a background thread with a bounded queue, so they never hold up the video loop
(events beyond the queue are dropped and counted)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from facelens.errors import InputError, MissingDependencyError
from facelens.events.event import Event

__all__ = [
    "EventBus",
    "JsonlSink",
    "MemorySink",
    "MqttSink",
    "Sink",
    "WebhookSink",
    "parse_sink",
    "sign",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Facelens-Signature"
TIMESTAMP_HEADER = "X-Facelens-Timestamp"


class Sink(Protocol):
    """A destination for events."""

    name: str

    def emit(self, event: Event) -> None:
        """Hand over one event (must not block)."""

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is pending (within ``timeout``) and release resources."""


def _json(event: Event) -> bytes:
    return json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The webhook signature: ``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body``.

    Example:
        >>> sign(b"k", "1700000000", b"{}")[:7]
        'sha256='
    """
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _Worker:
    """A daemon thread draining a bounded queue into ``deliver``."""

    def __init__(self, name: str, deliver: Any, capacity: int) -> None:
        self._q: queue.Queue[Event | None] = queue.Queue(maxsize=capacity)
        self._deliver = deliver
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        try:
            self._q.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            log.warning("event queue full: dropped %s event", event.type)

    def _run(self) -> None:
        while True:
            event = self._q.get()
            if event is None:
                return
            try:
                if self._deliver(event):
                    self.delivered += 1
                else:
                    self.failed += 1
            except Exception:  # a sink must never kill the thread
                self.failed += 1
                log.exception("event delivery failed")

    def close(self, timeout: float) -> None:
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class JsonlSink:
    """Appends one JSON object per line to a file (flushed per event)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("ab")
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self._f.write(_json(event) + b"\n")
            self._f.flush()

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._f.close()


class MemorySink:
    """Keeps events in a list (in-process consumers: the service's live view, tests)."""

    name = "memory"

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def close(self, timeout: float = 5.0) -> None:
        return None


class WebhookSink:
    """POSTs each event as JSON, signed with HMAC-SHA256, retrying with exponential backoff.

    Headers: ``Content-Type: application/json``, ``X-Facelens-Timestamp`` (Unix seconds)
    and ``X-Facelens-Signature: sha256=<hex>`` over ``timestamp + "." + body`` (receivers
    should reject stale timestamps to stop replays). A 2xx answer is delivered; anything
    else or no answer is retried ``retries`` times, waiting ``backoff * 2**n`` seconds.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
        capacity: int = 1000,
    ) -> None:
        if urlparse(url).scheme not in ("http", "https"):
            raise InputError(url, "a webhook URL must start with http:// or https://")
        if not secret:
            raise InputError("webhook", "a webhook needs a signing secret")
        self.url = url
        self.name = f"webhook:{url}"
        self.secret = secret
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._worker = _Worker(f"webhook {url}", self._deliver, capacity)

    @property
    def stats(self) -> dict[str, int]:
        w = self._worker
        return {"delivered": w.delivered, "failed": w.failed, "dropped": w.dropped}

    def _deliver(self, event: Event) -> bool:
        body = _json(event)
        for attempt in range(self.retries + 1):
            ts = str(int(time.time()))
            req = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: ts,
                    SIGNATURE_HEADER: sign(self.secret, ts, body),
                    "User-Agent": "facelens",
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    if 200 <= resp.status < 300:
                        return True
            except urllib.error.HTTPError as e:
                log.info("webhook %s answered %s (attempt %d)", self.url, e.code, attempt + 1)
            except (urllib.error.URLError, OSError) as e:
                log.info("webhook %s unreachable: %s (attempt %d)", self.url, e, attempt + 1)
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        log.warning("webhook %s: gave up on a %s event", self.url, event.type)
        return False

    def emit(self, event: Event) -> None:
        self._worker.put(event)

    def close(self, timeout: float = 5.0) -> None:
        self._worker.close(timeout)


class MqttSink:
    """Publishes each event to ``<topic>/<type>`` (QoS 1), e.g. ``facelens/door/identified``.

    The paho client reconnects by itself; publishing only queues the message.
    """

    def __init__(
        self, host: str, port: int, topic: str, *, client_id: str = "", qos: int = 1
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError:  # pragma: no cover - depends on the installation
            raise MissingDependencyError(
                "paho-mqtt", "MQTT event sinks", "pip install 'facelens[events]'"
            ) from None
        self.name = f"mqtt://{host}:{port}/{topic}"
        self.topic = topic.strip("/")
        self.qos = qos
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()

    def emit(self, event: Event) -> None:
        self._client.publish(f"{self.topic}/{event.type}", _json(event), qos=self.qos)

    def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self._client.want_write() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._client.loop_stop()
        self._client.disconnect()


class EventBus:
    """Fans events out to several sinks; a failing sink does not stop the others."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks = list(sinks)
        self.counts: dict[str, int] = {}

    def emit(self, event: Event) -> None:
        self.counts[event.type] = self.counts.get(event.type, 0) + 1
        for s in self.sinks:
            try:
                s.emit(event)
            except Exception:
                log.exception("sink %s failed", s.name)

    def close(self, timeout: float = 5.0) -> None:
        for s in self.sinks:
            s.close(timeout)


def parse_sink(spec: str, webhook_secret: bytes | None = None) -> Sink:
    """A sink from ``jsonl:FILE``, ``webhook:URL`` or ``mqtt://HOST:PORT/TOPIC``."""
    if spec.startswith("jsonl:"):
        return JsonlSink(spec[len("jsonl:") :])
    if spec.startswith("webhook:"):
        if not webhook_secret:
            raise InputError(
                spec, "webhook sinks need a secret (--webhook-secret or $FACELENS_WEBHOOK_SECRET)"
            )
        return WebhookSink(spec[len("webhook:") :], webhook_secret)
    if spec.startswith("mqtt://"):
        u = urlparse(spec)
        topic = u.path.strip("/") or "facelens"
        return MqttSink(u.hostname or "localhost", u.port or 1883, topic)
    raise InputError(
        spec, "unknown event sink (use jsonl:FILE, webhook:URL or mqtt://HOST:PORT/TOPIC)"
    )
