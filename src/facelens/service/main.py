"""The ASGI application factory uvicorn calls in each worker process
(``uvicorn facelens.service.main:build --factory``), configured from the environment that
``facelens serve`` sets (so every worker builds the same app).

Importing this module does nothing: the app, its store and its models are made when uvicorn
calls ``build``, not when a tool (pytest's doctest collection, a linter) imports the module.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build"]


def build() -> Any:
    """The service as ``facelens serve`` configured it: raise this worker's descriptor limit,
    quiet its log (``facelens.service.server.prepare_process``), open the gallery's store."""
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
    s = serve_settings()
    return create_app(
        ServiceSettings(
            gallery_path=s["gallery"] or default_gallery(),
            template_key=template_key(),
            read_replica=s["read_replica"] or None,
            allow_image_urls=s["urls"] == "1",
            identify_rate=float(s["rate"] or 5.0),
            identify_burst=max(1, int(2 * float(s["rate"] or 5.0))),
            purge_interval_s=float(s["purge_interval"] or 3600.0),
            event_sinks=tuple(p for p in s["events"].split("\n") if p),
            webhook_secret=webhook_secret(),
            allow_sources=tuple(p for p in s["sources"].split("\n") if p),
            model=s["model"] or None,
        ),
        make_pipeline(detector=s["detector"] or None, model=s["model"] or None),
    )
