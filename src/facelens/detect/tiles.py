"""Running a face detection network over an image of any size, in bounded memory.

A network pass costs memory and time in proportion to its pixels: a 40-megapixel photo in
one pass would take gigabytes. ``detect_pyramid`` runs the network on the image at scale
``2 ** upsample`` and then at half that, and half again, until the whole image fits in
``max_pixels``; every level bigger than that is cut into overlapping square tiles of
``tile`` pixels, each resized from its own window of the original (the scaled image is never
made whole). A face of any size is wholly inside a tile at the level where it measures less
than ``overlap`` pixels, or found on the last, whole level. Results are merged by
``suppress``: greedy non-maximum suppression that also drops a box mostly inside a
better-scoring one (a face cut by a tile border).

Example:
    >>> windows(100, 80, tile=64, overlap=16)
    [(0, 0, 64, 64), (36, 0, 100, 64), (0, 16, 64, 80), (36, 16, 100, 80)]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facelens.faces import Faces

__all__ = ["Pyramid", "detect_pyramid", "suppress", "windows"]


@dataclass(frozen=True)
class Pyramid:
    """How an image is cut for a network.

    Attributes:
        max_pixels: the most pixels one network pass may see; a level bigger than this is
            tiled. 2.2 MP holds a 1920x1080 frame whole (YuNet: about 0.3 GB of buffers).
        tile: side of a square tile, in network pixels (at most ``max_pixels`` of them).
        overlap: pixels two neighbouring tiles share: every face smaller than this at some
            level is wholly inside one of that level's tiles.
    """

    max_pixels: int = 2_200_000
    tile: int = 1408
    overlap: int = 192

    def __post_init__(self) -> None:
        if self.tile < 64 or self.overlap < 0 or self.overlap * 2 >= self.tile:
            raise ValueError(f"need tile >= 64 and 0 <= overlap < tile / 2, got {self}")
        if self.max_pixels < self.tile * self.tile:
            raise ValueError("max_pixels must hold at least one tile")


def windows(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows ``(x1, y1, x2, y2)`` covering ``width`` x ``height``; the last
    row and column are moved back to end at the edge, so none is smaller than a tile."""

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        step = tile - overlap
        out = list(range(0, n - tile, step))
        return [*out, n - tile]

    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in starts(height)
        for x in starts(width)
    ]


def suppress(faces: Faces, iou: float, cover: float = 0.7) -> Faces:
    """Greedy non-maximum suppression, best score first: a face is dropped when its box
    overlaps a kept one by more than ``iou`` (intersection over union) or when more than
    ``cover`` of its area lies inside a kept box of a face at least as large."""
    n = len(faces)
    if n < 2:
        return faces
    b = faces.xyxy.astype(np.float64)
    area = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    order = np.argsort(-faces.score, kind="stable")
    keep: list[int] = []
    for i in order:
        if keep:
            k = np.asarray(keep)
            w = np.clip(np.minimum(b[k, 2], b[i, 2]) - np.maximum(b[k, 0], b[i, 0]), 0, None)
            h = np.clip(np.minimum(b[k, 3], b[i, 3]) - np.maximum(b[k, 1], b[i, 1]), 0, None)
            inter = w * h
            union = area[k] + area[i] - inter
            ov = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
            inside = (inter / max(area[i], 1e-9) > cover) & (area[k] >= area[i])
            if np.any(ov > iou) or np.any(inside):
                continue
        keep.append(int(i))
    return faces[np.sort(np.asarray(keep))]


def _resize(image: NDArray[np.uint8], w: int, h: int) -> NDArray[np.uint8]:
    if (w, h) == (image.shape[1], image.shape[0]):
        return image
    import cv2

    shrink = w < image.shape[1]
    flag = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (w, h), interpolation=flag), np.uint8)


def _concat(parts: list[Faces]) -> Faces:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Faces.empty()
    kp = (
        np.concatenate([p.keypoints for p in parts if p.keypoints is not None])
        if all(p.keypoints is not None for p in parts)
        else None
    )
    return Faces(
        xyxy=np.concatenate([p.xyxy for p in parts]),
        score=np.concatenate([p.score for p in parts]),
        keypoints=kp,
    )


def detect_pyramid(
    image: NDArray[np.uint8],
    once: Callable[[NDArray[np.uint8]], Faces],
    pyramid: Pyramid,
    upsample: int = 0,
    nms_iou: float = 0.3,
) -> Faces:
    """Faces in ``image`` from the network pass ``once`` (an image -> its faces), over the
    levels and tiles ``pyramid`` asks for (see the module's description)."""
    h, w = image.shape[:2]
    scale = float(2**upsample)
    found: list[Faces] = []
    while True:
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        if sw * sh <= pyramid.max_pixels:
            found.append(once(_resize(image, sw, sh)).scaled(1 / scale))
            break
        for x1, y1, x2, y2 in windows(sw, sh, pyramid.tile, pyramid.overlap):
            # the tile's window in the original image, and that window at this level's scale
            ox1, oy1 = math.floor(x1 / scale), math.floor(y1 / scale)
            ox2, oy2 = min(w, math.ceil(x2 / scale)), min(h, math.ceil(y2 / scale))
            tw, th = max(1, round((ox2 - ox1) * scale)), max(1, round((oy2 - oy1) * scale))
            crop = np.ascontiguousarray(image[oy1:oy2, ox1:ox2])
            f = once(_resize(crop, tw, th))
            if len(f):
                fx, fy = (ox2 - ox1) / tw, (oy2 - oy1) / th
                k = np.array([fx, fy], np.float32)
                o = np.array([ox1, oy1], np.float32)
                found.append(
                    f.replace(
                        xyxy=f.xyxy * np.tile(k, 2) + np.tile(o, 2),
                        keypoints=None if f.keypoints is None else f.keypoints * k + o,
                    )
                )
        scale /= 2
    merged = _concat(found)
    return suppress(merged, nms_iou) if len(found) > 1 else merged
