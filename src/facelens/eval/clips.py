"""Synthetic clips with known answers, built from LFW photos at test time (never stored):
the situations where a tracker carries a name to someone else.

- ``cut``: person A, a hard cut to person B at the same place, a hard cut to C, who is not
  enrolled (the backgrounds change with each cut, as a camera switch does);
- ``swap``: the same background throughout, A's face replaced by B's in the same place
  between two frames (no cut to see: only appearance can tell);
- ``crossing``: A and B walk past each other, B in front;
- ``reenter``: A walks out of the picture and comes back a second later; C stays;
- ``pan``: the camera pans slowly across A and B.

Each clip comes with its labels (every frame: each face's box and who it is) and the photos
to enrol, which are other photos of the same people than those in the clip. The face's box
in each photo is found once with the given detector, so the labels use that detector's idea
of a face box.

Example:
    >>> sorted(CLIPS)
    ['crossing', 'cut', 'pan', 'reenter', 'swap']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError
from facelens.eval.tracking import ClipLabels, LabelledFace
from facelens.faces import Faces

__all__ = ["CLIPS", "PEOPLE", "SyntheticClip", "build_clip"]

# Who plays in the clips: LFW people with many photos; the first three are enrolled from
# their photos 1-3 and appear as photo 10; "c" (not enrolled) appears as photo 10 too.
PEOPLE = {
    "a": "Colin_Powell",
    "b": "Tony_Blair",
    "d": "Gerhard_Schroeder",
    "c": "Ariel_Sharon",
}
ENROLLED = ("a", "b", "d")
SHOWN = 10
ENROL_PHOTOS = (1, 2, 3)

CLIPS = ("cut", "swap", "crossing", "reenter", "pan")
SIZE = (640, 360)
FPS = 25.0


@dataclass(frozen=True)
class SyntheticClip:
    """A clip written to ``path``, its labels, and who to enrol (name -> photos)."""

    name: str
    path: Path
    labels: ClipLabels
    enrol: dict[str, list[Path]]
    names: dict[str, str]  # person key -> the name enrolled


def _photo(lfw: Path, who: str, n: int) -> Path:
    person = PEOPLE[who]
    path = lfw / "images" / person / f"{person}_{n:04d}.jpg"
    if not path.is_file():
        raise InputError(str(path), "an LFW photo the synthetic clips need is missing")
    return path


class _Face:
    """A square crop of a photo around its face, and the face's box within the crop."""

    def __init__(self, image: NDArray[np.uint8], detect: Callable[[NDArray[np.uint8]], Faces]):
        faces = detect(image)
        if not len(faces):
            raise InputError("synthetic clip", "no face found in a photo it needs")
        box = faces.xyxy[faces.largest()].astype(np.float64)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = min(0.65 * max(box[2] - box[0], box[3] - box[1]), cx, cy)
        half = min(half, image.shape[1] - cx, image.shape[0] - cy)
        x0, y0 = round(cx - half), round(cy - half)
        side = round(2 * half)
        self.crop = image[y0 : y0 + side, x0 : x0 + side]
        self.box = (box - np.array([x0, y0, x0, y0])) / side  # in the crop, 0-1

    def patch(self, side: int) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
        import cv2

        p = cv2.resize(self.crop, (side, side), interpolation=cv2.INTER_AREA)
        return np.asarray(p, np.uint8), self.box * side


def _background(data: Path, width: int, offset: int) -> NDArray[np.uint8]:
    """A wide strip of a photo without people (``detection/dogs.jpg``)."""
    import cv2

    from facelens.decode.image import load_image

    img = load_image(data / "detection" / "dogs.jpg")
    h = SIZE[1]
    scale = max(h / img.shape[0], (width + offset) / img.shape[1])
    big = cv2.resize(img, (int(np.ceil(img.shape[1] * scale)), int(np.ceil(img.shape[0] * scale))))
    return np.ascontiguousarray(big[:h, offset : offset + width])


def _scene(bg: NDArray[np.uint8], k: int) -> NDArray[np.uint8]:
    """Another camera's picture of the place: the background turned and lit differently."""
    if k == 0:
        return bg
    tint = np.array([(1.25, 1.0, 0.7), (0.6, 0.8, 1.2)][(k - 1) % 2], np.float32)
    turned = bg[::-1] if k % 2 else bg[:, ::-1]
    return np.ascontiguousarray(np.clip(turned * tint, 0, 255).astype(np.uint8))


def _paste(
    frame: NDArray[np.uint8], patch: NDArray[np.uint8], x: float, y: float
) -> tuple[int, int]:
    """Paste ``patch`` with its top-left at (x, y), cut at the frame's edges."""
    h, w = frame.shape[:2]
    ph, pw = patch.shape[:2]
    xi, yi = round(x), round(y)
    x0, y0, x1, y1 = max(0, xi), max(0, yi), min(w, xi + pw), min(h, yi + ph)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - yi : y1 - yi, x0 - xi : x1 - xi]
    return xi, yi


class _Writer:
    def __init__(self, path: Path) -> None:
        import cv2

        path.parent.mkdir(parents=True, exist_ok=True)
        self.out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, SIZE)
        self.labels: dict[int, tuple[LabelledFace, ...]] = {}
        self.n = 0

    def add(self, frame: NDArray[np.uint8], faces: list[LabelledFace]) -> None:
        import cv2

        self.out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        w, h = SIZE
        shown = []
        for f in faces:  # in the picture; a face mostly out of it is too hard to count
            inside = _covered(f.box, (0.0, 0.0, float(w), float(h)))
            if inside > 0:
                shown.append(LabelledFace(f.box, f.who, f.hard or inside < 0.6))
        self.labels[self.n] = tuple(shown)
        self.n += 1

    def close(self) -> None:
        self.out.release()


def _at(box: NDArray[np.float64], x: float, y: float, who: str) -> LabelledFace:
    b = box + np.array([x, y, x, y])
    return LabelledFace((float(b[0]), float(b[1]), float(b[2]), float(b[3])), who)


def _jitter(i: int) -> tuple[float, float]:
    """A hand-held camera's small sway (pixels)."""
    return 2.0 * np.sin(i / 7.0), 1.5 * np.cos(i / 11.0)


def _cut(w: _Writer, faces: dict[str, _Face], bgs: list[NDArray[np.uint8]]) -> None:
    for k, who in enumerate(("a", "b", "c")):
        patch, box = faces[who].patch(220)
        for i in range(int(2 * FPS)):
            dx, dy = _jitter(i)
            frame = bgs[k].copy()
            x, y = _paste(frame, patch, 210 + dx, 70 + dy)
            w.add(frame, [_at(box, x, y, who)])


def _swap(w: _Writer, faces: dict[str, _Face], bg: NDArray[np.uint8]) -> None:
    for who in ("a", "b"):
        patch, box = faces[who].patch(150)
        for i in range(int(2 * FPS)):
            dx, dy = _jitter(i)
            frame = bg.copy()
            x, y = _paste(frame, patch, 245 + dx, 105 + dy)
            w.add(frame, [_at(box, x, y, who)])


def _crossing(w: _Writer, faces: dict[str, _Face], bg: NDArray[np.uint8]) -> None:
    pa, ba = faces["a"].patch(130)
    pb, bb = faces["b"].patch(130)
    n = int(3 * FPS)
    for i in range(n):
        t = i / (n - 1)
        frame = bg.copy()
        xa, ya = _paste(frame, pa, 30 + 450 * t, 80)
        xb, yb = _paste(frame, pb, 480 - 450 * t, 130)  # in front
        labels = [_at(bb, xb, yb, "b")]
        front = (xb, yb, xb + 130, yb + 130)
        fa = _at(ba, xa, ya, "a")
        hidden = _covered(fa.box, front)
        labels.append(LabelledFace(fa.box, "a", hidden > 0.3))
        w.add(frame, labels)


def _covered(box: tuple[float, float, float, float], by: tuple[float, ...]) -> float:
    iw = max(0.0, min(box[2], by[2]) - max(box[0], by[0]))
    ih = max(0.0, min(box[3], by[3]) - max(box[1], by[1]))
    return iw * ih / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)


def _reenter(w: _Writer, faces: dict[str, _Face], bg: NDArray[np.uint8]) -> None:
    pa, ba = faces["a"].patch(130)
    pc, bc = faces["c"].patch(130)
    n = int(4.4 * FPS)
    for i in range(n):
        t = i / FPS
        frame = bg.copy()
        xc, yc = _paste(frame, pc, 40, 110)
        labels = [_at(bc, xc, yc, "c")]
        if t < 1.6:  # walks out to the right...
            x = 300 + 250 * t
        elif t < 2.6:  # ...is gone a second...
            x = None
        else:  # ...and walks back in, stopping at 380
            x = max(380.0, 700 - 300 * (t - 2.6))
        if x is not None:
            xa, ya = _paste(frame, pa, x, 100)
            labels.append(_at(ba, xa, ya, "a"))
        w.add(frame, labels)


def _pan(w: _Writer, faces: dict[str, _Face], wide: NDArray[np.uint8]) -> None:
    pa, ba = faces["a"].patch(130)
    pb, bb = faces["b"].patch(130)
    canvas = wide.copy()
    _paste(canvas, pa, 380, 110)
    _paste(canvas, pb, 860, 90)
    n = int(4 * FPS)
    for i in range(n):
        off = round(480 * i / (n - 1))  # about 5 pixels a frame
        frame = np.ascontiguousarray(canvas[:, off : off + SIZE[0]])
        w.add(frame, [_at(ba, 380 - off, 110, "a"), _at(bb, 860 - off, 90, "b")])


def build_clip(
    name: str,
    data: Path,
    out: Path,
    detect: Callable[[NDArray[np.uint8]], Faces],
) -> SyntheticClip:
    """Write synthetic clip ``name`` (one of ``CLIPS``) to ``out`` (an .mp4 path) from the
    photos under ``data`` (``FACELENS_DATA``); ``detect`` finds the face in each photo."""
    from facelens.decode.image import load_image

    if name not in CLIPS:
        raise InputError(name, f"no such synthetic clip (known: {', '.join(CLIPS)})")
    lfw = data / "lfw"
    faces = {who: _Face(load_image(_photo(lfw, who, SHOWN)), detect) for who in PEOPLE}
    w = _Writer(out)
    try:
        if name == "cut":
            _cut(w, faces, [_scene(_background(data, SIZE[0], k * 120), k) for k in range(3)])
        elif name == "swap":
            _swap(w, faces, _background(data, SIZE[0], 60))
        elif name == "crossing":
            _crossing(w, faces, _background(data, SIZE[0], 30))
        elif name == "reenter":
            _reenter(w, faces, _background(data, SIZE[0], 90))
        else:
            _pan(w, faces, _background(data, SIZE[0] + 480, 0))
    finally:
        w.close()
    names = {who: PEOPLE[who].replace("_", " ") for who in PEOPLE}

    def key(who: str) -> str:
        return who if who in ENROLLED else f"other:{who}"

    frames = {
        f: tuple(LabelledFace(x.box, key(x.who), x.hard) for x in shown)
        for f, shown in w.labels.items()
    }
    labels = ClipLabels(frames, {who: names[who] for who in ENROLLED})
    enrol = {names[who]: [_photo(lfw, who, n) for n in ENROL_PHOTOS] for who in ENROLLED}
    return SyntheticClip(name, out, labels, enrol, {who: names[who] for who in ENROLLED})
