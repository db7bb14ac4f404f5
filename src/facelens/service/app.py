"""The facelens HTTP service: a versioned ``/v1`` API and the web UI, in one process.

Every route but ``/v1/health`` needs an API key (``Authorization: Bearer fl_...``) holding the
route's scope; galleries belong to the key's tenant, and another tenant's gallery or identity
answers 404 as if it did not exist. Embeddings never leave the process; scores are rounded to
two decimals.

The API is a router per resource (``facelens.service.routes``) over shared dependencies
(``deps``: state, key, scope, rate limit, image input); every error is mapped to its answer in
``errors``; ``state`` holds what a worker process keeps.
"""

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from facelens.pipeline import Pipeline
from facelens.service import schemas as S
from facelens.service.errors import Unexpected, install_handlers
from facelens.service.gate import Gate
from facelens.service.headers import SecurityHeaders
from facelens.service.routes import (
    alerts,
    archive,
    audit,
    faces,
    galleries,
    govern,
    health,
    keys,
    streams,
    thermal,
    web,
)
from facelens.service.settings import ServiceSettings, source_allowed
from facelens.service.state import ServiceState

__all__ = ["ServiceSettings", "create_app", "source_allowed"]

log = logging.getLogger(__name__)

ROUTERS = (health, faces, galleries, archive, thermal, audit, keys, govern, alerts, streams, web)


class RetentionTimer:
    """Enforces the galleries' retention policies every ``interval_s`` (and once at start),
    in a thread of its own: a purge never holds up a request."""

    def __init__(self, state: ServiceState, interval_s: float) -> None:
        self.state, self.interval_s = state, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        from facelens.govern import Retention

        while not self._stop.is_set():
            try:
                done = Retention(self.state.store, self.state.audit).purge("service:retention")
                self.state.alerts.expire()
                if done.receipts:
                    log.info("retention purge erased %d people", len(done.receipts))
            except Exception:  # the next round tries again; requests are not affected
                log.exception("retention purge failed")
            self._stop.wait(self.interval_s)


def create_app(settings: ServiceSettings, pipeline: Pipeline | None = None) -> FastAPI:
    """The ASGI application (models load on first use, or now if ``pipeline`` is loaded)."""
    from facelens import __version__

    state = ServiceState(settings, pipeline or Pipeline())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        purger = RetentionTimer(state, settings.purge_interval_s)
        purger.start()
        try:
            yield
        finally:
            purger.stop()
            state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="facelens",
        version=__version__,
        description="Privacy-first face recognition. Every route but /v1/health "
        "needs `Authorization: Bearer <API key>` with the route's scope.",
        # the API reference is the service's own page (``/docs``), not one loaded from a CDN
        docs_url=None,
        redoc_url=None,
        responses={
            401: {"model": S.ErrorOut},
            403: {"model": S.ErrorOut},
            422: {"model": S.ErrorOut},
        },
    )
    app.state.facelens = state
    app.add_middleware(Unexpected)
    # outermost: nothing before the key, bodies within their route's allowance and time;
    # X-Facelens-Worker (which worker answered: several may serve one PostgreSQL gallery)
    # and Server-Timing (the service's own time) on every answer
    routes = [r for module in ROUTERS for r in module.router.routes]
    app.add_middleware(Gate, routes=routes, state=state, worker=str(os.getpid()))
    install_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    app.add_middleware(SecurityHeaders)  # last added: outermost, so every answer has them
    return app
