"""int8 recognizers: a float32 graph made static int8 (QDQ, per-channel weights) from a table
of activation ranges shipped with facelens.

A quantized recognizer is a model of its own (``ModelSpec.convert == "int8_qdq"``): its own
name and template tag, its own thresholds, never a silent stand-in for its float32 parent.
Nothing is downloaded and no calibration images ship: the activation ranges were measured
once on face chips of photos outside every evaluation split (``benchmarks/int8_calibrate.py``,
recorded in ``facelens/convert/int8/<name>.json``), and ONNX Runtime's quantizer builds the
QDQ graph from the parent's converted graph and that table at first use. The result is the
same bytes on every machine with the pinned onnx and onnxruntime (``constraints.txt``): its
SHA-256 is pinned in the registry (``ModelSpec.onnx_sha256``) and checked after every
conversion and before every use of the cached file.

Example:
    >>> sorted(load_table("dlib_resnet_v1_int8"))[:2]
    ['chips', 'made_by']
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from facelens.errors import ModelError

__all__ = ["QUANT_OPTIONS", "load_table", "quantize_qdq", "table_document"]

log = logging.getLogger(__name__)

# How every shipped int8 recognizer is quantized (part of what the pinned SHA-256 covers).
# reduce_range: 7-bit weights, so u8 x s8 products cannot saturate the 16-bit sums of
# AVX2 machines without VNNI (this machine; results would otherwise depend on the CPU).
QUANT_OPTIONS: dict[str, Any] = {
    "per_channel": True,
    "reduce_range": True,
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "method": "MinMax",
}


def load_table(name: str) -> dict[str, Any]:
    """The shipped calibration record of int8 model ``name``.

    Raises:
        ModelError: the table is missing or malformed (the installation is incomplete).
    """
    try:
        text = resources.files("facelens.convert").joinpath("int8", f"{name}.json").read_text()
        doc: dict[str, Any] = json.loads(text)
        ranges = doc["ranges"]
        if not isinstance(ranges, dict) or not ranges:
            raise ValueError("no ranges")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(
            name,
            f"the int8 calibration table of {name!r} cannot be read ({type(e).__name__})",
            "Reinstall facelens: the table ships with it.",
        ) from None
    return doc


def table_document(
    name: str, parent: str, ranges: dict[str, tuple[float, float]], made_by: str, chips: Any
) -> dict[str, Any]:
    """A calibration record as ``benchmarks/int8_calibrate.py`` writes it (float32 values
    kept exactly: every float32 is a float64 that JSON writes and reads back unchanged)."""
    return {
        "model": name,
        "parent": parent,
        "method": QUANT_OPTIONS["method"],
        "options": QUANT_OPTIONS,
        "made_by": made_by,
        "chips": chips,
        "ranges": {
            k: [float(np.float32(lo)), float(np.float32(hi))]
            for k, (lo, hi) in sorted(ranges.items())
        },
    }


def quantize_qdq(fp32: bytes, table: dict[str, Any], source: str) -> bytes:
    """The QDQ int8 graph of float32 graph ``fp32`` with the activation ranges of ``table``.

    Raises:
        ModelError: the table does not fit the graph, or ONNX Runtime's quantizer fails.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    ranges = {
        str(k): (np.float32(v[0]), np.float32(v[1])) for k, v in dict(table["ranges"]).items()
    }
    model = onnx.load_from_string(fp32)
    names = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    unknown = sorted(set(ranges) - names)
    if unknown:
        raise ModelError(source, f"the int8 table names tensors the graph lacks: {unknown[:3]}")
    qlog = logging.getLogger()  # the quantizer logs advice at WARNING on the root logger
    level = qlog.level
    with tempfile.TemporaryDirectory(prefix="facelens-int8-") as tmp:
        src, dst, cal = (os.path.join(tmp, f) for f in ("in.onnx", "out.onnx", "ranges.json"))
        Path(src).write_bytes(fp32)
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), cal)
        try:
            qlog.setLevel(logging.ERROR)
            quantize_static(
                src,
                dst,
                calibration_data_reader=None,
                quant_format=QuantFormat.QDQ,
                per_channel=QUANT_OPTIONS["per_channel"],
                reduce_range=QUANT_OPTIONS["reduce_range"],
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                calibration_cache_path=cal,
            )
        except Exception as e:  # the quantizer's own errors are many and untyped
            raise ModelError(
                source, f"int8 quantization failed ({type(e).__name__}: {e})"
            ) from None
        finally:
            qlog.setLevel(level)
        return Path(dst).read_bytes()
