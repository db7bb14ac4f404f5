"""ONNX Runtime backends against dlib and face_recognition: embedding, detection, end to end.

    .venv/bin/python benchmarks/onnx_speed.py [--write docs/benchmarks.md] [--threads 2]
        [--provider cpu|cuda] [--section onnx-speed]

Everything is measured in this one process, alternating ours and the peer's run so that
machine drift affects both equally; each figure is the median of the repeats.

1. Embedding: 32 real face chips per batch. ONNX (batch 32, --threads) against dlib's own
   batched ``compute_face_descriptor`` (single-threaded: dlib has no threading here).
2. CNN detection on a 640x480 photo at upsample 0 (and 1): ONNX including the pyramid and
   suppression, against dlib's ``cnn_face_detection_model_v1``.
3. End to end on 640x480 photos (``--photos``, default: the photos of ``detection/`` and
   ``faces/face_recognition`` letterboxed to 640x480): decode, detect, landmarks, embed,
   identify against the knn_examples/train people, against face_recognition's default
   pipeline (``load_image_file``, ``face_locations``, ``face_encodings``,
   ``face_distance``) on the same files. Faces found are reported beside the throughput.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import DetectConfig, EmbedConfig, Pipeline, PipelineConfig
from facelens.detect import make_detector
from facelens.embed import make_embedder
from facelens.gallery import Consent
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig


def alternate(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turn ``repeat`` times after a warm-up."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def letterbox(src: Path, dst: Path, w: int = 640, h: int = 480) -> None:
    im = Image.open(src).convert("RGB")
    im.thumbnail((w, h))
    canvas = Image.new("RGB", (w, h), (0, 0, 0))
    canvas.paste(im, ((w - im.width) // 2, (h - im.height) // 2))
    canvas.save(dst, quality=95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    ap.add_argument("--section", default="onnx-speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--provider", default="cpu")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument(
        "--skip-peer-detection",
        action="store_true",
        help="skip dlib's CNN (minutes per call at upsample 1)",
    )
    args = ap.parse_args()
    import dlib
    import face_recognition as fr

    data = data_root()
    photos = data / "faces" / "face_recognition"
    runtime = RuntimeConfig(provider=args.provider, threads=args.threads)
    store = ModelStore()
    rows: list[list[Any]] = []

    # 1. embedding
    pipe = Pipeline(PipelineConfig(runtime=runtime))
    chips = []
    for p in sorted((data / "lfw" / "images").glob("A*/*_0001.jpg"))[:32]:
        img = facelens.load_image(p)
        f = pipe.detect(img)
        chips.append(pipe.chips(img, f[f.largest()])[0])
    batch = np.stack(chips)
    # one view per face, as dlib computes it (the default flip view would double the work)
    onnx_emb = make_embedder(
        EmbedConfig(model="dlib", backend="onnx", batch_size=32, augment="none"), store, runtime
    )
    dlib_net = dlib.face_recognition_model_v1(str(store.path("dlib_resnet_v1")))
    dlib_batch = [np.ascontiguousarray(c) for c in batch]
    t = alternate(
        {
            "onnx": lambda: onnx_emb.embed(batch),
            "dlib": lambda: dlib_net.compute_face_descriptor(dlib_batch),
        },
        max(3, args.repeat // 2),
    )
    per_face = {k: v / len(batch) * 1000 for k, v in t.items()}
    rows.append(
        [
            "embedding, batch 32 (ms per face)",
            f"{per_face['onnx']:.2f}",
            f"{per_face['dlib']:.1f} (dlib)",
            f"{per_face['dlib'] / per_face['onnx']:.1f}x",
        ]
    )
    print(rows[-1], flush=True)

    # 2. detection at 640x480
    img = facelens.load_image(photos / "obama-480p.jpg")
    img = np.ascontiguousarray(img[:, (img.shape[1] - 640) // 2 :][:, :640])
    cnn = dlib.cnn_face_detection_model_v1(str(store.path("dlib_mmod_v1")))
    for up in (0, 1):
        det = make_detector(DetectConfig(backend="onnx_mmod", upsample=up), store, runtime)
        fns: dict[str, Callable[[], Any]] = {"onnx": lambda det=det: det.detect(img)}
        if up == 0 or not args.skip_peer_detection:
            fns["dlib"] = lambda up=up: cnn(img, up)
        t = alternate(fns, 3 if up else args.repeat)
        peer = t.get("dlib")
        rows.append(
            [
                f"CNN detection 640x480, upsample {up} (ms per image)",
                f"{t['onnx'] * 1000:.1f}",
                f"{peer * 1000:.0f} (dlib)" if peer else "not run",
                f"{peer / t['onnx']:.1f}x" if peer else "",
            ]
        )
        print(rows[-1], flush=True)

    # 3. end to end
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        from detection import group_photo_sources

        sources = group_photo_sources(data)
        files = []
        for i, s in enumerate(sources):
            files.append(tmpdir / f"{i:02d}.jpg")
            letterbox(s, files[-1])
        train = sorted((photos / "knn_examples" / "train").glob("*/*"))
        consent = Consent(
            purpose="benchmark", granted_by="benchmark", granted_at="2026-01-01T00:00:00Z"
        )
        known = [fr.face_encodings(fr.load_image_file(str(p)))[0] for p in train]

        def peer_run() -> int:
            n = 0
            for f in files:
                im = fr.load_image_file(str(f))
                for enc in fr.face_encodings(im, fr.face_locations(im)):
                    fr.face_distance(known, enc)
                    n += 1
            return n

        results: dict[str, tuple[float, int]] = {}
        for label, cfg in (
            ("facelens default (yunet)", DetectConfig()),
            ("facelens onnx_mmod, upsample 0", DetectConfig(backend="onnx_mmod")),
            ("facelens onnx_mmod, upsample 1", DetectConfig(backend="onnx_mmod", upsample=1)),
        ):
            p = Pipeline(PipelineConfig(detect=cfg, runtime=runtime))
            g = facelens.Gallery.open(tmpdir / f"g{len(results)}.db")
            for person in sorted((photos / "knn_examples" / "train").iterdir()):
                g.enroll(p, person.name, sorted(person.iterdir()), consent)

            def ours(p: Pipeline = p, g: facelens.Gallery = g) -> int:
                n = 0
                for f in files:
                    a = p.analyze(p.decode(f)[0])
                    if a.embeddings is not None and len(a.embeddings):
                        g.identify(a.embeddings)
                    n += len(a.faces)
                return n

            t0 = time.perf_counter()
            n_ours = ours()
            results[label] = (time.perf_counter() - t0, n_ours)
        t0 = time.perf_counter()
        n_peer = peer_run()
        t_peer = time.perf_counter() - t0
        for label, (secs, n) in results.items():
            rows.append(
                [
                    f"end to end, {len(files)} photos 640x480: {label} (images/s; faces "
                    f"found: {n} vs {n_peer})",
                    f"{len(files) / secs:.2f}",
                    f"{len(files) / t_peer:.2f} (face_recognition)",
                    f"{t_peer / secs:.1f}x",
                ]
            )
            print(rows[-1], flush=True)

    body = "\n\n".join(
        [
            f"Machine: {machine()}; ONNX Runtime provider `{args.provider}`, {args.threads} "
            f"threads. Command: `.venv/bin/python benchmarks/onnx_speed.py --write "
            f"docs/benchmarks.md --threads {args.threads} --provider {args.provider}`. Same "
            "weights, same process, runs alternated; medians.",
            md_table(["measure", "facelens (ONNX Runtime)", "peer", "speed-up"], rows),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, args.section, body)


if __name__ == "__main__":
    main()
