"""The web UI: one page and its static files."""

from pathlib import Path

from fastapi.responses import FileResponse

from facelens.service import gate

STATIC = Path(__file__).parent.parent / "static"

router = gate.router(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")
