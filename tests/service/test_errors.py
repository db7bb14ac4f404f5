"""Unexpected errors: a 500 in the documented shape with a reference, the details in the log
only; a missing system tool is a 503 that names no path."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.service.conftest import free_port

from facelens import MissingDependencyError, Pipeline
from facelens.service.app import ServiceSettings, create_app


@contextlib.contextmanager
def serving(app: object) -> Iterator[str]:
    """The app on a loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_unexpected_error_leaks_nothing_and_can_be_found_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(ServiceSettings(gallery_path=tmp_path / "store.db"), Pipeline())

    @app.get("/v1/boom")
    def boom() -> None:  # a bug somewhere below a route
        raise RuntimeError("cannot read /srv/facelens/secret.key for postgresql://u:pw@db/x")

    with caplog.at_level(logging.ERROR), serving(app) as url:
        r = httpx.get(f"{url}/v1/boom", timeout=30)
    assert r.status_code == 500
    doc = r.json()
    assert set(doc) == {"error", "detail", "reasons"} and doc["error"] == "internal_error"
    assert "/srv" not in r.text and "pw" not in r.text and "Traceback" not in r.text
    ref = doc["detail"].split("reference ")[1].rstrip(")")
    logged = [rec for rec in caplog.records if ref in rec.getMessage()]
    assert logged and "secret.key" in logged[0].getMessage()
    assert "u:pw@" not in caplog.text  # credentials are redacted even in the log


def test_a_missing_system_tool_is_a_503_naming_no_path(tmp_path: Path) -> None:
    app = create_app(ServiceSettings(gallery_path=tmp_path / "store.db"), Pipeline())

    @app.get("/v1/needs-ffmpeg")
    def needs() -> None:
        raise MissingDependencyError("ffmpeg", "writing video", "apt-get install ffmpeg")

    with serving(app) as url:
        r = httpx.get(f"{url}/v1/needs-ffmpeg", timeout=30)
    assert r.status_code == 503
    assert r.json() == {
        "error": "dependency_missing",
        "detail": "a system component is not available",
        "reasons": [],
    }
