"""convert.onnx_float: block-quantised weights made float32 exactly as ONNX defines them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelens import ModelError
from facelens.convert import cache
from facelens.convert.onnx_float import dequantize, float_model
from facelens.models import ModelStore


def _reference(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int, block: int):  # type: ignore[no-untyped-def]
    """ONNX's own reference implementation of DequantizeLinear on the same tensors."""
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    inits = [numpy_helper.from_array(x, "x"), numpy_helper.from_array(scale, "s")]
    inputs = ["x", "s"]
    if zp is not None:
        inits.append(numpy_helper.from_array(zp, "z"))
        inputs.append("z")
    attrs = {"axis": axis} | ({"block_size": block} if block else {})
    node = helper.make_node("DequantizeLinear", inputs, ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ReferenceEvaluator(model).run(None, {})[0]


def test_dequantize_matches_onnx_per_axis_and_per_block() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (6, 10), dtype=np.int8)
    zp_axis = rng.integers(-3, 3, 10, dtype=np.int8)
    s_axis = rng.random(10).astype(np.float32)
    assert np.allclose(dequantize(x, s_axis, zp_axis, axis=1), _reference(x, s_axis, zp_axis, 1, 0))
    s_block = rng.random((6, 3)).astype(np.float32)  # blocks of 4 along axis 1: 4 + 4 + 2
    z_block = rng.integers(-3, 3, (6, 3), dtype=np.int8)
    assert np.allclose(
        dequantize(x, s_block, z_block, axis=1, block=4), _reference(x, s_block, z_block, 1, 4)
    )
    with pytest.raises(ValueError, match="blocked scale has shape"):
        dequantize(x, s_block, None, axis=0, block=4)


def test_the_shipped_int8_weights_dequantise_as_onnx_says() -> None:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(ModelStore().path("sface_2021dec")))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type == "DequantizeLinear"][:6]
    for n in nodes:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        x, s, z = (inits[i] for i in n.input)
        ours = dequantize(x, s, z, axis=int(a["axis"]), block=int(a["block_size"]))
        assert np.allclose(ours, _reference(x, s, z, int(a["axis"]), int(a["block_size"])))


def test_sface_converts_to_a_clean_float_graph() -> None:
    import onnx

    data = ModelStore().path("sface_2021dec").read_bytes()
    out, summary = float_model(data, "sface")
    assert summary["dequantized"] == 29 and summary["inputs"] == [
        {"name": "data", "shape": ["N", 3, "H", "W"]}
    ]
    m = onnx.load_from_string(out)
    assert not [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert [i.name for i in m.graph.input] == ["data"]  # the weights are no longer inputs
    with pytest.raises(ModelError, match="not an ONNX file"):
        float_model(b"this is not a network" * 10, "junk.onnx")


def test_a_tampered_converted_file_is_not_used(tmp_path: Path) -> None:
    store = ModelStore()
    cache.forget()
    first = cache.converted("yunet_2023mar", store, tmp_path)
    assert first.converted_now and isinstance(first.onnx, Path)
    digest = json.loads(first.onnx.with_suffix(".json").read_text())["onnx_sha256"]
    cache.forget()
    assert not cache.converted("yunet_2023mar", store, tmp_path).converted_now
    with open(first.onnx, "r+b") as f:  # someone edits the converted graph
        f.seek(2000)
        f.write(b"\xff\xff\xff\xff")
    cache.forget()
    again = cache.converted("yunet_2023mar", store, tmp_path)
    assert again.converted_now  # refused and made again from the verified source
    import hashlib

    assert hashlib.sha256(Path(again.onnx).read_bytes()).hexdigest() == digest  # type: ignore[arg-type]
    cache.forget()


def _templates(onnx: bytes, x: np.ndarray) -> np.ndarray:
    from facelens.runtime import RuntimeConfig, make_session

    session, _ = make_session(onnx, RuntimeConfig(threads=1), "test")
    v = np.concatenate([session.run(None, {"data": x[i : i + 8]})[0] for i in range(0, len(x), 8)])
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True))


def test_sface_prelu_rewrite_keeps_templates_within_1e_5_on_real_faces(data: Path) -> None:
    """The rewritten PRelu (60-70% of SFace's time in ONNX Runtime's own kernel) gives the
    templates of the graph as shipped, on real faces, and leaves no PRelu behind."""
    import onnx

    from facelens import DetectConfig, EmbedConfig, Pipeline, PipelineConfig, load_image
    from facelens.embed.onnx_generic import prepare_input

    source = ModelStore().path("sface_2021dec").read_bytes()
    rewritten, summary = float_model(source, "sface")
    original, _ = float_model(source, "sface", rewrite=False)
    assert summary["prelu_rewritten"] == 27
    assert not [n for n in onnx.load_from_string(rewritten).graph.node if n.op_type == "PRelu"]
    pipe = Pipeline(
        PipelineConfig(detect=DetectConfig(backend="yunet"), embed=EmbedConfig(model="sface"))
    )
    chips = []
    for photo in ("two_people.jpg", "obama.jpg", "biden.jpg", "obama-480p.jpg"):
        img = load_image(data / "faces" / "face_recognition" / photo)
        chips.append(pipe.views(img, pipe.align(img, pipe.detect(img)))["arcface112"])
    both = np.concatenate(chips)
    both = np.concatenate([both, both[:, :, ::-1]])  # and the flip view's mirrored chips
    decl = ModelStore().spec("sface_2021dec").recognizer
    assert decl is not None
    x = prepare_input(both, decl)
    assert len(x) >= 10
    diff = np.abs(_templates(rewritten, x) - _templates(original, x)).max()
    assert diff < 1e-5, diff
