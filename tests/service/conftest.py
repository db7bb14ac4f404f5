"""A real uvicorn server on a free port, a store with keys of several tenants and scopes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import data_root

from facelens import Pipeline
from facelens.gallery import SqliteStore
from facelens.govern import KeyStore
from facelens.service.app import ServiceSettings, create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    store_path: Path
    keys: dict[str, str]

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@contextlib.contextmanager
def running_service(settings: ServiceSettings) -> Iterator[str]:
    """A real uvicorn server for ``settings`` on a free port, in a thread; yields its URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, Pipeline()),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:

    path = tmp_path_factory.mktemp("svc") / "store.db"
    store = SqliteStore(path)
    ks = KeyStore(store)
    keys = {}
    for name, tenant, scopes in [
        ("admin", "acme", ["admin"]),
        ("reader", "acme", ["detect", "verify"]),
        ("identify", "acme", ["identify"]),
        ("candidates", "acme", ["identify", "candidates"]),
        ("enroll", "acme", ["enroll", "identify", "delete", "audit:read"]),
        ("other", "globex", ["admin"]),
    ]:
        keys[name] = ks.create(tenant, scopes, name)[1]
    store.close()
    settings = ServiceSettings(
        gallery_path=path,
        identify_rate=2.0,
        identify_burst=3,
        # what the operator lets streams watch: the shared clips, and one closed port
        allow_sources=(str(data_root().resolve() / "video") + "/*", "rtsp://127.0.0.1:9/*"),
        max_subscribers=100,
    )
    with running_service(settings) as url:
        yield Service(url, path, keys)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed (scripts/system-deps.sh installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()
