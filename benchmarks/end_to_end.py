"""The whole ``facelens identify`` process against face_recognition's command line, on the same
photos: start-up, model loading, every photo, the answer printed.

    .venv/bin/python benchmarks/end_to_end.py [--write docs/benchmarks.md] [--repeat 3]

Photo sets: the first image of the first 60 LFW people (alphabetical), and the 23 photos of
``detection/`` and ``faces/face_recognition`` letterboxed to 640x480 (group photos: many faces
of 30-60 px). Known people: the 5 of ``knn_examples/train``: enrolled in a fresh gallery for
facelens (not timed), one photo each in a folder for face_recognition (its CLI's way).

Each command runs ``--repeat`` times after one warm-up run (which converts facelens's models
once, as any first use does); the median wall time is reported, with the faces each found:
facelens's JSON has one entry per face, face_recognition's CLI prints a line per face (or
``no_persons_found``). face_recognition runs with its defaults (HOG upsample 1, one process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _report import ROOT, data_root, machine, md_table, write_section
from detection import group_photos

VENV = ROOT / ".venv" / "bin"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {p.stderr[-2000:]}")
    return dt, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from PIL import Image

    data = data_root()
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, FACELENS_HOME=str(tmp / "home"))
    sets: dict[str, Path] = {}
    lfw = tmp / "lfw60"
    lfw.mkdir()
    for person in sorted((data / "lfw" / "images").iterdir())[:60]:
        shutil.copy(person / f"{person.name}_0001.jpg", lfw)
    sets["60 LFW photos (250x250)"] = lfw
    groups = tmp / "groups"
    groups.mkdir()
    for i, img in enumerate(group_photos(data, tmp)):
        Image.fromarray(img).save(groups / f"{i:02d}.jpg", quality=95)
    sets["23 group photos (640x480)"] = groups

    train = data / "faces" / "face_recognition" / "knn_examples" / "train"
    known = tmp / "known"
    known.mkdir()
    gallery = tmp / "gallery.db"
    for person in sorted(train.iterdir()):
        shutil.copy(sorted(person.iterdir())[0], known / f"{person.name}.jpg")
        run(
            [
                str(VENV / "facelens"),
                "enroll",
                person.name,
                str(person),
                "--consent",
                "benchmark",
                "--gallery",
                str(gallery),
                "--model",
                "dlib+sface",
            ],
            env,
        )  # fmt: skip  (the fusion's templates include dlib's: one gallery serves both)

    rows = []
    for label, folder in sets.items():
        ours = [
            str(VENV / "facelens"),
            "identify",
            str(folder),
            "--gallery",
            str(gallery),
            "--json",
        ]
        fusion = [*ours, "--model", "dlib+sface"]
        peer = [str(VENV / "face_recognition"), str(known), str(folder)]
        run(ours, env)  # warm-up: converts the models once
        run(fusion, env)
        run(peer, env)
        t_ours, t_fusion, t_peer = [], [], []
        for _ in range(args.repeat):  # alternated, so drift hits all three
            dt, out = run(ours, env)
            t_ours.append(dt)
            n_ours = len(json.loads(out))
            dt, _ = run(fusion, env)
            t_fusion.append(dt)
            dt, out = run(peer, env)
            t_peer.append(dt)
            n_peer = sum(1 for line in out.splitlines() if line and "no_persons_found" not in line)
        a, f, b = (statistics.median(t) for t in (t_ours, t_fusion, t_peer))
        fused = f"{f:.2f} ({b / f:.1f}x)"
        rows.append([label, f"{a:.2f}", n_ours, f"{b:.2f}", n_peer, f"{b / a:.1f}x", fused])
        print(rows[-1], flush=True)
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/end_to_end.py --write "
            f"docs/benchmarks.md`. Whole processes, median of {args.repeat} runs alternated "
            "with the peer's, after a warm-up: `facelens identify FOLDER --gallery G --json` "
            "(defaults: YuNet, dlib's ResNet with flip, 5 people enrolled; the last column "
            "with `--model dlib+sface`) against "
            "`face_recognition KNOWN FOLDER` (HOG upsample 1, the same 5 people).",
            md_table(
                [
                    "photos",
                    "facelens s",
                    "faces found",
                    "face_recognition s",
                    "faces found",
                    "speed-up",
                    "facelens --model dlib+sface s (speed-up)",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "end-to-end", body)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
