"""The LFW protocol files: ``pairs.txt`` (View 2, 10 folds) and ``pairsDev*.txt`` (View 1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelens.errors import InputError

__all__ = ["LfwPair", "lfw_image", "read_pairs"]


@dataclass(frozen=True)
class LfwPair:
    """One pair: two images, whether they show the same person, and its fold."""

    name_a: str
    index_a: int
    name_b: str
    index_b: int
    same: bool
    fold: int


def lfw_image(root: str | Path, name: str, index: int) -> Path:
    """Path of ``name``'s image number ``index`` under an LFW folder (``images/`` inside)."""
    root = Path(root)
    base = root / "images" if (root / "images").is_dir() else root
    return base / name / f"{name}_{index:04d}.jpg"


def read_pairs(path: str | Path) -> list[LfwPair]:
    """Parse a pairs file: a header (``folds pairs_per_class`` or a count), then lines of
    ``name i j`` (same person) or ``name_a i name_b j`` (different people).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "pairs.txt")
        >>> _ = open(p, "w").write("1\\t1\\nA\\t1\\t2\\nA\\t1\\tB\\t3\\n")
        >>> [(x.same, x.fold) for x in read_pairs(p)]
        [(True, 0), (False, 0)]
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    head = lines[0].split()
    folds, per_class = (int(head[0]), int(head[1])) if len(head) == 2 else (1, int(head[0]))
    pairs = []
    for n, line in enumerate(lines[1:]):
        p = line.split()
        if not p:
            continue
        fold = n // (2 * per_class) if folds > 1 else 0
        if len(p) == 3:
            pairs.append(LfwPair(p[0], int(p[1]), p[0], int(p[2]), True, fold))
        elif len(p) == 4:
            pairs.append(LfwPair(p[0], int(p[1]), p[2], int(p[3]), False, fold))
        else:
            raise InputError(str(path), f"line {n + 2} is not a pair: {line!r}")
    return pairs
