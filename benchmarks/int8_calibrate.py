"""The activation ranges of the int8 recognizers, measured on faces outside every evaluation.

    .venv/bin/python benchmarks/int8_calibrate.py [--model dlib_resnet_v1_int8 ...]

Every evaluation of a recognizer reads LFW (View 1 and 2, degraded LFW, the open-set splits,
clustering), so the calibration faces come from the shared data's other photos and videos:
``faces/`` (face_recognition's and face-api.js's photos and crops), ``detection/`` (dlib's
labelled photos) and every 3rd frame of the clips in ``video/``. Every face YuNet finds there
is aligned as the pipeline aligns it (dlib's 150 px chip, the ArcFace 112 px chip), and its
mirror image is added (the flip view runs mirrored chips). ONNX Runtime's MinMax calibrator
records each activation's range on the parent's float32 graph; the table (ranges only, no
face data) is written to ``src/facelens/convert/int8/<model>.json``, and the int8 graph is
built from it twice to check that the bytes are the same (their SHA-256 is printed: the
registry's ``onnx_sha256``).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root
from facelens import DetectConfig, EmbedConfig, Pipeline, PipelineConfig
from facelens.convert.cache import converted
from facelens.convert.quantize import quantize_qdq, table_document
from facelens.decode import decode_image
from facelens.embed.onnx_generic import prepare_input
from facelens.models import MODELS, ModelStore

TABLES = ROOT / "src" / "facelens" / "convert" / "int8"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
FRAME_STEP = 3


def images(data: Path) -> list[tuple[str, np.ndarray]]:
    """(source, RGB image) of every photo and every FRAME_STEP-th video frame."""
    import cv2

    out = []
    for folder in ("faces", "detection"):
        for p in sorted((data / folder).rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                out.append((str(p.relative_to(data)), decode_image(p)[0]))
    for clip in sorted((data / "video").glob("*.mp4")):
        cap = cv2.VideoCapture(str(clip))
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n % FRAME_STEP == 0:
                out.append((f"{clip.relative_to(data)}#{n}", frame[:, :, ::-1].copy()))
            n += 1
        cap.release()
    return out


def chips(data: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every face's chip of each alignment (with its mirror), and how many came from where."""
    pipe = Pipeline(
        PipelineConfig(detect=DetectConfig(backend="yunet"), embed=EmbedConfig(model="dlib+sface"))
    )
    views: dict[str, list[np.ndarray]] = {}
    counts: dict[str, int] = {}
    for source, img in images(data):
        faces = pipe.align(img, pipe.detect(img))
        if len(faces) == 0:
            continue
        for key, c in pipe.views(img, faces).items():
            views.setdefault(key, []).extend([c, c[:, :, ::-1]])
        group = source.split("/")[0] if "#" not in source else source.split("#")[0]
        counts[group] = counts.get(group, 0) + len(faces)
    return {k: np.ascontiguousarray(np.concatenate(v)) for k, v in views.items()}, counts


class Reader:
    def __init__(self, name: str, x: np.ndarray, batch: int = 16) -> None:
        self.batches = iter([{name: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def ranges(fp32: bytes, x: np.ndarray) -> dict[str, tuple[float, float]]:
    """ONNX Runtime's MinMax ranges of every activation of ``fp32`` over inputs ``x``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    ops = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fp32.onnx"
        src.write_bytes(fp32)
        cal = create_calibrator(
            src,
            ops,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        name = onnx.load_from_string(fp32).graph.input[0].name
        cal.collect_data(Reader(name, x))
        data = cal.compute_data()
    return {
        k: tuple(float(np.asarray(r).reshape(-1)[0]) for r in v.range_value)  # type: ignore[misc]
        for k, v in data.data.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    int8 = [n for n, s in MODELS.items() if s.convert == "int8_qdq"]
    ap.add_argument("--model", action="append", default=None, help=f"of {int8}")
    args = ap.parse_args()
    store = ModelStore()
    views, counts = chips(data_root())
    print("faces per source:", counts, {k: v.shape for k, v in views.items()}, flush=True)
    for name in args.model or int8:
        spec = MODELS[name]
        decl = store.spec(spec.parent).recognizer
        assert decl is not None
        c = converted(spec.parent, store, None)
        fp32 = c.onnx if isinstance(c.onnx, bytes) else c.onnx.read_bytes()
        x: Any = views[f"{decl.alignment}{decl.input_size}"]
        if decl.family != "dlib":  # the dlib graph reads uint8 chips; others their input
            x = prepare_input(x, decl)
        doc = table_document(
            name,
            spec.parent,
            ranges(fp32, x),
            "python benchmarks/int8_calibrate.py",
            {"faces": counts, "chips_with_mirrors": len(x)},
        )
        import json

        TABLES.mkdir(parents=True, exist_ok=True)
        (TABLES / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        digests = {hashlib.sha256(quantize_qdq(fp32, doc, name)).hexdigest() for _ in range(2)}
        print(name, "tensors:", len(doc["ranges"]), "int8 SHA-256:", digests, flush=True)
        if len(digests) != 1:
            raise SystemExit(f"{name}: two builds from one table differ")


if __name__ == "__main__":
    main()
