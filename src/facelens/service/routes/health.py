"""``GET /v1/health``: versions, models with their checksums, the providers in use (no key,
and nothing of anyone's activity); ``GET /v1/health/load``: the worker's load and the
tenant's own timings."""

import os
import time
from typing import Annotated, Any

import anyio.to_thread

from facelens.environment import describe
from facelens.gallery.stores import is_postgres_url
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import State, scope
from facelens.service.state import ServiceState

router = gate.router(tags=["service"])


# how long the health document is reused (it lists every model with its checksum, and
# packages' versions: ~10 ms to build, and unchanged while the process runs)
HEALTH_TTL_S = 60.0
_cached: dict[int, tuple[float, dict[str, Any]]] = {}


def _document(state: ServiceState) -> dict[str, Any]:
    doc = describe(state.pipeline)
    doc["models"] = [
        {k: m[k] for k in ("name", "file", "sha256", "licence", "status")} for m in doc["models"]
    ]
    return doc | {
        "status": "ok",
        "store": "postgresql" if is_postgres_url(state.settings.gallery_path) else "sqlite",
        "worker": os.getpid(),
    }


@router.get("/v1/health", response_model=S.HealthOut)
async def health(state: State) -> dict[str, Any]:
    """Versions, models with their checksums, and the inference provider in use (the same
    document as ``facelens info``); needs no key. Answered on the event loop from a document
    made at most a minute ago (made in a thread), so it stays quick however busy the worker's
    threads are."""
    hit = _cached.get(id(state))
    if hit is None or time.monotonic() - hit[0] > HEALTH_TTL_S:
        hit = (time.monotonic(), await anyio.to_thread.run_sync(_document, state))
        _cached[id(state)] = hit
    return hit[1]


@router.get("/v1/health/load", response_model=S.LoadOut)
def load(state: State, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """How busy this worker is now, and this tenant's own requests: never another
    tenant's (their counts and timings would tell their activity)."""
    return {
        "worker": os.getpid(),
        "queue": state.inference.stats(key.tenant),
        "timings": state.timings.summary(key.tenant),
    }
