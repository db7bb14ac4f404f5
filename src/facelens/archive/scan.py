"""Finding the photos (and videos) under local folders: path, size and modification time.

Only local paths are walked: an address (``http://...``, ``rtsp://...``) is refused, since an
archive is the user's own files, not a crawl. Folders are walked in name order without
following links to folders (no loops); a link to a file counts as that file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from facelens.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Candidate", "scan"]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg"})


@dataclass(frozen=True)
class Candidate:
    """A file that may need indexing.

    Attributes:
        path: absolute path.
        size: bytes.
        mtime_ns: modification time, nanoseconds since the epoch.
        kind: ``image`` or ``video``.
    """

    path: str
    size: int
    mtime_ns: int
    kind: str


def check_root(root: str | Path) -> Path:
    """An absolute local folder or file, or ``InputError`` saying what is wrong."""
    text = str(root)
    if "://" in text or text.startswith(("rtsp:", "http:", "https:", "ftp:")):
        raise InputError(text, "only local folders and files are indexed, not addresses")
    p = Path(os.path.abspath(os.path.expanduser(text)))
    if not p.exists():
        raise InputError(text, "no such file or folder")
    return p


def _kind(name: str, videos: bool) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if videos and suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _candidate(path: str, kind: str) -> Candidate | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # gone between listing and stat, or unreadable: not a photo we can index
    if not os.path.isfile(path):
        return None
    return Candidate(path, int(st.st_size), int(st.st_mtime_ns), kind)


def scan(roots: Sequence[str | Path], videos: bool = False) -> Iterator[Candidate]:
    """Every photo (and, with ``videos``, every video) under ``roots``, in name order.

    Raises:
        InputError: a root is an address or does not exist (checked before any is walked).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.jpg").write_bytes(b"x")
        >>> [c.path.endswith("a.jpg") for c in scan([d])]
        [True]
    """
    checked = [check_root(r) for r in roots]
    seen: set[str] = set()
    for root in checked:
        if root.is_file():
            c = _candidate(str(root), _kind(root.name, videos) or "image")
            if c and c.path not in seen:
                seen.add(c.path)
                yield c
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                kind = _kind(name, videos)
                path = os.path.join(folder, name)
                if kind is None or path in seen:
                    continue
                c = _candidate(path, kind)
                if c:
                    seen.add(path)
                    yield c
