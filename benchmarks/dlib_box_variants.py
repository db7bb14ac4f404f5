"""Which box should dlib's 5-point predictor start from when YuNet found the face? LFW View 2.

    .venv/bin/python benchmarks/dlib_box_variants.py

dlib's ResNet templates of every View 2 image (primary face, flip augmentation), the
predictor started from:

- ``mapped``: the box mapped from YuNet's keypoints (``align.dlib_box``; the default);
- ``own``: YuNet's own box;
- ``avg_own``: the mean of the ``mapped`` and ``own`` templates;
- ``ens3``: the mean of the predictor's points from the mapped box at 0.92, 1.0 and 1.08
  of its size;
- ``mmod_crop``: dlib's MMOD detector (upsample 1) run on a crop three face-widths wide
  around the mapped box, its box where it overlaps (IoU > 0.3), else the mapped box.

Prints LFW's 10-fold accuracy of each (the MMOD pipeline's 99.15% is in docs/accuracy.md).
About 20 minutes on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np

from _report import data_root
from facelens import DetectConfig, EmbedConfig, Pipeline
from facelens._dlib import import_dlib, to_rect
from facelens.decode import decode_image
from facelens.detect import make_detector
from facelens.embed import make_embedder
from facelens.eval.lfw import lfw_image, read_pairs
from facelens.eval.metrics import ten_fold
from facelens.faces import Faces, box_iou
from facelens.pipeline import choose_primary

VARIANTS = ("mapped", "own", "avg_own", "ens3", "mmod_crop")


def main() -> None:
    lfw = data_root() / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    keys = sorted({(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs})
    pipe = Pipeline()
    emb = make_embedder(EmbedConfig(model="dlib"))
    mmod = make_detector(DetectConfig(backend="onnx_mmod", upsample=1))
    dlib = import_dlib()
    pipe.aligner.load()
    sp = pipe.aligner._sp

    def chip(img: np.ndarray, shape: object) -> np.ndarray:
        dets = dlib.full_object_detections()
        dets.append(shape)
        details = dlib.get_face_chip_details(dets, size=150, padding=0.25)
        chips = dlib.extract_image_chips(img, list(details))
        return np.stack([np.asarray(c, np.uint8) for c in chips])

    def mean_shape(img: np.ndarray, boxes: list[np.ndarray], rect: object) -> object:
        pts = [[[p.x, p.y] for p in sp(img, to_rect(b)).parts()] for b in boxes]
        m = np.mean(pts, axis=0)
        return dlib.full_object_detection(
            rect, [dlib.point(int(np.rint(x)), int(np.rint(y))) for x, y in m]
        )

    out: dict[str, dict[tuple[str, int], np.ndarray | None]] = {v: {} for v in VARIANTS}
    t0 = time.perf_counter()
    for n, k in enumerate(keys):
        img, _ = decode_image(lfw_image(lfw, *k))
        faces = pipe.detect_single(img)
        if not len(faces):
            for v in VARIANTS:
                out[v][k] = None
            continue
        f = faces[choose_primary(faces, img.shape[1], img.shape[0])]
        mb = pipe.aligner.predictor_boxes(f)[0]
        x1, y1, x2, y2 = mb
        w, h, cx, cy = x2 - x1, y2 - y1, (x1 + x2) / 2, (y1 + y2) / 2
        scaled = [
            np.array([cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2])
            for s in (0.92, 1.0, 1.08)
        ]
        X1, Y1 = int(max(0, x1 - w)), int(max(0, y1 - w))
        X2, Y2 = int(min(img.shape[1], x2 + w)), int(min(img.shape[0], y2 + w))
        crop = np.ascontiguousarray(img[Y1:Y2, X1:X2])
        mf = mmod.detect(crop) if crop.size else Faces.empty()
        box = mb
        if len(mf):
            xyxy = mf.xyxy + np.float32([X1, Y1, X1, Y1])
            iou = box_iou(xyxy, mb[None])[:, 0]
            if iou.max() > 0.3:
                box = xyxy[int(np.argmax(iou))]
        shapes = {
            "mapped": sp(img, to_rect(mb)),
            "own": sp(img, to_rect(f.xyxy[0])),
            "ens3": mean_shape(img, scaled, to_rect(mb)),
            "mmod_crop": sp(img, to_rect(box)),
        }
        for v, shape in shapes.items():
            out[v][k] = emb.embed(chip(img, shape)).vectors[0]
        a = out["mapped"][k] + out["own"][k]  # type: ignore[operator]
        out["avg_own"][k] = a / np.linalg.norm(a)
        if n % 1000 == 999:
            print(f"{n + 1}/{len(keys)} {time.perf_counter() - t0:.0f} s", flush=True)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    for v in VARIANTS:
        e = out[v]
        s = []
        for p in pairs:
            a, b = e[(p.name_a, p.index_a)], e[(p.name_b, p.index_b)]
            s.append(-1.0 if a is None or b is None else float(a @ b))
        r = ten_fold(np.array(s), same, folds)
        print(f"{v}: LFW 10-fold {r.mean * 100:.2f} +- {r.std * 100:.2f}")


if __name__ == "__main__":
    main()
