"""convert: dlib files are read exactly, refused when not what we expect, cached by checksum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelens import ModelError
from facelens.convert import cache
from facelens.convert.dlib_format import DlibStream, read_network
from facelens.convert.dlib_nets import check, mmod_topology, resnet_topology
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig, available_providers, make_session


def test_primitive_encodings() -> None:
    # 300 = 0x012c as 2 little-endian bytes; -5 has the sign bit; 0.75 = 3 * 2**-2
    s = DlibStream(b"\x02\x2c\x01" + b"\x81\x05" + b"\x01\x03\x81\x02" + b"\x01\x03abc" + b"1")
    assert s.read_int() == 300 and s.read_int() == -5 and s.read_float() == 0.75
    assert s.read_string() == "abc" and s.read_bool() is True
    with pytest.raises(ModelError, match="unexpected end of file"):
        s.read_int()


def test_resnet_file_matches_the_published_topology() -> None:
    path = ModelStore().path("dlib_resnet_v1")
    net = read_network(path.read_bytes(), str(path))
    assert net.input["rows"] == net.input["cols"] == 150
    assert np.allclose(net.input["mean"], (122.782, 117.001, 104.298), atol=1e-3)
    pairs = check(net, resnet_topology(), str(path))
    kinds = [op[1] for op, layer in pairs if layer is not None]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14 and kinds[-1] == "fc"
    fc = pairs[-1][1]
    assert fc.weights["weights"].shape == (256, 128) and "biases" not in fc.weights


def test_mmod_file_and_its_detection_options() -> None:
    path = ModelStore().path("dlib_mmod_v1")
    net = read_network(path.read_bytes(), str(path))
    assert net.loss["detector_windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert 0.3 < net.loss["nms_iou"] < 0.4
    assert net.input["padding"] == 10 and net.input["outer_padding"] == 11
    check(net, mmod_topology(), str(path))


def test_a_file_of_another_shape_is_refused() -> None:
    path = ModelStore().path("dlib_mmod_v1")
    net = read_network(path.read_bytes(), str(path))
    with pytest.raises(ModelError, match="layer wrappers"):
        check(net, resnet_topology(), str(path))
    data = path.read_bytes()
    with pytest.raises(ModelError, match="not a dlib network file"):
        read_network(data[: len(data) // 2], "half.dat")
    with pytest.raises(ModelError):
        read_network(b"\x01\x01\x01\x05hello", "junk.dat")


def test_second_use_converts_nothing_and_an_altered_cache_is_redone(tmp_path: Path) -> None:
    models = ModelStore()
    cache.forget()
    first = cache.converted("dlib_mmod_v1", models, tmp_path)
    assert first.converted_now and isinstance(first.onnx, Path) and first.onnx.exists()
    record = json.loads(first.onnx.with_suffix(".json").read_text())
    assert record["source_sha256"] == models.spec("dlib_mmod_v1").sha256
    cache.forget()  # a new process
    second = cache.converted("dlib_mmod_v1", models, tmp_path)
    assert not second.converted_now and second.meta == first.meta
    with open(first.onnx, "r+b") as f:  # tamper with the cached graph
        f.seek(100)
        f.write(b"\x00\x00\x00\x00")
    cache.forget()
    third = cache.converted("dlib_mmod_v1", models, tmp_path)
    assert third.converted_now
    cache.forget()


def test_unknown_model_has_no_converter() -> None:
    with pytest.raises(ModelError, match="model 'dlib_landmarks5_v1' is not converted to ONNX"):
        cache.converted("dlib_landmarks5_v1", ModelStore(), None)


@pytest.mark.skipif("cuda" in available_providers(), reason="this onnxruntime has CUDA")
def test_asking_for_cuda_without_it_is_an_error_not_a_silent_fallback() -> None:
    with pytest.raises(ModelError, match="'cuda' is not available.*onnxruntime-gpu"):
        make_session(b"", RuntimeConfig(provider="cuda"), "detector")


def test_runtime_config_is_validated() -> None:
    with pytest.raises(ValueError, match="provider must be one of"):
        RuntimeConfig(provider="tpu")
