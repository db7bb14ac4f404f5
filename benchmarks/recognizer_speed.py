"""What a face costs each recognizer: ms per chip at batch 1 and 32, and where the time goes.

    .venv/bin/python benchmarks/recognizer_speed.py [--write docs/benchmarks.md] [--threads 2]

Every recognizer of the registry (float32 and int8 builds) embeds the same 64 real chips
(LFW faces, from ``benchmarks/_lfw_chips.py``'s cache, or found now in the shared photos when
that cache is absent) through the library's own embedder (``make_embedder``: the converted
graph, the session options facelens uses), one view per chip; runs alternate between the
models so that a busy minute hits all of them. Median of ``--repeat`` rounds. The flip view
doubles a model's cost, a fusion costs the sum of its parts.

ONNX Runtime's profiler then splits one model's time by operator (batch 8, the same threads):
what is worth rewriting.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens import EmbedConfig
from facelens.embed import make_embedder
from facelens.models import MODELS, ModelStore
from facelens.runtime import RuntimeConfig

RECOGNIZERS = [n for n, s in MODELS.items() if s.kind == "recognizer"]
CACHE = ROOT / "benchmarks" / ".cache"


def sample_chips(n: int = 64) -> dict[str, np.ndarray]:
    """``n`` real chips of each alignment: LFW faces from the chip cache when it is built,
    else faces found now in the shared photos."""
    import _lfw_chips as lc

    try:
        keys = lc.variant_keys(data_root() / "lfw")["clean"]
        cs = lc.ChipSet("clean", keys)
        idx = np.flatnonzero(cs.ok[:])[:: max(1, int(cs.ok.sum()) // n)][:n]
        return {v: np.ascontiguousarray(cs.arrays[v][idx]) for v in lc.VIEWS}
    except SystemExit:
        pass
    from facelens import DetectConfig, Pipeline, PipelineConfig
    from facelens.decode import decode_image

    pipe = Pipeline(
        PipelineConfig(detect=DetectConfig(backend="yunet"), embed=EmbedConfig(model="dlib+sface"))
    )
    got: dict[str, list[np.ndarray]] = {}
    for p in sorted((data_root() / "faces").rglob("*.jpg")):
        img = decode_image(p)[0]
        for k, v in pipe.views(img, pipe.align(img, pipe.detect(img))).items():
            got.setdefault(k, []).extend(v)
    return {k: np.stack((v * (n // len(v) + 1))[:n]) for k, v in got.items()}


def embedders(names: list[str], threads: int) -> dict[str, Any]:
    rt = RuntimeConfig(threads=threads, cache_dir=CACHE / "converted")
    out = {}
    for n in names:
        e = make_embedder(EmbedConfig(model=n, augment="none", batch_size=32), ModelStore(), rt)
        e.load()
        out[n] = e
    return out


def chip_ms(
    names: list[str], chips: dict[str, np.ndarray], threads: int = 2, repeat: int = 7
) -> dict[str, tuple[float, float]]:
    """Median ms per chip of each model at batch 1 and at batch 32 (one view)."""
    es = embedders(names, threads)
    times: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    for _ in range(repeat + 1):  # the first round warms up
        for batch in (1, 32):
            for n, e in es.items():
                x = chips[f"{e.alignment}{e.chip_size}"]
                t0 = time.perf_counter()
                for i in range(0, len(x), batch):
                    e.embed(x[i : i + batch])
                times[(n, batch)].append((time.perf_counter() - t0) * 1000 / len(x))
    return {
        n: (statistics.median(times[(n, 1)][1:]), statistics.median(times[(n, 32)][1:]))
        for n in names
    }


def profile(name: str, chips: dict[str, np.ndarray], threads: int) -> dict[str, float]:
    """Share of the kernel time per operator type (ONNX Runtime's profiler, batch 8)."""
    import onnxruntime as ort

    from facelens.convert.cache import converted
    from facelens.embed.onnx_generic import prepare_input

    spec = ModelStore().spec(name)
    conv = converted(name, ModelStore(), CACHE / "converted")
    decl = spec.recognizer
    assert decl is not None
    x: Any = chips[f"{decl.alignment}{decl.input_size}"][:8]
    if decl.family != "dlib":
        x = prepare_input(x, decl)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "p")
        so.log_severity_level = 3
        s = ort.InferenceSession(str(conv.onnx), so, providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: x}
        for _ in range(10):
            s.run(None, feed)
        events = json.loads(Path(s.end_profiling()).read_text())
    by: dict[str, float] = collections.Counter()
    for ev in events:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            by[ev["args"]["op_name"]] += ev["dur"]
    total = sum(by.values()) or 1.0
    return {k: v / total for k, v in sorted(by.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    chips = sample_chips()
    ms = chip_ms(RECOGNIZERS, chips, args.threads, args.repeat)
    rows = []
    for n in RECOGNIZERS:
        b1, b32 = ms[n]
        prof = profile(n, chips, args.threads)
        top = ", ".join(f"{k} {v:.0%}" for k, v in list(prof.items())[:4])
        rows.append([n, f"{b1:.2f}", f"{b32:.2f}", f"{2 * b1:.2f}", f"{2 * b32:.2f}", top])
        print(rows[-1], flush=True)
    body = "\n\n".join(
        [
            f"Machine: {machine()}, shared with other work (ratios within the table hold, "
            "absolute times drift). Command: `.venv/bin/python benchmarks/recognizer_speed.py "
            f"--write docs/benchmarks.md`. ONNX Runtime CPU, {args.threads} threads; 64 LFW "
            f"chips per model, runs alternated, median of {args.repeat}; with flip = the chip "
            "and its mirror. Profile: ONNX Runtime's profiler, batch 8, share of kernel time.",
            md_table(
                [
                    "recognizer",
                    "ms / chip, batch 1",
                    "batch 32",
                    "with flip, batch 1",
                    "with flip, batch 32",
                    "where the time goes",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "recognizer-speed", body)


if __name__ == "__main__":
    main()
