"""Unexpected errors: a 500 in the documented shape with a reference, the details in the log
only."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.service.conftest import free_port

from facelens import Pipeline
from facelens.service.app import ServiceSettings, create_app


def test_an_unexpected_error_leaks_nothing_and_can_be_found_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(ServiceSettings(gallery_path=tmp_path / "store.db"), Pipeline())

    @app.get("/v1/boom")
    def boom() -> None:  # a bug somewhere below a route
        raise RuntimeError("cannot read /srv/facelens/secret.key for postgresql://u:pw@db/x")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    with caplog.at_level(logging.ERROR):
        thread.start()
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/boom", timeout=30)
        finally:
            server.should_exit = True
            thread.join(10)
    assert r.status_code == 500
    doc = r.json()
    assert set(doc) == {"error", "detail", "reasons"} and doc["error"] == "internal_error"
    assert "/srv" not in r.text and "pw" not in r.text and "Traceback" not in r.text
    ref = doc["detail"].split("reference ")[1].rstrip(")")
    logged = [rec for rec in caplog.records if ref in rec.getMessage()]
    assert logged and "secret.key" in logged[0].getMessage()
    assert "u:pw@" not in caplog.text  # credentials are redacted even in the log
