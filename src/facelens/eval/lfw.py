"""The LFW protocol files: ``pairs.txt`` (View 2, 10 folds) and ``pairsDev*.txt`` (View 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError

__all__ = [
    "LFW_CENTRAL_BOX",
    "LfwPair",
    "embed_lfw",
    "lfw_image",
    "pair_scores",
    "read_pairs",
    "read_people",
    "verification_report",
]


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
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "pairs.txt"
        >>> _ = p.write_text("1\\t1\\nA\\t1\\t2\\nA\\t1\\tB\\t3\\n")
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


# -- running the pipeline over LFW ----------------------------------------------------------

Key = tuple[str, int]

# The original LFW detector's box in the 250x250 deep-funneled images (data README): only for
# the separately reported "central box" variant, never for the real pipeline.
LFW_CENTRAL_BOX = (68.0, 68.0, 182.0, 182.0)


def read_people(root: str | Path) -> dict[str, list[int]]:
    """Every person of an LFW folder and their image numbers."""
    base = Path(root)
    base = base / "images" if (base / "images").is_dir() else base
    people: dict[str, list[int]] = {}
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        idx = sorted(int(f.stem.rsplit("_", 1)[1]) for f in d.glob(f"{d.name}_*.jpg"))
        if idx:
            people[d.name] = idx
    return people


def embed_lfw(
    pipe: Any,
    root: str | Path,
    keys: Iterable[Key],
    *,
    central_box: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[Key, NDArray[np.float32] | None]:
    """One embedding per image, as facelens handles a single-person photo for a user
    (``Pipeline.primary_embedding``: primary face, retried at a higher upsample when none is
    found); None when no face is found. ``central_box`` instead embeds LFW's known central
    box (a crutch, reported separately)."""
    from facelens.faces import Faces

    keys = list(keys)
    out: dict[Key, NDArray[np.float32] | None] = {}
    box = Faces(xyxy=np.array([LFW_CENTRAL_BOX], np.float32), score=np.ones(1, np.float32))
    for n, key in enumerate(keys):
        image, _ = pipe.decode(lfw_image(root, *key))
        e = pipe.embed(image, box) if central_box else pipe.primary_embedding(image)
        out[key] = None if e is None else e.vectors[0]
        if progress:
            progress(n + 1, len(keys))
    return out


def pair_scores(
    pairs: Sequence[LfwPair], emb: Mapping[Key, NDArray[np.float32] | None]
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64], int]:
    """(scores, same, folds, pairs with a missing face); a missing face scores -1 (the pair
    is then decided "different" at any threshold, as a user would get no match)."""
    s, missing = [], 0
    for p in pairs:
        a, b = emb.get((p.name_a, p.index_a)), emb.get((p.name_b, p.index_b))
        if a is None or b is None:
            missing += 1
            s.append(-1.0)
        else:
            s.append(float(np.dot(a, b)))
    return (
        np.array(s),
        np.array([p.same for p in pairs]),
        np.array([p.fold for p in pairs]),
        missing,
    )


def verification_report(
    pairs: Sequence[LfwPair],
    emb: Mapping[Key, NDArray[np.float32] | None],
    fixed_threshold: float | None = None,
) -> dict[str, Any]:
    """The View 2 figures: 10-fold accuracy, AUC, TAR at FAR 1e-2 and 1e-3.

    ``fixed_threshold`` is used when the pairs hold one fold only (a quick check)."""
    from facelens.eval.metrics import roc_auc, tar_at_far, ten_fold

    scores, same, folds, missing = pair_scores(pairs, emb)
    folds_result = ten_fold(scores, same, folds, fixed_threshold)
    tar = {f"{far:g}": tar_at_far(scores, same, far)[0] for far in (1e-2, 1e-3)}
    used = {k for p in pairs for k in ((p.name_a, p.index_a), (p.name_b, p.index_b))}
    return {
        "pairs": len(pairs),
        "accuracy_mean": folds_result.mean,
        "accuracy_std": folds_result.std,
        "fold_accuracies": list(folds_result.accuracies),
        "fold_thresholds": list(folds_result.thresholds),
        "auc": roc_auc(scores, same),
        "tar_at_far": tar,
        "images": len(used),
        "images_without_face": sum(1 for k in used if emb.get(k) is None),
        "pairs_with_missing_face": missing,
    }
