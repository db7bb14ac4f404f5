"""The whole ``facelens identify`` process against face_recognition's command line, on the same
photos: start-up, model loading, every photo, the answer printed.

    .venv/bin/python benchmarks/end_to_end.py [--write docs/benchmarks.md] [--repeat 3]

Photo sets: the first image of the first 400 LFW people (alphabetical), and the 23 photos of
``detection/`` and ``faces/face_recognition`` letterboxed to 640x480 (group photos: many faces
of 30-60 px). Known people: the 5 of ``knn_examples/train``: enrolled for facelens (not
timed; one gallery with the default recognizer, one with ``--model dlib``), one photo each in
a folder for face_recognition (its CLI's way).

Three commands per set, alternated so that a busy minute hits all three: ``facelens
identify`` with its defaults, the same with ``--model dlib`` (the fast profile, the default
before issue 26), and face_recognition's CLI. Each runs ``--repeat`` times after one warm-up
run (which converts facelens's models once, as any first use does); the median wall time is
reported, with the faces each found: facelens's JSON has one entry per face,
face_recognition's CLI prints a line per face (or ``no_persons_found``). face_recognition
runs with its defaults (HOG upsample 1, one process).
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
    lfw = tmp / "lfw400"
    lfw.mkdir()
    for person in sorted((data / "lfw" / "images").iterdir())[:400]:
        shutil.copy(person / f"{person.name}_0001.jpg", lfw)
    sets["400 LFW photos (250x250)"] = lfw
    groups = tmp / "groups"
    groups.mkdir()
    for i, img in enumerate(group_photos(data, tmp)):
        Image.fromarray(img).save(groups / f"{i:02d}.jpg", quality=95)
    sets["23 group photos (640x480)"] = groups

    train = data / "faces" / "face_recognition" / "knn_examples" / "train"
    known = tmp / "known"
    known.mkdir()
    # a gallery per recognizer: an identity takes new faces only where they can be checked
    # against its own with a calibrated recognizer both hold (gallery.enrol's face check)
    galleries = {"default": tmp / "default.db", "dlib": tmp / "dlib.db"}
    for person in sorted(train.iterdir()):
        shutil.copy(sorted(person.iterdir())[0], known / f"{person.name}.jpg")
        for name, model in (("default", []), ("dlib", ["--model", "dlib"])):
            enrol = [str(VENV / "facelens"), "enroll", person.name, str(person)]
            run([*enrol, "--consent", "benchmark", "--gallery", str(galleries[name]), *model], env)

    rows = []
    for label, folder in sets.items():
        ours = [str(VENV / "facelens"), "identify", str(folder), "--json", "--gallery"]
        commands = {
            "default": [*ours, str(galleries["default"])],
            "dlib": [*ours, str(galleries["dlib"]), "--model", "dlib"],
            "peer": [str(VENV / "face_recognition"), str(known), str(folder)],
        }
        for cmd in commands.values():
            run(cmd, env)  # warm-up: converts the models once
        times: dict[str, list[float]] = {k: [] for k in commands}
        found: dict[str, int] = {}
        for _ in range(args.repeat):  # alternated, so drift hits all three
            for k, cmd in commands.items():
                dt, out = run(cmd, env)
                times[k].append(dt)
                found[k] = (
                    sum(len(photo["faces"]) for photo in json.loads(out))
                    if k != "peer"
                    else sum(1 for ln in out.splitlines() if ln and "no_persons_found" not in ln)
                )
        t = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            [
                label,
                f"{t['default']:.2f}",
                f"{t['dlib']:.2f}",
                f"{t['peer']:.2f}",
                f"{found['default']} / {found['dlib']} / {found['peer']}",
                f"{t['peer'] / t['default']:.1f}x",
                f"{t['default'] / t['dlib']:.2f}x",
            ]
        )
        print(rows[-1], flush=True)
    from facelens.embed import EmbedConfig
    from facelens.embed.base import template_tag

    body = "\n\n".join(
        [
            f"Machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the end. "
            "Command: `.venv/bin/python "
            "benchmarks/end_to_end.py --write docs/benchmarks.md`. Whole processes, median of "
            f"{args.repeat} runs alternated, after a warm-up: `facelens identify FOLDER "
            f"--gallery G --json` with its defaults (`{template_tag(EmbedConfig())}`), the "
            "same with `--model dlib` (`dlib_resnet_v1+flip`, the fast profile), and "
            "`face_recognition KNOWN FOLDER` (HOG upsample 1), 5 people enrolled.",
            md_table(
                [
                    "photos",
                    "facelens s",
                    "facelens --model dlib s",
                    "face_recognition s",
                    "faces found (facelens / dlib / face_recognition)",
                    "face_recognition / facelens (goal >= 10x)",
                    "facelens / --model dlib (goal <= 1.5x)",
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
