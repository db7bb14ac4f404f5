"""``GET /v1/health``: versions, models with their checksums, the providers in use (no key,
and nothing of anyone's activity); ``GET /v1/health/load``: the worker's load and the
tenant's own timings."""

import os
from typing import Annotated, Any

from facelens.environment import describe
from facelens.gallery.stores import is_postgres_url
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import State, scope

router = gate.router(tags=["service"])


@router.get("/v1/health", response_model=S.HealthOut)
def health(state: State) -> dict[str, Any]:
    """Versions, models with their checksums, and the inference provider in use (the same
    document as ``facelens info``); needs no key."""
    doc = describe(state.pipeline)
    doc["models"] = [
        {k: m[k] for k in ("name", "file", "sha256", "licence", "status")} for m in doc["models"]
    ]
    return doc | {
        "status": "ok",
        "store": "postgresql" if is_postgres_url(state.settings.gallery_path) else "sqlite",
        "worker": os.getpid(),
    }


@router.get("/v1/health/load", response_model=S.LoadOut)
def load(state: State, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """How busy this worker is now, and this tenant's own requests: never another
    tenant's (their counts and timings would tell their activity)."""
    return {
        "worker": os.getpid(),
        "queue": state.inference.stats(key.tenant),
        "timings": state.timings.summary(key.tenant),
    }
