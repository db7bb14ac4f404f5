"""Detection accuracy: hand-labelled boxes (dlib imglab XML) and matching at an IoU."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facelens.errors import InputError
from facelens.faces import box_iou

__all__ = ["DetectionCounts", "LabelledImage", "match_boxes", "pair_boxes", "read_imglab"]


@dataclass(frozen=True, eq=False)
class LabelledImage:
    """One image and its true face boxes, ``[x1, y1, x2, y2]`` (x2 exclusive)."""

    path: Path
    boxes: NDArray[np.float32]
    ignore: NDArray[np.bool_]


def read_imglab(path: str | Path) -> list[LabelledImage]:
    """Parse dlib's imglab XML (``<box top left width height [ignore]>``)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise InputError(str(path), f"not a readable imglab XML file ({e})") from None
    out = []
    for im in root.iter("image"):
        boxes, ignore = [], []
        for b in im.iter("box"):
            t, left = float(b.get("top", 0)), float(b.get("left", 0))
            w, h = float(b.get("width", 0)), float(b.get("height", 0))
            boxes.append([left, t, left + w, t + h])
            ignore.append(b.get("ignore", "0") == "1")
        out.append(
            LabelledImage(
                path.parent / im.get("file", ""),
                np.asarray(boxes, np.float32).reshape(-1, 4),
                np.asarray(ignore, bool),
            )
        )
    return out


@dataclass(frozen=True)
class DetectionCounts:
    """True positives, false positives and misses, summed over images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, o: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(self.tp + o.tp, self.fp + o.fp, self.fn + o.fn)

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0


def pair_boxes(pred: ArrayLike, truth: ArrayLike, iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (pred index, truth index) by IoU, best first, at least ``iou``.

    Example:
        >>> pair_boxes([[0, 0, 10, 10], [50, 50, 60, 60]], [[1, 1, 10, 10]], 0.5)
        [(0, 0)]
    """
    p = np.asarray(pred, np.float64).reshape(-1, 4)
    t = np.asarray(truth, np.float64).reshape(-1, 4)
    if not len(p) or not len(t):
        return []
    m = box_iou(p, t)
    pairs: list[tuple[int, int]] = []
    used_p, used_t = set(), set()
    for flat in np.argsort(-m, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(t))
        if m[i, j] < iou:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        pairs.append((i, j))
    return pairs


def match_boxes(
    pred: ArrayLike, truth: ArrayLike, iou: float = 0.5, ignore: ArrayLike | None = None
) -> DetectionCounts:
    """Greedy one-to-one matching by IoU (best pairs first); detections matching an ignored
    truth box count neither way.

    Example:
        >>> match_boxes([[0, 0, 10, 10], [50, 50, 60, 60]], [[1, 1, 10, 10]])
        DetectionCounts(tp=1, fp=1, fn=0)
    """
    t = np.asarray(truth, np.float64).reshape(-1, 4)
    ign = np.zeros(len(t), bool) if ignore is None else np.asarray(ignore, bool)
    pairs = pair_boxes(pred, t, iou)
    tp = sum(1 for _, j in pairs if not ign[j])
    fp = len(np.asarray(pred, np.float64).reshape(-1, 4)) - len(pairs)
    fn = int((~ign).sum()) - tp
    return DetectionCounts(tp, fp, fn)
