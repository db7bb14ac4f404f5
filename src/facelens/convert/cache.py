"""Convert on first use, keep the result: ONNX files keyed by the source file's SHA-256.

Each registry entry names its converter (``ModelSpec.convert``): ``dlib_resnet`` and
``dlib_mmod`` build graphs from dlib's files; ``onnx_float`` makes an ONNX file's
block-quantised weights float32 and its image dimensions free (``convert.onnx_float``);
``int8_qdq`` quantizes another entry's converted graph with a shipped table of activation
ranges (``convert.quantize``), and the result must have the SHA-256 the registry pins.

``<cache_dir>/<model>-<source sha256[:16]>-c<CONVERTER_VERSION>.onnx`` holds the graph and a
``.json`` beside it records the source checksum, the ONNX file's own SHA-256 (checked before
every load, like the registry's files) and what the runtime needs besides the graph (the
MMOD geometry). Files are written to a temporary name and renamed, so processes racing to
convert never see half a file. A second run finds the file and converts nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelens.convert.dlib_format import read_network
from facelens.convert.dlib_nets import check, mmod_topology, resnet_topology
from facelens.convert.onnx_float import float_model
from facelens.convert.onnx_graph import build_graph
from facelens.errors import ModelError
from facelens.files import atomic_write
from facelens.models import ModelSpec, ModelStore
from facelens.runtime import RuntimeConfig, make_session

__all__ = ["CONVERTER_VERSION", "Converted", "converted", "session_for"]

log = logging.getLogger(__name__)

# Bump when the generated graphs change, so old cache files are not reused.
CONVERTER_VERSION = 3

_memo: dict[tuple[str, str, str], Converted] = {}
_lock = threading.RLock()  # an int8 model converts its parent first, under the same lock


@dataclass(frozen=True)
class Converted:
    """A converted network.

    Attributes:
        model: registry name of the source model.
        onnx: the ONNX file (cache) or its bytes (no cache).
        meta: what the runtime needs besides the graph.
        converted_now: True when this call did the conversion.
    """

    model: str
    onnx: bytes | Path
    meta: dict[str, Any]
    converted_now: bool


def _convert_resnet(data: bytes, source: str) -> tuple[bytes, dict[str, Any]]:
    net = read_network(data, source)
    pairs = check(net, resnet_topology(), source)
    rows, cols = int(net.input["rows"]), int(net.input["cols"])
    onnx = build_graph(
        pairs,
        net.input,
        graph_name="dlib_resnet_v1",
        input_name="chips",
        output_name="descriptors",
        height=rows,
        width=cols,
    )
    return onnx, {"chip_size": rows, "dim": 128}


def _convert_mmod(data: bytes, source: str) -> tuple[bytes, dict[str, Any]]:
    net = read_network(data, source)
    pairs = check(net, mmod_topology(), source)
    onnx = build_graph(
        pairs,
        net.input,
        graph_name="dlib_mmod_v1",
        input_name="pyramid",
        output_name="scores",
        height=None,
        width=None,
        normalize=False,
    )
    convs = [
        [layer.attrs["kernel"][0], layer.attrs["stride"][0], layer.attrs["padding"][0]]
        for _, layer in pairs
        if layer is not None and layer.kind == "con"
    ]
    windows = net.loss["detector_windows"]
    if len(windows) != 1 or net.loss["bounding_box_regression"]:
        raise ModelError(
            source, "only single-window MMOD detectors without box regression are supported"
        )
    meta = {
        "convs": convs,
        "window": [windows[0]["width"], windows[0]["height"]],
        "mean": list(net.input["mean"]),
        "padding": net.input["padding"],
        "outer_padding": net.input["outer_padding"],
        "nms_iou": net.loss["nms_iou"],
        "nms_covered": net.loss["nms_percent_covered"],
    }
    return onnx, meta


def _convert_float(data: bytes, source: str) -> tuple[bytes, dict[str, Any]]:
    return float_model(data, source)


CONVERTERS = {
    "dlib_resnet": _convert_resnet,
    "dlib_mmod": _convert_mmod,
    "onnx_float": _convert_float,
    "int8_qdq": None,  # made from another entry's graph: _convert_int8
}


def _convert_int8(
    spec: ModelSpec, models: ModelStore, cache_dir: Path | None
) -> tuple[bytes, dict[str, Any]]:
    from facelens.convert.quantize import load_table, quantize_qdq

    parent = converted(spec.parent, models, cache_dir)
    fp32 = parent.onnx.read_bytes() if isinstance(parent.onnx, Path) else parent.onnx
    table = load_table(spec.name)
    if table.get("parent") != spec.parent:
        raise ModelError(spec.name, f"its int8 table was measured on {table.get('parent')!r}")
    return quantize_qdq(fp32, table, spec.name), dict(parent.meta)


def _check_pinned(spec: ModelSpec, onnx: bytes) -> None:
    """A converted file the registry pins must be that file, byte for byte."""
    if not spec.onnx_sha256:
        return
    digest = hashlib.sha256(onnx).hexdigest()
    if digest != spec.onnx_sha256:
        raise ModelError(
            spec.name,
            f"its converted file has SHA-256 {digest}, the registry pins {spec.onnx_sha256}: "
            "the onnx or onnxruntime installed is not the version facelens was built with.",
            "Install the pinned versions: pip install -c constraints.txt onnx onnxruntime",
        )


def _load_cached(
    onnx_path: Path, meta_path: Path, source_sha: str, pinned: str
) -> dict[str, Any] | None:
    """The recorded metadata if the cached pair is complete and intact (and the file is the
    pinned one, when the registry pins it), else None."""
    try:
        record = json.loads(meta_path.read_text())
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if (
        record.get("source_sha256") != source_sha
        or record.get("onnx_sha256") != digest
        or record.get("converter") != CONVERTER_VERSION
        or (pinned and digest != pinned)
    ):
        log.warning("ignoring altered or stale converted model %s", onnx_path)
        return None
    meta: dict[str, Any] = record["meta"]
    return meta


def converted(name: str, models: ModelStore, cache_dir: Path | None) -> Converted:
    """The ONNX version of registry model ``name``, converting it if no valid copy exists.

    Raises:
        ModelError: no converter for ``name``, or the source file is missing, altered or not
            of the expected shape.
    """
    spec = models.spec(name)
    if spec.convert not in CONVERTERS:
        raise ModelError(name, f"model {name!r} is not converted to ONNX (it is used as it is)")
    key = (name, spec.sha256, str(cache_dir))
    with _lock:
        # verifies the checksum (again, cheaply, if the file has not changed since): a file
        # altered after this process converted it is refused, not silently still used
        source = models.path(name)
        if key in _memo:
            return _memo[key]
        onnx_path = meta_path = None
        if cache_dir is not None:
            stem = f"{name}-{(spec.onnx_sha256 or spec.sha256)[:16]}-c{CONVERTER_VERSION}"
            onnx_path, meta_path = cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"
            meta = _load_cached(onnx_path, meta_path, spec.sha256, spec.onnx_sha256)
            if meta is not None:
                result = Converted(name, onnx_path, meta, converted_now=False)
                _memo[key] = result
                return result
        t = time.perf_counter()
        convert = CONVERTERS[spec.convert]
        if convert is None:
            onnx, meta = _convert_int8(spec, models, cache_dir)
        else:
            onnx, meta = convert(source.read_bytes(), spec.filename)
        _check_pinned(spec, onnx)
        log.info("converted %s to ONNX in %.2f s", name, time.perf_counter() - t)
        if onnx_path is not None and meta_path is not None:
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(onnx_path, onnx)
            record = {
                "source": spec.filename,
                "source_sha256": spec.sha256,
                "onnx_sha256": hashlib.sha256(onnx).hexdigest(),
                "converter": CONVERTER_VERSION,
                "meta": meta,
            }
            atomic_write(meta_path, json.dumps(record, indent=1).encode())
            result = Converted(name, onnx_path, meta, converted_now=True)
        else:
            result = Converted(name, onnx, meta, converted_now=True)
        _memo[key] = result
        return result


def forget() -> None:
    """Drop this process's memory of converted models (tests use it)."""
    with _lock:
        _memo.clear()


def session_for(
    name: str, models: ModelStore, runtime: RuntimeConfig, what: str
) -> tuple[Any, str, Converted]:
    """An ONNX Runtime session of registry model ``name`` (converted or from the cache), the
    provider it runs on, and the conversion record."""
    conv = converted(name, models, runtime.cache_dir)
    session, provider = make_session(conv.onnx, runtime, what)
    return session, provider, conv
