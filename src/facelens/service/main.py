"""The ASGI entry point uvicorn imports (``facelens.service.main:app``), configured from the
environment that ``facelens serve`` sets (so each worker process builds the same app)."""

from __future__ import annotations

from facelens.environment import (
    default_gallery,
    make_pipeline,
    serve_settings,
    template_key,
    webhook_secret,
)
from facelens.service.app import ServiceSettings, create_app
from facelens.service.server import prepare_process

prepare_process()
_s = serve_settings()
app = create_app(
    ServiceSettings(
        gallery_path=_s["gallery"] or default_gallery(),
        template_key=template_key(),
        read_replica=_s["read_replica"] or None,
        allow_image_urls=_s["urls"] == "1",
        identify_rate=float(_s["rate"] or 5.0),
        identify_burst=max(1, int(2 * float(_s["rate"] or 5.0))),
        purge_interval_s=float(_s["purge_interval"] or 3600.0),
        event_sinks=tuple(p for p in _s["events"].split("\n") if p),
        webhook_secret=webhook_secret(),
        allow_sources=tuple(p for p in _s["sources"].split("\n") if p),
    ),
    make_pipeline(detector=_s["detector"] or None, model=_s["model"] or None),
)
