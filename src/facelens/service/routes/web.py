"""The web UI (one page and its static files) and the API reference (``/docs``, a page of
the service's own that reads ``/openapi.json``: nothing is loaded from another host)."""

from pathlib import Path

from fastapi.responses import FileResponse

from facelens.service import gate

STATIC = Path(__file__).parent.parent / "static"

router = gate.router(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/docs")
def docs() -> FileResponse:
    return FileResponse(STATIC / "docs.html")


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
