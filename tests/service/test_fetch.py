"""service.fetch: what an ``image_url`` may reach (a real HTTP server on loopback)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.service.fetch import FetchError, fetch


@pytest.fixture(scope="module")
def server(fr_photos: Path) -> Iterator[str]:
    photo = (fr_photos / "obama.jpg").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/drip"):  # a byte a second, of the headers or the body
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                if self.path == "/drip-body":
                    self.wfile.write(b"Content-Length: 100000\r\n\r\n")
                for _ in range(40):
                    try:
                        self.wfile.write(b"x" if self.path == "/drip-body" else b"X-A: b\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(1)
                return
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://127.0.0.1/x.jpg", "only http and https"),
        ("gopher://127.0.0.1:70/_x", "only http and https"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),  # cloud metadata
        ("http://localhost/x.jpg", "not a public address"),
        ("http://[::1]/x.jpg", "not a public address"),
        ("http://10.1.2.3/x.jpg", "not a public address"),
        ("http://[::ffff:127.0.0.1]/x.jpg", "not a public address"),
    ],
)
def test_urls_that_would_reach_the_host_or_its_network_are_refused(url: str, reason: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(FetchError, match=reason):
        fetch(url, 1_000_000)
    assert time.perf_counter() - t0 < 5  # refused before any connection


def test_loopback_is_refused_even_when_something_answers_there(server: str) -> None:
    with pytest.raises(FetchError, match="not a public address"):
        fetch(server + "/photo.jpg", 1_000_000)


def test_where_allowed_the_image_comes_back_within_its_limits(server: str, fr_photos: Path) -> None:
    photo = (fr_photos / "obama.jpg").read_bytes()
    assert fetch(server + "/photo.jpg", 1_000_000, allow_private=True) == photo
    with pytest.raises(FetchError, match="more than 1000 bytes"):
        fetch(server + "/photo.jpg", 1000, allow_private=True)
    with pytest.raises(FetchError, match="redirects are not followed"):
        fetch(server + "/redirect", 1_000_000, allow_private=True)


def test_credentials_in_the_url_are_not_repeated() -> None:
    with pytest.raises(FetchError) as e:
        fetch("ftp://user:s3cret@example.com/x.jpg", 1000)
    assert "s3cret" not in str(e.value) and "ftp://***@example.com/x.jpg" in str(e.value)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_server_dripping_a_byte_a_second_is_cut_off_at_the_deadline(
    server: str, where: str
) -> None:
    t0 = time.perf_counter()
    with pytest.raises(FetchError, match="took longer than 3 s"):
        fetch(f"{server}/drip-{where}", 1_000_000, timeout=3.0, allow_private=True)
    assert time.perf_counter() - t0 < 4.5  # it held a fetch with timeout=3 for 20-35 s
