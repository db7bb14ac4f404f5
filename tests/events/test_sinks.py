"""Event sinks against real receivers: a file, an HTTP server, a mosquitto broker."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from facelens.events import Event, EventBus, JsonlSink, MqttSink, WebhookSink, sign
from facelens.events.sinks import SIGNATURE_HEADER, TIMESTAMP_HEADER


def event(i: int, kind: str = "identified") -> Event:
    return Event(
        type=kind,
        time="2026-11-26T00:00:00.000+00:00",
        frame=i,
        track_id=1,
        identity="Ann",
        source="test",
        score=0.97123,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_jsonl_lines_have_the_documented_fields(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "e.jsonl")
    for i in range(3):
        sink.emit(event(i))
    sink.close()
    rows = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == [0, 1, 2]
    assert all({"type", "time", "frame", "track_id", "identity"} <= set(r) for r in rows)
    assert rows[0]["score"] == 0.97  # rounded to two decimals


class Receiver(BaseHTTPRequestHandler):
    failures_left = 0
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.failures_left > 0:
            Receiver.failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    Receiver.received = []
    Receiver.failures_left = 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_retries_until_accepted_and_signs_every_event(receiver: str) -> None:
    secret = b"s3cret"
    sink = WebhookSink(receiver, secret, retries=4, backoff=0.05)
    t = time.perf_counter()
    for i in range(3):
        sink.emit(event(i))
    assert time.perf_counter() - t < 0.05  # emit never waits for the receiver
    sink.close(timeout=10)
    assert [json.loads(b)["frame"] for _, b in Receiver.received] == [0, 1, 2]
    for headers, body in Receiver.received:
        assert headers[SIGNATURE_HEADER] == sign(secret, headers[TIMESTAMP_HEADER], body)
        assert headers[SIGNATURE_HEADER] != sign(b"wrong", headers[TIMESTAMP_HEADER], body)
    assert sink.stats == {"delivered": 3, "failed": 0, "dropped": 0}


def test_webhook_to_nowhere_does_not_block(tmp_path: Path) -> None:
    sink = WebhookSink(
        f"http://127.0.0.1:{free_port()}/", b"k", retries=1, backoff=0.01, timeout=0.5
    )
    t = time.perf_counter()
    sink.emit(event(0))
    assert time.perf_counter() - t < 0.05
    sink.close(timeout=5)
    assert sink.stats["failed"] == 1


@pytest.fixture
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.fail("mosquitto is not installed (scripts/system-deps.sh installs it)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


def subscribe(port: int, topic: str, into: list[tuple[str, dict[str, Any]]]) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
    c.on_subscribe = lambda *_: ready.set()
    c.on_message = lambda _c, _u, m: into.append((m.topic, json.loads(m.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    return c


def test_mqtt_subscriber_gets_every_event_on_its_type_topic(mosquitto: int) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    sub = subscribe(mosquitto, "facelens/door/#", got)
    bus = EventBus([MqttSink("127.0.0.1", mosquitto, "facelens/door")])
    bus.emit(event(1, "track_started"))
    bus.emit(event(2, "identified"))
    bus.close()
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    assert [t for t, _ in got] == ["facelens/door/track_started", "facelens/door/identified"]
    assert [m["frame"] for _, m in got] == [1, 2]
