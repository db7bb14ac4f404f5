"""The ASGI entry point uvicorn imports (``facelens.service.main:app``), configured from the
environment that ``facelens serve`` sets (so each worker process builds the same app)."""

from __future__ import annotations

import os

from facelens.environment import default_gallery, make_pipeline, template_key
from facelens.service.app import ServiceSettings, create_app

app = create_app(
    ServiceSettings(
        gallery_path=os.environ.get("FACELENS_SERVE_GALLERY") or default_gallery(),
        template_key=template_key(),
        read_replica=os.environ.get("FACELENS_SERVE_READ_REPLICA") or None,
        allow_image_urls=os.environ.get("FACELENS_SERVE_URLS") == "1",
        identify_rate=float(os.environ.get("FACELENS_SERVE_RATE") or 5.0),
        identify_burst=max(1, int(2 * float(os.environ.get("FACELENS_SERVE_RATE") or 5.0))),
        purge_interval_s=float(os.environ.get("FACELENS_SERVE_PURGE_INTERVAL") or 3600.0),
        event_sinks=tuple(
            p for p in (os.environ.get("FACELENS_SERVE_EVENTS") or "").split("\n") if p
        ),
        webhook_secret=(os.environ.get("FACELENS_WEBHOOK_SECRET") or "").encode() or None,
        allow_sources=tuple(
            p for p in (os.environ.get("FACELENS_SERVE_SOURCES") or "").split("\n") if p
        ),
        model=os.environ.get("FACELENS_SERVE_MODEL") or None,
    ),
    make_pipeline(
        detector=os.environ.get("FACELENS_SERVE_DETECTOR") or None,
        model=os.environ.get("FACELENS_SERVE_MODEL") or None,
    ),
)
