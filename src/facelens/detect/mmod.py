"""dlib's MMOD detector around the network: image pyramid in, boxes out.

The network runs once on a single "tiled pyramid" image; this module builds that image and
turns the network's score map back into boxes, reproducing dlib exactly
(``dnn/input.h`` input_rgb_image_pyramid, ``image_transforms/image_pyramid.h``,
``image_transforms/interpolation.h`` resize_image, ``dnn/loss.h`` loss_mmod_::to_label,
``image_processing/box_overlap_testing.h``, and the Python binding's upsampling):

1. (upsample > 0) the image is enlarged with ``pyramid_up`` (``pyramid_down<2>`` geometry).
2. Levels shrink by 5/6 (``pyramid_down<6>``) while at least 5 rows remain; they are laid out
   in one image, 10 px apart with an 11 px border, in dlib's two-column arrangement. Each
   level is a bilinear resize of the previous one, corner-aligned
   (``scale = (in - 1) / (out - 1)``), of the mean-subtracted, /256 float image; the gaps
   are 0.
3. Each score > threshold at output cell (c, r) maps back through the convolutions
   (``p * stride - padding + kernel // 2``) to a point of the tiled image, becomes an 80x80
   window (``centered_drect``), is assigned to the nearest pyramid level, and is scaled up
   to the original image (``point_up``: ``p * 6/5 + 0.3`` per level).
4. Detections are sorted by score and kept greedily unless they overlap a kept one:
   rounded integer boxes, intersection over the *bounding box of both* above the file's
   IoU threshold (0.338), or one covering the other above the coverage threshold (1.0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["MmodGeometry", "boxes_from_scores", "pyramid_up", "tiled_pyramid"]

Rect = tuple[int, int, int, int]  # dlib rectangle: left, top, right, bottom (inclusive)
DRect = tuple[float, float, float, float]

PYRAMID_N = 6  # pyramid_down<6>
MIN_LEVEL_HEIGHT = 5


@dataclass(frozen=True)
class MmodGeometry:
    """What the post-processing needs to know about a converted MMOD network.

    Attributes:
        convs: (kernel, stride, padding) of each convolution, innermost first.
        window: detector window (width, height).
        mean: mean RGB colour subtracted by the input layer.
        padding: pixels between pyramid levels.
        outer_padding: border around the tiled image.
        nms_iou: overlap (intersection / bounding box) above which a detection is dropped.
        nms_covered: coverage above which a detection is dropped.
    """

    convs: tuple[tuple[int, int, int], ...]
    window: tuple[int, int]
    mean: tuple[float, float, float]
    padding: int
    outer_padding: int
    nms_iou: float
    nms_covered: float


def _rect_h(r: Rect) -> int:
    return r[3] - r[1] + 1


def _rect_w(r: Rect) -> int:
    return r[2] - r[0] + 1


def pyramid_rects(nr: int, nc: int, padding: int, outer: int) -> tuple[list[Rect], int, int]:
    """Where each pyramid level goes in the tiled image, and that image's size."""
    rate = (PYRAMID_N - 1.0) / PYRAMID_N
    rects: list[Rect] = [(0, 0, nc - 1, nr - 1)]
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        rects.append((0, 0, nc - 1, nr - 1))
    total_height = sum(_rect_h(r) + padding for r in rects) - padding * 2
    height = prev_width = 0
    first_w, first_h = _rect_w(rects[0]), _rect_h(rects[0])
    for r in rects:
        if (
            _rect_w(r) <= first_w - prev_width - padding
            and (height - first_h) * 2 >= total_height - first_h
        ):
            break
        height += _rect_h(r) + padding
        prev_width = _rect_w(r)
    height -= padding
    width = first_w
    out_nr, out_nc = height + outer * 2, width + outer * 2
    y = outer
    i = 0
    while y < height + outer and i < len(rects):
        left, top, right, bottom = rects[i]
        rects[i] = (left + outer, top + y, right + outer, bottom + y)
        y += _rect_h(rects[i]) + padding
        i += 1
    y -= padding
    while i < len(rects):
        p1x, p1y = outer + width - 1, y - 1
        rect = (p1x - rects[i][2], p1y - rects[i][3], p1x, p1y)
        r0 = rects[0]
        if max(r0[0], rect[0]) <= min(r0[2], rect[2]) and max(r0[1], rect[1]) <= min(
            r0[3], rect[3]
        ):
            break
        rects[i] = rect
        y -= _rect_h(rect) + padding
        i += 1
    return rects[:i], out_nr, out_nc


def _axis(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    scale = (n_in - 1) / max(n_out - 1, 1)
    pos = np.arange(n_out) * scale
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, pos - lo


def resize_bilinear(src: NDArray[np.float32], out_h: int, out_w: int) -> NDArray[np.float32]:
    """dlib's ``resize_image`` (bilinear, corner-aligned) of a (C, H, W) float image."""
    top, bottom, fy = _axis(src.shape[1], out_h)
    left, right, fx = _axis(src.shape[2], out_w)
    fy32 = fy.astype(np.float32)[None, :, None]
    fx32 = fx.astype(np.float32)[None, None, :]
    rows = src[:, top] * (1 - fy32) + src[:, bottom] * fy32
    return np.ascontiguousarray(rows[:, :, left] * (1 - fx32) + rows[:, :, right] * fx32)


Resize = Callable[[NDArray[np.float32], int, int], NDArray[np.float32]]


def tiled_pyramid(
    image: NDArray[np.uint8],
    geometry: MmodGeometry,
    resize: Resize = resize_bilinear,
    buffer: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.float32], list[Rect]]:
    """The network's (1, 3, NR, NC) input for an RGB image, and each level's rectangle.

    ``resize`` must be ``resize_bilinear`` or compute the same (the ONNX detector passes an
    onnxruntime ``Resize`` with ``align_corners``, the same mapping, several times faster).
    ``buffer``, when of the right shape, is reused: a freshly allocated 10+ MB array costs
    the network tens of milliseconds in page faults on its first read (video frames all
    have the same size, so one buffer serves a whole stream).
    """
    h, w = image.shape[:2]
    rects, out_nr, out_nc = pyramid_rects(h, w, geometry.padding, geometry.outer_padding)
    if buffer is not None and buffer.shape == (1, 3, out_nr, out_nc):
        data = buffer
        data.fill(0)
    else:
        data = np.zeros((1, 3, out_nr, out_nc), np.float32)
    mean = np.asarray(geometry.mean, np.float32)
    level = ((image.astype(np.float32) - mean) / np.float32(256)).transpose(2, 0, 1)
    l0, t0, r0, b0 = rects[0]
    data[0, :, t0 : b0 + 1, l0 : r0 + 1] = level
    for r in rects[1:]:
        level = resize(level, _rect_h(r), _rect_w(r))
        data[0, :, r[1] : r[3] + 1, r[0] : r[2] + 1] = level
    return data, rects


def pyramid_up(image: NDArray[np.uint8], resize: Resize = resize_bilinear) -> NDArray[np.uint8]:
    """dlib's ``pyramid_up`` with ``pyramid_down<2>``: about twice the size, bilinear,
    corner-aligned, truncated to uint8."""
    h, w = image.shape[:2]
    # rect_up of (0, 0, w-1, h-1): corners (p + (1.25, 0.75)) * 2, rounded half away from 0
    right = math.floor((w - 1 + 1.25) * 2 + 0.5)
    bottom = math.floor((h - 1 + 0.75) * 2 + 0.5)
    src = image.astype(np.float32).transpose(2, 0, 1)
    out = resize(np.ascontiguousarray(src), bottom + 1, right + 1)
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8).transpose(1, 2, 0))


def _nearest_rect(rects: Sequence[Rect], x: float, y: float) -> int:
    px, py = math.floor(x + 0.5), math.floor(y + 0.5)
    best, best_d = 0, math.inf
    for i, (left, top, right, bottom) in enumerate(rects):
        if left <= px <= right and top <= py <= bottom:
            return i
        nx, ny = min(max(px, left), right), min(max(py, top), bottom)
        d = math.hypot(nx - px, ny - py)
        if d < best_d:
            best, best_d = i, d
    return best


def _lround(v: float) -> int:
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def _area(r: Rect) -> int:
    w, h = r[2] - r[0] + 1, r[3] - r[1] + 1
    return w * h if w > 0 and h > 0 else 0


def _overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return inner / outer > iou or inner / _area(a) > covered or inner / _area(b) > covered


def boxes_from_scores(
    scores: NDArray[np.float32],
    rects: Sequence[Rect],
    geometry: MmodGeometry,
    threshold: float = 0.0,
    upsampled: int = 0,
) -> tuple[list[Rect], list[float]]:
    """Boxes (dlib rectangles in the original image) and scores from the score map."""
    rows, cols = np.nonzero(scores > threshold)
    if rows.size == 0:
        return [], []
    values = scores[rows, cols].astype(np.float64)
    px, py = cols.astype(np.float64), rows.astype(np.float64)
    for k, s, p in reversed(geometry.convs):
        px = px * s - p + k // 2
        py = py * s - p + k // 2
    hw, hh = (geometry.window[0] - 1) / 2, (geometry.window[1] - 1) / 2
    ratio = PYRAMID_N / (PYRAMID_N - 1.0)
    dets: list[tuple[float, DRect]] = []
    for v, x, y in zip(values, px, py, strict=True):
        level = _nearest_rect(rects, x, y)
        ox, oy = rects[level][0], rects[level][1]
        corners = [x - hw - ox, y - hh - oy, x + hw - ox, y + hh - oy]
        for _ in range(level):
            corners = [c * ratio + 0.3 for c in corners]
        dets.append((float(v), (corners[0], corners[1], corners[2], corners[3])))
    dets.sort(key=lambda d: d[0], reverse=True)
    kept: list[Rect] = []
    kept_scores: list[float] = []
    for v, d in dets:
        r = (_lround(d[0]), _lround(d[1]), _lround(d[2]), _lround(d[3]))
        if any(_overlaps(k, r, geometry.nms_iou, geometry.nms_covered) for k in kept):
            continue
        kept.append(r)
        kept_scores.append(v)
    if upsampled:
        down = []
        for r in kept:
            c = [float(v) for v in r]
            for _ in range(upsampled):
                c = [c[0] / 2 - 1.25, c[1] / 2 - 0.75, c[2] / 2 - 1.25, c[3] / 2 - 0.75]
            down.append((_lround(c[0]), _lround(c[1]), _lround(c[2]), _lround(c[3])))
        kept = down
    return kept, kept_scores
