"""What decoding in a sandbox process costs against decoding in the worker, same run.

    .venv/bin/python benchmarks/decode_isolation.py [--write docs/benchmarks.md]

The service decodes every uploaded image in a decode process limited to what the file's
structure says it needs (``facelens.decode.image.decode_isolated``); this times that against
``decode_image`` in this process, on real photos from the shared data scaled to 0.3, 2, 12
and 36 megapixels (JPEG, quality 90), the median of 7 after a warm-up, alternating the two.
The difference is the price per request: the input sent to the process, the limits set and
reset, the RGB pixels sent back through a pipe.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from _report import data_root, machine, md_table, write_section

SIZES = [(640, 480), (1920, 1080), (4000, 3000), (7000, 5200)]


def photo(w: int, h: int) -> bytes:
    from PIL import Image

    src = sorted((data_root() / "faces" / "face_recognition").glob("*.jpg"))[0]
    buf = io.BytesIO()
    Image.open(src).convert("RGB").resize((w, h)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    from facelens.decode.image import decode_image, decode_isolated
    from facelens.sandbox import Sandbox

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    rows = []
    with Sandbox(workers=1) as box:
        for w, h in SIZES:
            data = photo(w, h)
            decode_isolated(box, data)
            decode_image(data)
            here, there = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                decode_image(data)
                here.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                decode_isolated(box, data)
                there.append(time.perf_counter() - t0)
            a, b = statistics.median(here) * 1000, statistics.median(there) * 1000
            rows.append(
                [
                    f"{w}x{h} ({w * h / 1e6:.1f} MP, {len(data) // 1024} KB)",
                    f"{a:.1f}",
                    f"{b:.1f}",
                    f"+{b - a:.1f}",
                    f"{b / a:.2f}",
                ]
            )
            print(rows[-1], flush=True)
    table = md_table(
        ["photo", "in the worker (ms)", "in a decode process (ms)", "cost (ms)", "ratio"],
        rows,
    )
    print(table)
    if args.write:
        write_section(
            args.write,
            "decode-isolation",
            "Command: `.venv/bin/python benchmarks/decode_isolation.py --write "
            f"docs/benchmarks.md` ({machine()}; the machine was shared with other work). "
            "Decoding an upload in a decode process (what the service does, "
            "`facelens.sandbox`) against decoding it in the worker, the same photo, the "
            f"median of {args.repeat}, alternated in one run:\n\n" + table,
        )


if __name__ == "__main__":
    sys.exit(main())
