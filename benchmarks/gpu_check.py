"""Parity and speed of the ONNX backends on the CUDA execution provider, on a GPU machine.

Two steps, because the GPU machine has neither dlib nor the evaluation data:

    # here: reference faces, dlib's descriptors and dlib's detections -> a file to carry
    .venv/bin/python benchmarks/gpu_check.py prepare --out .gpu/ref.npz
    # there (onnxruntime-gpu installed): compare and time, CUDA and CPU
    python3 benchmarks/gpu_check.py run --ref .gpu/ref.npz --models .gpu/models --out result.json
    # here again: the table in docs/benchmarks.md
    .venv/bin/python benchmarks/gpu_check.py report --json result.json --device "..." \
        --write docs/benchmarks.md

The result JSON holds, per provider: the largest per-component descriptor difference to
dlib and the lowest cosine over the reference faces, detection IoU and score differences to
dlib's CNN at upsample 0 and 1 on a 640x480 photo, and median timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def prepare(out: Path) -> None:
    import dlib

    import facelens
    from _report import data_root
    from facelens.align import Aligner
    from facelens.faces import Faces
    from facelens.models import ModelStore

    data = data_root()
    aligner = Aligner()
    chips = []
    for p in sorted((data / "lfw" / "images").glob("*/*_0001.jpg"))[:256]:
        img = facelens.load_image(p)
        chips.append(aligner.chips(img, Faces(xyxy=[[68, 68, 182, 182]], score=[1.0]))[0])
    batch = np.stack(chips)
    net = dlib.face_recognition_model_v1(str(ModelStore().path("dlib_resnet_v1")))
    ref = np.array(
        net.compute_face_descriptor([np.ascontiguousarray(c) for c in batch]), np.float32
    )
    img = facelens.load_image(data / "faces" / "face_recognition" / "two_people.jpg")
    img = np.ascontiguousarray(img[90:570, 300:940])  # 640x480 holding both faces
    cnn = dlib.cnn_face_detection_model_v1(str(ModelStore().path("dlib_mmod_v1")))
    dets: dict[str, Any] = {}
    for up in (0, 1):
        d = cnn(img, up)
        dets[f"boxes{up}"] = np.array(
            [[r.rect.left(), r.rect.top(), r.rect.right() + 1, r.rect.bottom() + 1] for r in d],
            np.float32,
        )
        dets[f"scores{up}"] = np.array([r.confidence for r in d], np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, chips=batch, descriptors=ref, image=img, **dets)
    print(f"wrote {out}: {len(batch)} faces, {[len(dets[f'boxes{u}']) for u in (0, 1)]} detections")


def _median_ms(fn: Any, repeat: int = 20) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run(ref_path: Path, models: Path, out: Path) -> None:
    import onnxruntime

    from facelens import DetectConfig, EmbedConfig
    from facelens.detect import make_detector
    from facelens.embed import make_embedder
    from facelens.faces import box_iou
    from facelens.models import ModelStore
    from facelens.runtime import RuntimeConfig, available_providers

    if hasattr(onnxruntime, "preload_dlls"):
        onnxruntime.preload_dlls()
    ref = np.load(ref_path)
    store = ModelStore(search_dirs=(models,))
    result: dict[str, Any] = {
        "onnxruntime": onnxruntime.__version__,
        "available": available_providers(),
        "device": onnxruntime.get_device(),
    }
    for provider, threads in (("cuda", 0), ("cpu", 2)):
        if provider not in result["available"]:
            result[provider] = "not available"
            continue
        rt = RuntimeConfig(provider=provider, threads=threads)
        r: dict[str, Any] = {}
        emb = make_embedder(EmbedConfig(model="dlib", backend="onnx", batch_size=128), store, rt)
        got = emb.descriptors(ref["chips"])  # type: ignore[attr-defined]
        want = ref["descriptors"]
        r["faces"] = len(want)
        r["max_abs_diff"] = float(np.abs(got - want).max())
        r["min_cosine"] = float(
            ((got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)).min()
        )
        for bs in (32, 128):
            e = make_embedder(EmbedConfig(model="dlib", backend="onnx", batch_size=bs), store, rt)
            chips = ref["chips"][:bs]
            r[f"embed_ms_per_face_batch{bs}"] = _median_ms(lambda: e.embed(chips)) / bs
        img = ref["image"]
        for up in (0, 1):
            det = make_detector(DetectConfig(backend="onnx_mmod", upsample=up), store, rt)
            faces = det.detect(img)
            boxes, scores = ref[f"boxes{up}"], ref[f"scores{up}"]
            r[f"detect{up}_count"] = [len(faces), len(boxes)]
            if len(faces) and len(boxes) and len(faces) == len(boxes):
                iou = box_iou(faces.xyxy, boxes)
                match = iou.argmax(1)
                r[f"detect{up}_min_iou"] = float(iou.max(1).min())
                r[f"detect{up}_max_score_diff"] = float(np.abs(faces.score - scores[match]).max())
            r[f"detect{up}_ms_640x480"] = _median_ms(lambda det=det: det.detect(img))
        result[provider] = r
        print(provider, json.dumps(r, indent=1), flush=True)
    out.write_text(json.dumps(result, indent=1))


def report(result_path: Path, device: str, write: str | None) -> None:
    from _report import ROOT, md_table, write_section

    res = json.loads(result_path.read_text())
    rows = []
    for provider in ("cuda", "cpu"):
        r = res.get(provider)
        if not isinstance(r, dict):
            rows.append([provider, "not available", "", "", "", "", ""])
            continue
        rows.append(
            [
                "CUDA" if provider == "cuda" else "CPU, 2 threads",
                f"{r['max_abs_diff']:.1e} / {r['min_cosine']:.7f} ({r['faces']} faces)",
                f"{r['embed_ms_per_face_batch32']:.3f}",
                f"{r['embed_ms_per_face_batch128']:.3f}",
                f"{r.get('detect0_min_iou', 0):.3f} / {r.get('detect0_max_score_diff', 0):.1e}",
                f"{r['detect0_ms_640x480']:.1f}",
                f"{r['detect1_ms_640x480']:.1f}",
            ]
        )
    body = "\n\n".join(
        [
            f"Device: {device}; onnxruntime-gpu {res['onnxruntime']}. Commands: "
            "`benchmarks/gpu_check.py prepare` here, `... run` there, `... report` here (see the "
            "script). Reference: dlib's own descriptors and CNN detections computed here.",
            md_table(
                [
                    "provider",
                    "embedding vs dlib: max difference / min cosine",
                    "embed ms/face, batch 32",
                    "batch 128",
                    "detection vs dlib (upsample 0, 1): min IoU / max score difference",
                    "detect 640x480 upsample 0 (ms)",
                    "upsample 1 (ms)",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if write:
        write_section(ROOT / write, "gpu", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--ref", type=Path, required=True)
    r.add_argument("--models", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--json", type=Path, required=True)
    rep.add_argument("--device", required=True)
    rep.add_argument("--write", default=None)
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.out)
    elif args.cmd == "run":
        run(args.ref, args.models, args.out)
    else:
        report(args.json, args.device, args.write)


if __name__ == "__main__":
    main()
