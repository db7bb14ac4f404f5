"""Write the synthetic tracking clips (``facelens.eval.clips``) to a folder, to watch them.

Each clip is written as ``<name>.mp4`` with its labels beside it (``<name>.json``, the
format of ``tests/video/labels/``) and ``<name>.enrol.json`` (who to enrol, from which
photos). The tests and ``benchmarks/video_identity.py`` build the same clips themselves
at run time; nothing here is stored in the repository.

Usage:
    .venv/bin/python scripts/synthetic_clips.py OUT_DIR [--clip cut --clip swap ...]

Then, for instance, enrol the people of ``cut.enrol.json`` (``facelens enroll NAME PHOTOS
--consent test --gallery g.db``) and watch ``cut.mp4`` with ``--annotate annotated.mp4``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facelens.environment import data_dir
from facelens.eval.clips import CLIPS, build_clip
from facelens.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the clips to")
    parser.add_argument("--clip", action="append", choices=CLIPS, help="default: all")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = data_dir() or ROOT.parent / "shared" / "data"  # as the tests and benchmarks read it
    pipe = Pipeline()
    for name in args.clip or CLIPS:
        clip = build_clip(name, data, args.out / f"{name}.mp4", pipe.detect)
        (args.out / f"{name}.json").write_text(json.dumps(clip.labels.to_dict(), indent=1))
        enrol = {who: [str(p) for p in photos] for who, photos in clip.enrol.items()}
        (args.out / f"{name}.enrol.json").write_text(json.dumps(enrol, indent=1))
        print(f"{clip.path}: {len(clip.labels.frames)} labelled frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
