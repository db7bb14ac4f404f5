"""Where the quality gate's thresholds come from.

    .venv/bin/python benchmarks/quality_gate.py [--write docs/quality.md] [--pairs 300]

1. Distribution of every measure over the faces of LFW's pairsDevTrain images (photos that
   recognition handles well): each threshold sits at or beyond the 1st/99th percentile, so
   ordinary photos pass.
2. What the failure modes cost: half the pairsDevTest same-person pairs and as many
   different-person pairs, with the second image degraded (shrunk to a given eye distance,
   or blurred), verified at the "balanced" threshold. The gate's size and sharpness limits
   sit where accuracy has clearly fallen.
"""

from __future__ import annotations

import argparse
import random

import cv2
import numpy as np

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import Pipeline, QualityGate
from facelens.eval import lfw_image, read_pairs
from facelens.match import resolve_threshold

MEASURES = [
    "inter_eye_px",
    "sharpness",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "brightness",
    "clipped",
]


def largest(pipe: Pipeline, img):  # type: ignore[no-untyped-def]
    faces = pipe.detect(img)
    return faces[faces.largest()] if len(faces) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    ap.add_argument("--pairs", type=int, default=300, help="pairs of each kind in part 2")
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    pipe = Pipeline()
    gate = QualityGate()

    # 1. distributions on clean LFW faces
    train = read_pairs(lfw / "pairsDevTrain.txt")
    keys = sorted({(p.name_a, p.index_a) for p in train} | {(p.name_b, p.index_b) for p in train})
    rows_q: dict[str, list[float]] = {m: [] for m in MEASURES}
    failing = 0
    for name, idx in keys:
        img = facelens.load_image(lfw_image(lfw, name, idx))
        f = largest(pipe, img)
        if f is None:
            continue
        q = pipe.quality(img, pipe.align(img, f))
        failing += bool(gate.reasons(q, 0))
        for m in MEASURES:
            rows_q[m].append(float(getattr(q, m)[0]))
    pct = [0.5, 1, 5, 50, 95, 99, 99.5]
    dist = [[m] + [f"{v:.2f}" for v in np.percentile(rows_q[m], pct)] for m in MEASURES]
    n_faces = len(rows_q["sharpness"])

    # 2. accuracy under degradation
    test = read_pairs(lfw / "pairsDevTest.txt")
    rng = random.Random(0)
    sample = rng.sample([p for p in test if p.same], args.pairs) + rng.sample(
        [p for p in test if not p.same], args.pairs
    )
    t = resolve_threshold(pipe.model, "balanced", "balanced")

    def degrade(img, f, kind, level):  # type: ignore[no-untyped-def]
        if kind == "eyes":
            q = pipe.quality(img, pipe.align(img, f))
            s = min(1.0, level / float(q.inter_eye_px[0]))
            return cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), s
        if kind == "blur":
            return (cv2.GaussianBlur(img, (0, 0), level) if level else img), 1.0
        return img, 1.0

    conditions = (
        [("clean", 0)]
        + [("eyes", e) for e in (32, 24, 18, 14, 10, 8)]
        + [("blur", s) for s in (1.5, 2.5, 3.5, 5.0)]
    )
    rows_d = []
    for kind, level in conditions:
        correct, measured, gated = 0, [], 0
        for p in sample:
            a = facelens.load_image(lfw_image(lfw, p.name_a, p.index_a))
            b = facelens.load_image(lfw_image(lfw, p.name_b, p.index_b))
            fa, fb = largest(pipe, a), largest(pipe, b)
            if fa is None or fb is None:
                correct += not p.same
                continue
            b2, s = degrade(b, fb, kind, level)
            kps = None if fb.keypoints is None else fb.keypoints * s  # ArcFace chips read them
            fb2 = pipe.align(b2, fb.replace(xyxy=fb.xyxy * s, keypoints=kps, landmarks=None))
            q = pipe.quality(b2, fb2)
            measured.append(float(q.inter_eye_px[0] if kind == "eyes" else q.sharpness[0]))
            gated += bool(gate.reasons(q, 0))
            same = pipe.verify(pipe.embed(a, fa), pipe.embed(b2, fb2), t).same
            correct += same == p.same
        rows_d.append(
            [
                f"{kind} {level}" if kind != "clean" else "clean",
                f"{np.median(measured):.1f}" if measured else "",
                f"{correct / len(sample):.3f}",
                f"{gated / len(sample):.2f}",
            ]
        )
        print(rows_d[-1], flush=True)

    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/quality_gate.py "
            f"--write docs/quality.md`.",
            f"**Measures over {n_faces} LFW faces** (largest face of each pairsDevTrain image; "
            f"{failing} of them, {failing / n_faces:.1%}, fail the default gate):",
            md_table(["measure"] + [f"p{p}" for p in pct], dist),
            f"**Verification accuracy when the second image of a pair is degraded** "
            f"({args.pairs} same-person + {args.pairs} different-person pairsDevTest pairs, "
            f'threshold "balanced" = {t:.4f}); the middle column is the median measured '
            "inter-eye distance (for `eyes`) or sharpness (for `blur`) of the degraded face:",
            md_table(
                ["second image", "median measure", "accuracy", "fraction refused by gate"], rows_d
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "quality-gate", body)


if __name__ == "__main__":
    main()
