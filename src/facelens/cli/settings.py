"""Settings the edges read from the environment (the library itself reads none).

| variable          | meaning                                   | default                      |
|-------------------|-------------------------------------------|------------------------------|
| FACELENS_HOME     | facelens's own folder (caches, gallery)   | ~/.facelens                  |
| FACELENS_GALLERY  | the gallery file commands use             | $FACELENS_HOME/gallery.db    |
| FACELENS_PROVIDER | ONNX Runtime execution provider           | cpu                          |
| FACELENS_THREADS  | ONNX Runtime threads (0 = one per core)   | 0                            |

Converted ONNX models are cached in $FACELENS_HOME/cache; models the user registers are kept
in $FACELENS_HOME/models.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("FACELENS_HOME") or Path.home() / ".facelens")


def default_gallery() -> Path | str:
    """$FACELENS_GALLERY (a file, or a ``postgresql://`` URL) or ~/.facelens/gallery.db."""
    env = os.environ.get("FACELENS_GALLERY")
    if env and env.startswith(("postgresql://", "postgres://")):
        return env
    return Path(env or home() / "gallery.db")


def cache_dir() -> Path:
    return home() / "cache"


def provider() -> str:
    return os.environ.get("FACELENS_PROVIDER") or "cpu"


def threads() -> int:
    value = os.environ.get("FACELENS_THREADS") or "0"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FACELENS_THREADS must be an integer, got {value!r}") from None


def models_dir() -> Path:
    """Where models the user registered (``facelens models add``) are kept."""
    return home() / "models"
