"""Every LFW face the recognizer benchmarks read, found and aligned once: the chips.

    .venv/bin/python benchmarks/_lfw_chips.py            # build (resumable), then report

Each image (clean, and the degraded variants of the images that are second in a View 1 or
View 2 pair) is handled as the default pipeline handles a single-person photo: YuNet, the
primary face, the retries (``Pipeline.detect_single``), dlib's landmarks; then both chips the
recognizers read are kept: dlib's 150 px chip (``dlib150``) and the ArcFace 112 px chip
(``arcface112``, keypoints found upright first, as ``Pipeline.views`` does).

A recognizer variant (fp32 or int8, one view or with its mirror) then costs only its own
forward passes over these arrays (``benchmarks/recognizers.py``): detection and alignment
are the same for every variant and are not redone. The arrays live in
``benchmarks/.cache/chips/<variant>/`` (about 3.7 GB for all variants); a ``done`` mask makes
the build resumable.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from _report import ROOT, data_root
from facelens import DetectConfig, EmbedConfig, Pipeline, PipelineConfig
from facelens.decode import decode_image
from facelens.eval.lfw import LFW_CENTRAL_BOX, lfw_image, read_pairs, read_people
from facelens.pipeline import choose_primary
from facelens.runtime import RuntimeConfig

CHIPS = ROOT / "benchmarks" / ".cache" / "chips"
Key = tuple[str, int]
VARIANTS = ("clean", "small", "blur", "jpeg20", "rot30")
VIEWS = {"dlib150": 150, "arcface112": 112}
FACE_PX = 40  # the "small" variant's face width
LFW_FACE = LFW_CENTRAL_BOX[2] - LFW_CENTRAL_BOX[0]  # ~114 px in the 250 px images
# What made the chips (a cache made otherwise is rebuilt): the detector, its retries
# (v3: a photo without a face searched turned, detect.rotated) and the two alignments.
TAG = "yunet:up0:primary:retry-v3:dlib150+arcface112"


def degrade(img: np.ndarray, variant: str, key: Key) -> np.ndarray:
    """The image as a worse camera would give it (the second image of every pair)."""
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


def variant_keys(lfw: Path) -> dict[str, list[Key]]:
    """The images of each variant: all of LFW clean; the second image of every View 1 and
    View 2 pair degraded."""
    people = read_people(lfw)
    pairs = (
        read_pairs(lfw / "pairs.txt")
        + read_pairs(lfw / "pairsDevTrain.txt")
        + read_pairs(lfw / "pairsDevTest.txt")
    )
    seconds = sorted({(p.name_b, p.index_b) for p in pairs})
    out = {"clean": sorted((n, i) for n, idx in people.items() for i in idx)}
    out.update({v: seconds for v in VARIANTS[1:]})
    return out


class ChipSet:
    """The chips of one variant: ``keys``, ``ok`` (a face was found), one array per view."""

    def __init__(self, variant: str, keys: list[Key], create: bool = False) -> None:
        self.variant = variant
        self.keys = keys
        self.index = {k: i for i, k in enumerate(keys)}
        self.dir = CHIPS / variant
        meta = self.dir / "meta.json"
        want = {"tag": TAG, "keys": [list(k) for k in keys]}
        fresh = not meta.exists() or json.loads(meta.read_text()) != want
        if fresh and not create:
            raise SystemExit(f"no chips of {variant!r}: run benchmarks/_lfw_chips.py first")
        mode = "w+" if fresh else "r+"
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(keys)
        self.arrays: dict[str, Any] = {
            v: np.lib.format.open_memmap(
                self.dir / f"{v}.npy", mode=mode, dtype=np.uint8, shape=(n, s, s, 3)
            )
            for v, s in VIEWS.items()
        }
        self.ok = np.lib.format.open_memmap(self.dir / "ok.npy", mode=mode, dtype=bool, shape=(n,))
        self.done = np.lib.format.open_memmap(
            self.dir / "done.npy", mode=mode, dtype=bool, shape=(n,)
        )
        if fresh:
            self.ok[:] = False
            self.done[:] = False
            meta.write_text(json.dumps(want))

    def flush(self) -> None:
        for a in self.arrays.values():
            a.flush()
        self.ok.flush()
        self.done.flush()

    @property
    def complete(self) -> bool:
        return bool(self.done.all())


def make_pipeline() -> Pipeline:
    # the fusion's pipeline makes both chips; no recognizer runs here
    return Pipeline(
        PipelineConfig(
            detect=DetectConfig(backend="yunet"),
            embed=EmbedConfig(model="dlib+sface"),
            runtime=RuntimeConfig(threads=1),
        )
    )


def build(lfw: Path, variants: tuple[str, ...] = VARIANTS) -> dict[str, ChipSet]:
    pipe = make_pipeline()
    sets = {}
    for variant, keys in variant_keys(lfw).items():
        if variant not in variants:
            continue
        cs = ChipSet(variant, keys, create=True)
        todo = np.flatnonzero(~cs.done[:])
        t0 = time.perf_counter()
        for n, i in enumerate(todo):
            k = keys[i]
            img, _ = decode_image(lfw_image(lfw, *k))
            img = degrade(img, variant, k)
            faces = pipe.detect_single(img)
            if len(faces):
                f = pipe.align(img, faces[choose_primary(faces, img.shape[1], img.shape[0])])
                views = pipe.views(img, f)
                for v in VIEWS:
                    cs.arrays[v][i] = views[v][0]
                cs.ok[i] = True
            cs.done[i] = True
            if n % 500 == 499:
                cs.flush()
                rate = (n + 1) / (time.perf_counter() - t0)
                print(f"{variant}: {n + 1}/{len(todo)} ({rate:.1f}/s)", flush=True)
        cs.flush()
        print(f"{variant}: {int(cs.ok.sum())} of {len(keys)} with a face", flush=True)
        sets[variant] = cs
    return sets


def load(lfw: Path) -> dict[str, ChipSet]:
    """Every variant's chips (built beforehand)."""
    sets = {v: ChipSet(v, keys) for v, keys in variant_keys(lfw).items()}
    for s in sets.values():
        if not s.complete:
            raise SystemExit(f"the chips of {s.variant!r} are incomplete: run _lfw_chips.py")
    return sets


if __name__ == "__main__":
    only = tuple(sys.argv[1:]) or VARIANTS
    build(data_root() / "lfw", only)
