"""Every detector on the hand-labelled faces, the group photos and the dogs; the default's
threshold; face_recognition in the same run.

    .venv/bin/python benchmarks/detection.py [--write docs/benchmarks.md] [--skip-slow]

1. Recall and precision at IoU 0.5 on dlib's hand-labelled faces: ``detection/testing.xml``
   (5 images, 25 faces) and ``training.xml`` (4 images, 18 faces), with the time per image;
   false alarms on ``detection/dogs.jpg`` (dogs, no person); faces found in the 23 photos of
   ``detection/`` and ``faces/face_recognition`` letterboxed to 640x480 (many faces of
   30-60 px there), against face_recognition's count; and the time of one 640x480 photo
   (``faces/face_recognition/obama-480p.jpg`` cropped to 640x480), median of 20 runs after a
   warm-up, 2 threads.
2. The score threshold of YuNet and CenterFace: the same figures at each candidate
   threshold, and the share of LFW photos (1,000 drawn with seed 0) in which the detector
   finds a face where LFW's own detector put one (IoU >= 0.3 with the central box).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import DetectConfig
from facelens.detect import make_detector
from facelens.eval.boxes import DetectionCounts, match_boxes, read_imglab
from facelens.eval.lfw import LFW_CENTRAL_BOX, read_people
from facelens.faces import box_iou
from facelens.runtime import RuntimeConfig
from onnx_speed import letterbox

CONFIGS = [
    ("yunet", 0),
    ("centerface", 0),
    ("onnx_mmod", 0),
    ("onnx_mmod", 1),
    ("dlib_hog", 0),
    ("dlib_hog", 1),
    ("dlib_cnn", 1),
]
SWEEP = {"yunet": (0.5, 0.6, 0.7, 0.8, 0.9), "centerface": (0.3, 0.4, 0.5, 0.6)}
Boxes = Callable[[np.ndarray], Any]


def group_photo_sources(data: Path) -> list[Path]:
    """The 23 photos of ``detection/`` and ``faces/face_recognition`` the speed and detection
    benchmarks letterbox to 640x480."""
    photos = data / "faces" / "face_recognition"
    sources = sorted((data / "detection").glob("*.jpg")) + [
        photos / n
        for n in (
            "obama.jpg",
            "obama2.jpg",
            "biden.jpg",
            "two_people.jpg",
            "alex-lacamoire.png",
            "lin-manuel-miranda.png",
        )
    ]
    return sources + sorted((photos / "knn_examples" / "test").glob("*.jpg"))


def group_photos(data: Path, tmp: Path) -> list[np.ndarray]:
    out = []
    for i, s in enumerate(group_photo_sources(data)):
        f = tmp / f"{i:02d}.jpg"
        letterbox(s, f)
        out.append(facelens.load_image(f))
    return out


def photo_640(data: Path) -> np.ndarray:
    img = facelens.load_image(data / "faces" / "face_recognition" / "obama-480p.jpg")
    return np.ascontiguousarray(img[:, (img.shape[1] - 640) // 2 :][:, :640])


def measure(
    boxes: Boxes,
    sets: dict[str, list[Any]],
    dogs: np.ndarray,
    groups: list[np.ndarray],
    img640: np.ndarray,
    lfw: list[np.ndarray],
    timed: bool,
) -> list[Any]:
    cells: list[Any] = []
    total = DetectionCounts()
    t = 0.0
    n = 0
    for images in sets.values():
        for li in images:
            img = facelens.load_image(li.path)
            t0 = time.perf_counter()
            b = boxes(img)
            t += time.perf_counter() - t0
            n += 1
            total = total + match_boxes(b, li.boxes, 0.5, li.ignore)
    cells += [
        f"{total.recall:.3f} ({total.tp}/{total.tp + total.fn})",
        f"{total.precision:.3f} ({total.tp}/{total.tp + total.fp})",
        f"{t / n * 1000:.0f}",
        len(boxes(dogs)),
        sum(len(boxes(g)) for g in groups),
    ]
    if lfw:
        central = np.array([LFW_CENTRAL_BOX])
        hit = sum(bool(len(b := boxes(im))) and box_iou(b, central).max() >= 0.3 for im in lfw)
        cells.append(f"{hit / len(lfw) * 100:.1f}")
    if timed:
        boxes(img640)
        runs = []
        for _ in range(20):
            t0 = time.perf_counter()
            boxes(img640)
            runs.append(time.perf_counter() - t0)
        cells.append(f"{statistics.median(runs) * 1000:.1f}")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", type=str, default=None)
    ap.add_argument("--skip-slow", action="store_true", help="skip dlib's own CNN")
    args = ap.parse_args()
    import face_recognition as fr

    data = data_root()
    det_dir = data / "detection"
    sets = {name: read_imglab(det_dir / name) for name in ("testing.xml", "training.xml")}
    dogs = facelens.load_image(det_dir / "dogs.jpg")
    img640 = photo_640(data)
    people = read_people(data / "lfw")
    keys = sorted((n, i) for n, idx in people.items() for i in idx)
    pick = np.random.default_rng(0).permutation(len(keys))[:1000]
    lfw = [
        facelens.load_image(
            data / "lfw" / "images" / keys[i][0] / f"{keys[i][0]}_{keys[i][1]:04d}.jpg"
        )
        for i in pick
    ]
    rt = RuntimeConfig(threads=2)
    with tempfile.TemporaryDirectory() as tmp:
        groups = group_photos(data, Path(tmp))

    def ours(backend: str, up: int, threshold: float | None = None) -> Boxes:
        det = make_detector(
            DetectConfig(backend=backend, upsample=up, threshold=threshold), runtime=rt
        )
        det.load()
        return lambda im: det.detect(im).xyxy

    def peer(im: np.ndarray) -> list[list[int]]:
        return [[lf, t, r + 1, b + 1] for t, r, b, lf in fr.face_locations(im)]

    rows = []
    for backend, up in CONFIGS:
        if backend == "dlib_cnn" and args.skip_slow:
            continue
        label = f"facelens {backend}, upsample {up}" + (
            " (default)" if (backend, up) == ("yunet", 0) else ""
        )
        rows.append([label, *measure(ours(backend, up), sets, dogs, groups, img640, [], True)])
        print(rows[-1], flush=True)
    rows.append(
        [
            "face_recognition face_locations (HOG, upsample 1)",
            *measure(peer, sets, dogs, groups, img640, [], True),
        ]
    )
    print(rows[-1], flush=True)
    sweep = []
    for backend, ths in SWEEP.items():
        for th in ths:
            sweep.append(
                [
                    backend,
                    th,
                    *measure(ours(backend, 0, th), sets, dogs, groups, img640, lfw, False),
                ]
            )
            print(sweep[-1], flush=True)
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/detection.py "
            "--write docs/benchmarks.md`. Labelled faces: the 43 of `testing.xml` and "
            "`training.xml`, a detection counts at IoU >= 0.5 with a label (one to one); "
            "group photos: the 23 photos of `detection/` and `faces/face_recognition` "
            "letterboxed to 640x480; 640x480: one photo, median of 20 runs, 2 threads.",
            md_table(
                [
                    "detector",
                    "recall",
                    "precision",
                    "ms / labelled image",
                    "false faces in dogs.jpg",
                    "faces found in the group photos",
                    "ms per 640x480",
                ],
                rows,
            ),
            "Score thresholds (upsample 0; LFW: share of 1,000 photos where the detector finds "
            "the face LFW's own detector found):",
            md_table(
                [
                    "detector",
                    "threshold",
                    "recall",
                    "precision",
                    "ms / labelled image",
                    "false faces in dogs.jpg",
                    "faces found in the group photos",
                    "LFW faces found %",
                ],
                sweep,
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "detection", body)


if __name__ == "__main__":
    main()
