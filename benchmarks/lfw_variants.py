"""Which choices make facelens more accurate with the same weights: the LFW 10-fold figure of
each, one change at a time.

    .venv/bin/python benchmarks/lfw_variants.py [--write docs/accuracy.md]

Every image of ``pairs.txt`` is detected (MMOD, upsample 0, then 1 when nothing is found:
what facelens does for a single-face request), every face aligned, and each face's chip
embedded under several test-time augmentations. Then each variant is scored with the official
10-fold protocol:

- face choice: ``largest``, ``centre`` (nearest the image centre), ``primary`` (facelens's
  rule: the face with the best area x centrality);
- missed faces: retried at upsample 1, or not (counted as "different");
- augmentation: none, horizontal flip (mean of the two unit vectors), flip + small shifts and
  scales of the chip (``tta``).

The LFW-specific crutch (the central box of the deep-funneled images, never the detector) is
reported separately.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import DetectConfig, EmbedConfig, Pipeline, PipelineConfig
from facelens.embed import make_embedder
from facelens.embed.augment import augmented_chips
from facelens.eval import lfw_image, read_pairs
from facelens.eval.metrics import ten_fold
from facelens.faces import Faces
from facelens.pipeline import choose_primary

LFW_BOX = [68.0, 68.0, 182.0, 182.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    keys = sorted({(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs})
    pipe = Pipeline()
    up1 = Pipeline(PipelineConfig(detect=DetectConfig(upsample=1)))
    base = make_embedder(EmbedConfig(model="dlib", augment="none"))  # single views; averaged here
    # per image: {"largest": {mode: vec}, "centre": ..., "primary": ..., "box": ...}, retried
    emb: dict[tuple[str, int], dict[str, dict[str, np.ndarray]]] = {}
    retried: set[tuple[str, int]] = set()
    t0 = time.perf_counter()
    for n, key in enumerate(keys):
        img = facelens.load_image(lfw_image(lfw, *key))
        faces = pipe.detect(img)
        if not len(faces):
            faces = up1.detect(img)
            retried.add(key)
        rec: dict[str, dict[str, np.ndarray]] = {}
        choices: dict[str, Faces] = {"box": Faces(xyxy=[LFW_BOX], score=[1.0])}
        if len(faces):
            centre = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2 - np.array(img.shape[1::-1]) / 2
            choices["largest"] = faces[faces.largest()]
            choices["centre"] = faces[int(np.argmin(np.hypot(*centre.T)))]
            choices["primary"] = faces[choose_primary(faces, img.shape[1], img.shape[0])]
        for name, f in choices.items():
            chip = pipe.chips(img, f)[0]
            two = base.embed(augmented_chips(chip, "flip")).vectors
            rec[name] = {"none": two[0], "flip": two.mean(0)}
            if name == "primary":  # the expensive one only where it is compared
                rec[name]["tta"] = base.embed(augmented_chips(chip, "tta")).vectors.mean(0)
        emb[key] = rec
        if n % 1000 == 0:
            print(f"{n}/{len(keys)} {time.perf_counter() - t0:.0f} s", flush=True)

    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])

    def score(choice: str, mode: str, retry: bool = True) -> tuple[float, float, int]:
        s = []
        missing = 0
        for p in pairs:
            a, b = (p.name_a, p.index_a), (p.name_b, p.index_b)
            ra, rb = emb[a], emb[b]
            ok = (
                choice in ra and choice in rb and (retry or (a not in retried and b not in retried))
            )
            if not ok:
                missing += 1
                s.append(-1.0)
                continue
            va, vb = ra[choice][mode], rb[choice][mode]
            s.append(float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)))
        r = ten_fold(np.array(s), same, folds)
        return r.mean, r.std, missing

    rows = []
    for label, choice, mode, retry in [
        ("largest face, no retry, no augmentation", "largest", "none", False),
        ("largest face, retry at upsample 1", "largest", "none", True),
        ("centre face, retry", "centre", "none", True),
        ("primary face, retry", "primary", "none", True),
        ("primary face, retry, flip", "primary", "flip", True),
        ("primary face, retry, flip + shifts/scales (tta)", "primary", "tta", True),
        ("LFW crutch: central box, no detector, flip", "box", "flip", True),
    ]:
        m, sd, miss = score(choice, mode, retry)
        rows.append([label, f"{m * 100:.2f}", f"{sd * 100:.2f}", miss])
        print(rows[-1], flush=True)
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/lfw_variants.py "
            f"--write docs/accuracy.md`. LFW View 2, 10 folds, 6,000 pairs; detector onnx_mmod. "
            f"{len(retried)} images had no face at upsample 0. Pairs with a missing face count as "
            '"different".',
            md_table(["variant", "10-fold accuracy %", "std %", "pairs with a missing face"], rows),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "variants", body)


if __name__ == "__main__":
    main()
