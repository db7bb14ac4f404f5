"""Per-stage timings at 240p, 480p, 720p and 1080p: facelens and face_recognition, same run.

    .venv/bin/python benchmarks/stages.py [--write docs/benchmarks.md] [--repeat 5]

Both run on the same photos (``faces/face_recognition/obama-*.jpg``), one face each, in this
process, one after the other. Ratios are face_recognition time / facelens time (> 1: facelens
is faster).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import facelens
from _report import ROOT, data_root, machine, md_table, timeit, write_section
from facelens import Pipeline

SIZES = ["240p", "480p", "720p", "1080p"]


def import_time(stmt: str) -> float:
    """Seconds for a fresh interpreter to run ``stmt`` (median of 3), minus bare start-up."""

    def run(code: str) -> float:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    return sorted(run(stmt) for _ in range(3))[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", type=str, default=None, help="markdown file to update")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import face_recognition as fr
    from face_recognition import api as fr_api

    photos = data_root() / "faces" / "face_recognition"
    pipe = Pipeline()
    pipe.load()
    rows = []
    for size in SIZES:
        path = photos / f"obama-{size}.jpg"
        img = facelens.load_image(path)
        h, w = img.shape[:2]
        faces = pipe.detect(img)
        lm = pipe.align(img, faces)
        fr_img = fr.load_image_file(str(path))
        locs = fr.face_locations(fr_img)
        raw = fr_api._raw_face_landmarks(fr_img, locs, "small")
        assert len(faces) == len(locs) == 1, (size, len(faces), len(locs))

        t = {
            "decode": (
                timeit(lambda: facelens.load_image(path), args.repeat),
                timeit(lambda: fr.load_image_file(str(path)), args.repeat),
            ),
            "detect (HOG, upsample 1)": (
                timeit(lambda: pipe.detect(img), args.repeat),
                timeit(lambda: fr.face_locations(fr_img), args.repeat),
            ),
            "landmarks (5 points)": (
                timeit(lambda: pipe.aligner.landmarks(img, faces), args.repeat),
                timeit(lambda: fr_api._raw_face_landmarks(fr_img, locs, "small"), args.repeat),
            ),
            "align + embed": (
                timeit(
                    lambda: pipe.embedder.parts[0].embed(pipe.aligner.chips(img, lm)), args.repeat
                ),
                timeit(
                    lambda: [
                        fr_api.face_encoder.compute_face_descriptor(fr_img, r, 1) for r in raw
                    ],
                    args.repeat,
                ),
            ),
            "end to end": (
                timeit(lambda: pipe.analyze(facelens.load_image(path)), args.repeat),
                timeit(lambda: fr.face_encodings(fr.load_image_file(str(path))), args.repeat),
            ),
        }
        for stage, (ours, peer) in t.items():
            rows.append(
                [
                    f"{size} ({w}x{h})",
                    stage,
                    f"{ours * 1000:.1f}",
                    f"{peer * 1000:.1f}",
                    f"{peer / ours:.2f}x",
                ]
            )
        print(
            size,
            {k: (round(a * 1000, 1), round(b * 1000, 1)) for k, (a, b) in t.items()},
            flush=True,
        )

    imp_ours = import_time("import facelens")
    imp_peer = import_time("import face_recognition")
    first_ours = import_time("import facelens; p = facelens.Pipeline(); p.load()")
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/stages.py "
            f"--write docs/benchmarks.md` (median of {args.repeat} runs after a warm-up, one face "
            "per photo). face_recognition 1.3.0 runs its default pipeline (HOG upsample 1, 5-point "
            "landmarks, 1 jitter) in the same process.",
            md_table(
                [
                    "photo",
                    "stage",
                    "facelens ms",
                    "face_recognition ms",
                    "speed-up (peer / facelens)",
                ],
                rows,
            ),
            md_table(
                ["start-up", "facelens s", "face_recognition s"],
                [
                    ["`import` (fresh interpreter)", f"{imp_ours:.2f}", f"{imp_peer:.2f}"],
                    [
                        "import + load every model",
                        f"{first_ours:.2f}",
                        f"{imp_peer:.2f} (loads all at import)",
                    ],
                ],
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "stages", body)


if __name__ == "__main__":
    main()
