"""Same decisions with dlib and ONNX Runtime on all 6,000 LFW View 2 pairs.

    .venv/bin/python benchmarks/onnx_lfw_parity.py [--write docs/benchmarks.md]

Every image of ``pairs.txt`` goes through the default pipeline up to the aligned chip (largest
face); the chip is then embedded twice, by dlib itself and by the converted network on ONNX
Runtime. Reported: the largest per-component difference and the lowest cosine between the two
embeddings of a face, and how many of the 6,000 same/different decisions at the default
("balanced") threshold differ. Too slow for CI with dlib in the loop (about 10 minutes here).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import EmbedConfig, Pipeline
from facelens.embed import make_embedder
from facelens.eval import lfw_image, read_pairs
from facelens.match import resolve_threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    keys = sorted({(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs})
    pipe = Pipeline()
    dlib_emb = make_embedder(EmbedConfig(model="dlib", backend="dlib"))
    onnx_emb = make_embedder(EmbedConfig(model="dlib", backend="onnx"))
    ours: dict[tuple[str, int], np.ndarray | None] = {}
    ref: dict[tuple[str, int], np.ndarray | None] = {}
    t0 = time.perf_counter()
    for n, key in enumerate(keys):
        img = facelens.load_image(lfw_image(lfw, *key))
        faces = pipe.detect(img)
        if not len(faces):
            ours[key] = ref[key] = None
            continue
        chip = pipe.chips(img, faces[faces.largest()])
        ours[key] = onnx_emb.embed(chip).vectors[0]
        ref[key] = dlib_emb.embed(chip).vectors[0]
        if n % 1000 == 0:
            print(f"{n}/{len(keys)} {time.perf_counter() - t0:.0f} s", flush=True)
    raw_a = np.stack([v for v in ours.values() if v is not None])
    raw_b = np.stack([v for v in ref.values() if v is not None])
    diff = float(np.abs(raw_a - raw_b).max())
    cos = float((raw_a * raw_b).sum(1).min())
    t = resolve_threshold(pipe.model, "balanced", "balanced")
    differ = 0
    for p in pairs:
        a, b = (p.name_a, p.index_a), (p.name_b, p.index_b)
        if ours[a] is None or ours[b] is None:
            continue  # no face: the same "different" answer from both
        differ += (float(ours[a] @ ours[b]) >= t) != (float(ref[a] @ ref[b]) >= t)
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/onnx_lfw_parity.py "
            "--write docs/benchmarks.md`.",
            md_table(
                [
                    "faces embedded twice",
                    "max per-component difference (unit vectors)",
                    "min cosine",
                    f"pairs decided differently at 'balanced' ({t:.4f})",
                ],
                [[len(raw_a), f"{diff:.2e}", f"{cos:.7f}", f"{differ} of {len(pairs)}"]],
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "onnx-lfw-parity", body)


if __name__ == "__main__":
    main()
