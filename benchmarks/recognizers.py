"""Every recognizer and fusion on LFW, degraded LFW and open-set identification, in one table.

    .venv/bin/python benchmarks/recognizers.py [--write docs/accuracy.md] [--skip-peer]

Systems (each image handled as a single-person photo: primary face, retried at upsample + 1
when none is found; templates with flip augmentation):

- ``dlib (MMOD)``: dlib's ResNet on faces found by dlib's MMOD detector (the 0.1 default);
- ``dlib (YuNet)``: the same ResNet on faces found by YuNet (predictor box from the keypoints);
- ``sface (YuNet)``: SFace on YuNet's ArcFace-aligned chips;
- ``fusion dlib+sface``: the weighted score fusion of the two (``embed.fusion``); the SFace
  weight is chosen on LFW View 1 (pairsDevTrain + pairsDevTest, clean and every degraded
  variant, mean AUC), never on the View 2 figures reported;
- ``face_recognition``: the peer, its default pipeline (HOG upsample 1, 1 jitter).

Figures:

1. LFW View 2 (``pairs.txt``), official 10-fold accuracy, AUC, TAR at FAR 1e-3.
2. Degraded LFW: the same 6,000 pairs with the *second* image of each pair degraded, as a
   probe from a worse camera would be: ``small`` (the photo shrunk so the face is about 40 px
   wide), ``blur`` (Gaussian, sigma 2.5 px), ``jpeg20`` (JPEG quality 20), ``rot30`` (rotated
   by 30 degrees, alternately left and right). 10-fold accuracy and AUC of each.
3. Open-set identification on the 4,909-person split (840 people held out, 10 seeds): DIR at
   FPIR 1% on the cohort-normalised decision score (the shipped rule's form at this size);
   for the peer, on its own score (the best candidate's distance).

Templates are cached in ``benchmarks/.cache`` (per system and variant), so a second run is
fast.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from _report import ROOT, data_root, machine, md_table, write_section
from calibrate import _fr_open_set
from facelens import DetectConfig, EmbedConfig, Pipeline, PipelineConfig
from facelens.decode import decode_image
from facelens.eval.cache import load_embeddings, save_embeddings
from facelens.eval.identify import evaluate_open_set, split
from facelens.eval.lfw import LFW_CENTRAL_BOX, lfw_image, read_pairs, read_people
from facelens.eval.metrics import roc_auc, tar_at_far, ten_fold
from facelens.match.decide import IdentifyRule
from facelens.pipeline import choose_primary
from facelens.runtime import RuntimeConfig

CACHE = ROOT / "benchmarks" / ".cache"
Key = tuple[str, int]
VARIANTS = ("clean", "small", "blur", "jpeg20", "rot30")
FACE_PX = 40  # the "small" variant's face width
# cache versions: yunet v2 = SFace keypoints of tilted heads found again upright; v3 = a
# photo without a face searched turned (detect.rotated): only the faceless ones are redone
VERSIONS = {"yunet": "v3"}
LFW_FACE = LFW_CENTRAL_BOX[2] - LFW_CENTRAL_BOX[0]  # ~114 px in the 250 px images


def degrade(img: np.ndarray, variant: str, key: Key) -> np.ndarray:
    if variant == "clean":
        return img
    if variant == "small":
        s = FACE_PX / LFW_FACE
        return np.asarray(cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
    if variant == "blur":
        return np.asarray(cv2.GaussianBlur(img, (0, 0), 2.5))
    if variant == "jpeg20":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=20)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if variant == "rot30":
        sign = 1 if int(hashlib.sha256(f"{key}".encode()).hexdigest(), 16) % 2 else -1
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 30 * sign, 1.0)
        return np.asarray(cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT_101))
    raise ValueError(variant)


def facelens_templates(pipe: Pipeline) -> Callable[[np.ndarray], list[np.ndarray] | None]:
    """Image -> every template of the primary face ([fused?, part, ...]) or None."""

    def run(img: np.ndarray) -> list[np.ndarray] | None:
        faces = pipe.detect_single(img)
        if len(faces) == 0:
            return None
        f = pipe.align(img, faces[choose_primary(faces, img.shape[1], img.shape[0])])
        return [t.vectors[0] for t in pipe.templates(pipe.views(img, f))]

    return run


def peer_template() -> Callable[[np.ndarray], list[np.ndarray] | None]:
    import face_recognition as fr

    def run(img: np.ndarray) -> list[np.ndarray] | None:
        locs = fr.face_locations(img)
        if not locs:
            return None
        h, w = img.shape[:2]
        c = [((t + b) / 2 - h / 2) ** 2 + ((l_ + r) / 2 - w / 2) ** 2 for t, r, b, l_ in locs]
        return [np.asarray(fr.face_encodings(img, [locs[int(np.argmin(c))]])[0], np.float32)]

    return run


def embed_keys(
    label: str,
    parts: list[str],
    fn: Callable[[np.ndarray], list[np.ndarray] | None],
    keys: list[Key],
    variant: str,
    lfw: Path,
) -> dict[str, dict[Key, np.ndarray | None]]:
    """{part: {key: template}} for ``keys`` under ``variant``, cached per part."""
    paths = {p: CACHE / f"rec_{label}_{p}_{variant}.npz" for p in parts}
    tag = f"{label}:{variant}:{VERSIONS.get(label, 'v1')}"
    have = {p: load_embeddings(paths[p], tag) for p in parts}
    todo = [k for k in keys if k not in have[parts[0]]]
    t0 = time.perf_counter()
    for n, k in enumerate(todo):
        img, _ = decode_image(lfw_image(lfw, *k))
        out = fn(degrade(img, variant, k))
        for i, p in enumerate(parts):
            have[p][k] = None if out is None else out[i]
        if n % 1000 == 999:
            print(f"{label} {variant}: {n + 1}/{len(todo)} {time.perf_counter() - t0:.0f} s")
            for p in parts:
                save_embeddings(paths[p], have[p], tag)
    if todo:
        for p in parts:
            save_embeddings(paths[p], have[p], tag)
    return have


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def fused(a: dict[Key, Any], b: dict[Key, Any], w: float) -> dict[Key, np.ndarray | None]:
    """Weighted fusion of two template sets (``embed.fusion``: weight ``w`` on ``b``)."""
    out: dict[Key, np.ndarray | None] = {}
    for k in a:
        x, y = a.get(k), b.get(k)
        out[k] = (
            None
            if x is None or y is None
            else unit(np.r_[unit(x) * np.sqrt(1 - w), unit(y) * np.sqrt(w)])
        )
    return out


def pair_scores(
    pairs: list[Any], first: dict[Key, Any], second: dict[Key, Any], peer: bool
) -> np.ndarray:
    s = []
    for p in pairs:
        a, b = first.get((p.name_a, p.index_a)), second.get((p.name_b, p.index_b))
        if a is None or b is None:
            s.append(-10.0 if peer else -1.0)
        elif peer:
            s.append(-float(np.linalg.norm(a - b)))
        else:
            s.append(float(unit(a) @ unit(b)))
    return np.asarray(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    people = read_people(lfw)
    all_keys = sorted((n, i) for n, idx in people.items() for i in idx)
    v2 = read_pairs(lfw / "pairs.txt")
    v1 = read_pairs(lfw / "pairsDevTrain.txt") + read_pairs(lfw / "pairsDevTest.txt")
    rt = RuntimeConfig(threads=2)
    ours = {
        "mmod": (
            ["dlib"],
            Pipeline(PipelineConfig(detect=DetectConfig(backend="onnx_mmod"), runtime=rt)),
        ),
        "yunet": (
            ["fused", "dlib", "sface"],
            Pipeline(
                PipelineConfig(
                    detect=DetectConfig(backend="yunet"),
                    embed=EmbedConfig(model="dlib+sface"),
                    runtime=rt,
                )
            ),
        ),
    }

    def firsts(pairs: list[Any]) -> list[Key]:
        return sorted({(p.name_a, p.index_a) for p in pairs})

    def seconds(pairs: list[Any]) -> list[Key]:
        return sorted({(p.name_b, p.index_b) for p in pairs})

    # templates: system part -> variant -> key -> vector
    sets: dict[str, dict[str, dict[Key, Any]]] = {}
    jobs: list[tuple[str, list[str], Callable[[np.ndarray], Any]]] = [
        (label, parts, facelens_templates(pipe)) for label, (parts, pipe) in ours.items()
    ]
    if not args.skip_peer:
        jobs.append(("peer", ["fr"], peer_template()))
    for label, parts, fn in jobs:
        clean_keys = sorted(set(all_keys))
        got = embed_keys(label, parts, fn, clean_keys, "clean", lfw)
        for p in parts:
            sets.setdefault(f"{label}/{p}", {})["clean"] = got[p]
        for variant in VARIANTS[1:]:
            # View 1 only serves to choose the fusion's weight: not needed for the peer
            keys = sorted(set(seconds(v2)) | (set() if label == "peer" else set(seconds(v1))))
            got = embed_keys(label, parts, fn, keys, variant, lfw)
            for p in parts:
                sets[f"{label}/{p}"][variant] = got[p]

    # the fusion's weight, on View 1
    grid = [round(w, 2) for w in np.arange(0.0, 1.0001, 0.05)]
    dl, sf = sets["yunet/dlib"], sets["yunet/sface"]
    dev_same = np.array([p.same for p in v1])
    mean_auc = {}
    for w in grid:
        aucs = []
        for variant in VARIANTS:
            a = fused(dl["clean"], sf["clean"], w)
            b = fused(dl[variant], sf[variant], w)
            aucs.append(roc_auc(pair_scores(v1, a, b, False), dev_same))
        mean_auc[w] = float(np.mean(aucs))
    w_best = max(mean_auc, key=lambda w: mean_auc[w])
    print("fusion weight of sface, View 1 mean AUC:", mean_auc, "->", w_best, flush=True)
    fusions = {f"fusion dlib+sface, sface weight {w_best:g} (chosen on View 1)": w_best}
    if w_best != 0.5:
        fusions["fusion dlib+sface, equal weights"] = 0.5
    for name, w in fusions.items():
        sets[name] = {v: fused(dl[v], sf[v], w) for v in VARIANTS}

    systems = {
        "dlib (MMOD detector; 0.1 default)": "mmod/dlib",
        "dlib (YuNet detector)": "yunet/dlib",
        "sface (YuNet detector)": "yunet/sface",
        **{n: n for n in fusions},
    }
    if not args.skip_peer:
        systems["face_recognition 1.3.0 (HOG, upsample 1)"] = "peer/fr"

    same = np.array([p.same for p in v2])
    folds = np.array([p.fold for p in v2])
    rows = []
    for name, key in systems.items():
        peer = key == "peer/fr"
        t = sets[key]
        row: list[Any] = [name]
        for variant in VARIANTS:
            s = pair_scores(v2, t["clean"], t[variant], peer)
            r = ten_fold(s, same, folds)
            row.append(f"{r.mean * 100:.2f}")
            row.append(f"{roc_auc(s, same):.4f}")
            if variant == "clean":
                row.append(f"{tar_at_far(s, same, 1e-3)[0] * 100:.2f}")
        clean = t["clean"]
        dirs = []
        for seed in range(args.seeds):
            sp = split(people, 840, seed)
            if peer:  # its own score: minus the Euclidean distance of the best candidate
                dirs.append(_fr_open_set(sp, clean).dir_at_fpir["0.01"])
            else:
                rule = IdentifyRule(0.0, cohort=4, weight=0.5, fallback=1.0)
                dirs.append(evaluate_open_set(sp, clean, rule=rule).dir_at_fpir["0.01"])
        row.append(f"{np.mean(dirs) * 100:.1f}")
        rows.append(row)
        print(row, flush=True)
    headers = ["system", "LFW acc %", "LFW AUC", "LFW TAR % @FAR 1e-3"]
    for variant in VARIANTS[1:]:
        headers += [f"{variant} acc %", f"{variant} AUC"]
    headers.append("open-set DIR % @FPIR 1%")
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/recognizers.py "
            "--write docs/accuracy.md`. LFW View 2, 10-fold; the degraded columns degrade the "
            f"second image of every pair (small: face about {FACE_PX} px wide; blur: sigma "
            "2.5 px; jpeg20: JPEG quality 20; rot30: turned 30 degrees). Open set: 4,909-person "
            f"gallery, 840 people held out, {args.seeds} seeds, cohort-normalised score. The "
            f"fusion's SFace weight was chosen on View 1 (mean AUC over the five conditions: "
            + ", ".join(f"{w:g} -> {a:.4f}" for w, a in mean_auc.items())
            + ").",
            md_table(headers, rows),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "recognizers", body)


if __name__ == "__main__":
    main()
