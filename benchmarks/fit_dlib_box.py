"""Fit the keypoints -> dlib box maps (``facelens.align.dlib_box``) and show what they change.

    .venv/bin/python benchmarks/fit_dlib_box.py [--write docs/accuracy.md] [--fit 3000]

1. Fit: LFW images that are in none of View 2's pairs (``--fit`` of them, seed 0). Each is
   searched by dlib's MMOD detector (upsample 0, then 1 when nothing is found) and by each
   keypoint detector (YuNet, CenterFace); where both find the same face (IoU >= 0.3), the
   keypoints and the MMOD box make one training example. Least squares (``BoxMap``).
2. Check: faces found by both on 1,500 images of View 2's pairs, and on every photo of the
   shared data (``faces/`` and ``detection/``, MMOD and the keypoint detector at upsample 1).
   For each face, dlib's template (chip from the predictor, ONNX ResNet, flip) is computed
   through MMOD's box, through the keypoint detector's own box, and through the mapped box;
   the cosine of each with MMOD's is reported (1 = the same template).

It prints the ``BOX_MAPS`` entries for ``src/facelens/align/dlib_box.py``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens.align import Aligner
from facelens.align.dlib_box import BoxMap, face_frame
from facelens.decode import decode_image
from facelens.detect import DetectConfig, make_detector
from facelens.embed import EmbedConfig, make_embedder
from facelens.eval.lfw import lfw_image, read_pairs, read_people
from facelens.faces import Faces, box_iou
from facelens.runtime import RuntimeConfig

CACHE = ROOT / "benchmarks" / ".cache"
DETECTORS = ("yunet", "centerface")
Key = Any


def _pairs_of(
    img: np.ndarray, mmod: Any, other: Any, retry: Any
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(MMOD box, other box, other keypoints) for each face both detectors find."""
    a = mmod.detect(img)
    if len(a) == 0 and retry is not None:
        a = retry.detect(img)
    b = other.detect(img)
    if not len(a) or not len(b):
        return []
    iou = box_iou(a.xyxy, b.xyxy)
    out = []
    for i in range(len(a)):
        j = int(np.argmax(iou[i]))
        if iou[i, j] >= 0.3 and b.keypoints is not None:
            out.append((a.xyxy[i], b.xyxy[j], b.keypoints[j]))
    return out


def collect(name: str, images: list[tuple[Key, Path]], upsample: int) -> dict[Key, list[Any]]:
    path = CACHE / f"dlibbox_{name}_{upsample}_{len(images)}.pkl"
    if path.exists():
        cached: dict[Key, list[Any]] = pickle.loads(path.read_bytes())
        return cached
    rt = RuntimeConfig(threads=2)
    mmod = make_detector(DetectConfig(backend="onnx_mmod", upsample=upsample), runtime=rt)
    retry = (
        make_detector(DetectConfig(backend="onnx_mmod", upsample=1), runtime=rt)
        if upsample == 0
        else None
    )
    other = make_detector(DetectConfig(backend=name, upsample=upsample), runtime=rt)
    out: dict[Key, list[Any]] = {}
    for n, (key, p) in enumerate(images):
        img, _ = decode_image(p)
        if img.shape[0] * img.shape[1] > 2_000_000:
            continue
        found = _pairs_of(img, mmod, other, retry)
        if found:
            out[key] = found
        if n % 500 == 0:
            print(f"{name}: {n}/{len(images)}", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def fit(examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    kp = np.stack([e[2] for e in examples])
    box = np.stack([e[0] for e in examples]).astype(np.float64)
    q, c, s, th = face_frame(kp)
    cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    dx, dy = (cx - c[:, 0]) / s, (cy - c[:, 1]) / s
    cos, sin = np.cos(th), np.sin(th)
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    y = np.c_[along, across, np.log(w / s), np.log(h / s)]
    x = np.c_[q, np.ones(len(q))]
    coef: np.ndarray = np.linalg.lstsq(x, y, rcond=None)[0]
    return coef


def cosines(
    found: dict[Key, list[Any]], images: dict[Key, Path], bmap: BoxMap
) -> dict[str, np.ndarray]:
    aligner = Aligner()
    emb = make_embedder(EmbedConfig(model="dlib"), runtime=RuntimeConfig(threads=2))
    out: dict[str, list[float]] = {"own box": [], "mapped box": []}
    for key, faces in found.items():
        img, _ = decode_image(images[key])
        for mbox, obox, kp in faces:
            boxes = np.stack([mbox, obox, bmap.boxes(kp[None])[0]])
            chips = aligner.chips(img, Faces(xyxy=boxes, score=np.ones(3, np.float32)))
            v = emb.embed(chips).vectors
            out["own box"].append(float(v[0] @ v[1]))
            out["mapped box"].append(float(v[0] @ v[2]))
    return {k: np.asarray(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    ap.add_argument("--fit", type=int, default=3000)
    args = ap.parse_args()
    data = data_root()
    lfw = data / "lfw"
    people = read_people(lfw)
    pairs = read_pairs(lfw / "pairs.txt")
    in_pairs = {k for p in pairs for k in ((p.name_a, p.index_a), (p.name_b, p.index_b))}
    keys = sorted((n, i) for n, idx in people.items() for i in idx)
    rng = np.random.default_rng(0)
    outside = [k for k in keys if k not in in_pairs]
    fit_keys = [outside[i] for i in rng.permutation(len(outside))[: args.fit]]
    inside = sorted(in_pairs)
    check_keys = [inside[i] for i in rng.permutation(len(inside))[:1500]]
    photos = sorted(
        p
        for p in [*(data / "faces").rglob("*"), *(data / "detection").glob("*.jpg")]
        if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    lfw_paths = {k: lfw_image(lfw, *k) for k in fit_keys + check_keys}
    photo_paths = {str(p.relative_to(data)): p for p in photos}
    rows = []
    snippets = []
    for name in DETECTORS:
        train = collect(name, [(k, lfw_paths[k]) for k in fit_keys], 0)
        examples = [e for v in train.values() for e in v]
        coef = fit(examples)
        bmap = BoxMap(name, tuple(tuple(float(c) for c in r) for r in coef), len(examples), "")
        snippets.append(
            f'    "{name}": BoxMap(\n        detector="{name}",\n        coef=(\n'
            + "".join("            (" + ", ".join(f"{c:.6f}" for c in r) + "),\n" for r in coef)
            + f"        ),\n        faces={len(examples)},\n        measured_by=_FIT,\n    ),"
        )
        checks = {
            "LFW View 2 images": (
                collect(name, [(k, lfw_paths[k]) for k in check_keys], 0),
                lfw_paths,
            ),
            "shared photos": (collect(name, list(photo_paths.items()), 1), photo_paths),
        }
        for label, (found, paths) in checks.items():
            cos = cosines(found, paths, bmap)
            for how, c in cos.items():
                rows.append(
                    [
                        name,
                        label,
                        how,
                        len(c),
                        f"{np.median(c):.5f}",
                        f"{np.percentile(c, 10):.4f}",
                        f"{c.min():.4f}",
                        f"{(c < 0.99).mean() * 100:.1f}",
                    ]
                )
                print(rows[-1], flush=True)
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/fit_dlib_box.py "
            f"--write docs/accuracy.md`. Fitted on {args.fit} LFW images outside View 2's "
            "pairs; checked on other images. Cosine of dlib's template (ONNX ResNet, flip) "
            "through the keypoint detector against the same face through dlib's MMOD box "
            "(1 = identical):",
            md_table(
                [
                    "detector",
                    "faces of",
                    "box given to dlib's predictor",
                    "faces",
                    "median cosine",
                    "10th percentile",
                    "lowest",
                    "% below 0.99",
                ],
                rows,
            ),
        ]
    )
    print("BOX_MAPS entries:\n" + "\n".join(snippets))
    print(body)
    if args.write:
        write_section(ROOT / args.write, "dlib-box", body)


if __name__ == "__main__":
    main()
