"""Settings the edges read from the environment (the library itself reads none).

| variable          | meaning                                   | default                      |
|-------------------|-------------------------------------------|------------------------------|
| FACELENS_HOME     | facelens's own folder (caches, gallery)   | ~/.facelens                  |
| FACELENS_GALLERY  | the gallery file commands use             | $FACELENS_HOME/gallery.db    |
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("FACELENS_HOME") or Path.home() / ".facelens")


def default_gallery() -> Path:
    return Path(os.environ.get("FACELENS_GALLERY") or home() / "gallery.db")
