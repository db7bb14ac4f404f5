"""``GET /v1/health``: versions, models with their checksums, the providers in use."""

import os
from typing import Any

from fastapi import APIRouter

from facelens.environment import describe
from facelens.gallery.stores import is_postgres_url
from facelens.service import schemas as S
from facelens.service.deps import State

router = APIRouter(tags=["service"])


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
        "queue": state.inference.stats(),
        "timings": state.timings.summary(),
    }
