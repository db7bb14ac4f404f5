"""One photo's detection + embedding under each ONNX Runtime thread setting, alone and with
two requests at once (what the service does), against face_recognition in the same run.

    .venv/bin/python benchmarks/inference_threads.py [--write docs/benchmarks.md]

Photos: 40 LFW images (250x250, every 300th file). "per photo" is the median latency of
``Pipeline.primary_embedding`` (detection, retry when nothing is found, the primary face's
flip-augmented embedding) one photo at a time; "photos/s" is the throughput of 80 photos
through one or two threads sharing one pipeline. The peer: face_recognition's
``face_locations`` + ``face_encodings`` (HOG, 1 jitter) on the same photos.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens import Pipeline, PipelineConfig
from facelens.runtime import RuntimeConfig

SETTINGS = [(0, True), (0, False), (1, True), (1, False), (2, True), (2, False)]


def measure(fn: Callable[[Any], Any], images: list[Any]) -> tuple[float, float, float]:
    for im in images[:3]:
        fn(im)
    ts = []
    for im in images:
        t0 = time.perf_counter()
        fn(im)
        ts.append((time.perf_counter() - t0) * 1000)
    rates = []
    for workers in (1, 2):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(fn, images * 2))
        rates.append(2 * len(images) / (time.perf_counter() - t0))
    return statistics.median(ts), rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    files = sorted((data_root() / "lfw").rglob("*.jpg"))[::300][:40]
    rows = []
    images: list[Any] = []
    for threads, spin in SETTINGS:
        p = Pipeline(PipelineConfig(runtime=RuntimeConfig(threads=threads, spin=spin)))
        images = [p.decode(f)[0] for f in files]
        ms, one, two = measure(p.primary_embedding, images)
        label = f"facelens, threads {threads or 'auto'}, spinning {'on' if spin else 'off'}"
        if (threads, spin) == (0, False):
            label += " (default)"
        rows.append([label, f"{ms:.1f}", f"{one:.1f}", f"{two:.1f}"])
        print(rows[-1], flush=True)

    import face_recognition

    def peer(im: np.ndarray) -> Any:
        boxes = face_recognition.face_locations(im)
        return face_recognition.face_encodings(im, boxes[:1])

    ms, one, two = measure(peer, images)
    rows.append(["face_recognition (HOG + encoding)", f"{ms:.1f}", f"{one:.1f}", f"{two:.1f}"])
    print(rows[-1])
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/inference_threads.py "
            "--write docs/benchmarks.md`. 40 LFW photos (250x250); per photo = median latency "
            "one at a time; photos/s with one and with two threads sharing the pipeline.",
            md_table(
                ["setting", "per photo ms", "photos/s, 1 thread", "photos/s, 2 threads"], rows
            ),
        ]
    )
    if args.write:
        write_section(ROOT / args.write, "inference-threads", body)


if __name__ == "__main__":
    main()
