"""Detection recall and precision at IoU 0.5 on dlib's hand-labelled faces, per backend.

    .venv/bin/python benchmarks/detection.py [--write docs/benchmarks.md]

Truth: ``detection/testing.xml`` (5 images, 25 faces) and ``training.xml`` (4 images, 18
faces). The peer row runs face_recognition's ``face_locations`` (its default, HOG upsample 1)
on the same images in the same run.
"""

from __future__ import annotations

import argparse
import time

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import DetectConfig, Pipeline, PipelineConfig
from facelens.eval.boxes import DetectionCounts, match_boxes, read_imglab

CONFIGS = [
    ("onnx_mmod", 0),
    ("onnx_mmod", 1),
    ("dlib_hog", 0),
    ("dlib_hog", 1),
    ("dlib_cnn", 0),
    ("dlib_cnn", 1),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", type=str, default=None)
    args = ap.parse_args()
    import face_recognition as fr

    det_dir = data_root() / "detection"
    sets = {name: read_imglab(det_dir / name) for name in ("testing.xml", "training.xml")}
    rows = []

    def run(label: str, detect, n_pixels: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
        cells = [label]
        for _name, images in sets.items():
            c, t = DetectionCounts(), 0.0
            for li in images:
                img = facelens.load_image(li.path)
                t0 = time.perf_counter()
                boxes = detect(img)
                t += time.perf_counter() - t0
                c = c + match_boxes(boxes, li.boxes, 0.5, li.ignore)
            cells += [
                f"{c.recall:.3f} ({c.tp}/{c.tp + c.fn})",
                f"{c.precision:.3f} ({c.tp}/{c.tp + c.fp})",
                f"{t / len(images) * 1000:.0f}",
            ]
        rows.append(cells)
        print(cells, flush=True)

    for backend, up in CONFIGS:
        p = Pipeline(PipelineConfig(detect=DetectConfig(backend=backend, upsample=up)))
        p.load()
        run(f"facelens {backend}, upsample {up}", lambda im, p=p: p.detect(im).xyxy, {})

    def fr_boxes(img):  # type: ignore[no-untyped-def]
        return [
            [left, top, right + 1, bottom + 1]
            for top, right, bottom, left in fr.face_locations(img)
        ]

    run("face_recognition face_locations (HOG, upsample 1)", fr_boxes, {})

    headers = ["detector"]
    for name in sets:
        headers += [f"{name} recall", f"{name} precision", f"{name} ms/image"]
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/detection.py "
            "--write docs/benchmarks.md`. A detection counts when its IoU with a labelled face is "
            "at least 0.5 (one-to-one, best pairs first).",
            md_table(headers, rows),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "detection", body)


if __name__ == "__main__":
    main()
