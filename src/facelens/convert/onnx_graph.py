"""Build an ONNX graph from a checked dlib network (``dlib_nets.check`` output).

Semantics carried over from dlib (``dnn/layers.h``, ``cuda/tensor_tools.h``):

- ``con``: cross-correlation with OIHW filters, symmetric zero padding; an ``affine`` that
  directly follows a ``con`` (batch norm folded at training time) is folded into the
  convolution's weights and bias here: ``W' = W * gamma``, ``b' = b * gamma + beta``;
- ``max_pool`` / ``avg_pool``: kernel, stride, padding as stored; an average pool with a
  0x0 kernel is ``avg_pool_everything`` (global average);
- ``add_prev``: element-wise sum of the current tensor and a tagged one whose shapes may
  differ: the result has the larger size in every dimension and missing elements count as
  zero (the shortcut of a down-sampling residual block has fewer channels and, at 8x8 -> 3x3
  vs 4x4, one more row and column than the main branch);
- ``fc``: ``(N, inputs) @ W (inputs, outputs)``.

With ``normalize=True`` the input is the image as the caller has it: uint8, NHWC, RGB, and
the graph casts it and transposes it to NCHW; dlib's input normalisation ``(x - mean) / 256``
is folded into the first convolution when that convolution has no padding (every output
then sees a whole kernel of real pixels, so ``W/256`` and ``b - sum(W * mean)/256`` are
exact), and applied as Sub/Mul nodes otherwise. With ``normalize=False`` the input is that
float32 NCHW tensor already (the MMOD detector's tiled pyramid is built outside the graph).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.convert.dlib_nets import Op

__all__ = ["OPSET", "build_graph"]

OPSET = 17

Shape = list[int | None]


class _Builder:
    def __init__(self) -> None:
        import onnx  # noqa: F401  (imported here: conversion is the only user)

        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, value: NDArray[Any]) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_out(size: int | None, k: int, s: int, p: int) -> int | None:
    return None if size is None else (size + 2 * p - k) // s + 1


def _pad_to(b: _Builder, x: str, shape: Shape, target: Shape) -> str:
    """Zero-pad ``x`` at the end of each dimension up to ``target``."""
    extra = []
    for have, want in zip(shape, target, strict=True):
        if have is None or want is None:
            if have != want:
                raise ValueError("add_prev needs static shapes where they differ")
            extra.append(0)
        else:
            extra.append(want - have)
    if not any(extra):
        return x
    pads = b.const("pads", np.array([0] * len(extra) + extra, np.int64))
    return b.node("Pad", [x, pads], mode="constant")


def build_graph(
    pairs: list[tuple[Op, Any]],
    net_input: dict[str, Any],
    *,
    graph_name: str,
    input_name: str,
    output_name: str,
    height: int | None,
    width: int | None,
    normalize: bool = True,
) -> bytes:
    """ONNX model bytes for ``pairs`` (inner-to-outer).

    Args:
        pairs: ``dlib_nets.check`` output.
        net_input: the input layer read from the file (its mean colour).
        graph_name: the graph's name.
        input_name: name of the uint8 (N, H, W, 3) input.
        output_name: name of the output.
        height: fixed input height, or None for any.
        width: fixed input width, or None for any.
        normalize: take uint8 NHWC images (True) or normalised float32 NCHW tensors.
    """
    import onnx
    from onnx import TensorProto, helper

    b = _Builder()
    fold_input = False
    if normalize:
        mean = np.array(net_input["mean"], np.float32)
        x = b.node("Cast", [input_name], to=TensorProto.FLOAT)
        x = b.node("Transpose", [x], perm=[0, 3, 1, 2])
        first = pairs[0][1] if pairs and pairs[0][0][1:2] == ("con",) else None
        fold_input = first is not None and tuple(first.attrs["padding"]) == (0, 0)
        if not fold_input:
            x = b.node("Sub", [x, b.const("mean_rgb", mean.reshape(1, 3, 1, 1))])
            x = b.node("Mul", [x, b.const("inv_256", np.array(1 / 256, np.float32))])
        in_info = helper.make_tensor_value_info(
            input_name, TensorProto.UINT8, ["batch", height or "height", width or "width", 3]
        )
    else:
        x = input_name
        in_info = helper.make_tensor_value_info(
            input_name, TensorProto.FLOAT, ["batch", 3, height or "height", width or "width"]
        )
    shape: Shape = [None, 3, height, width]
    tags: dict[int, tuple[str, Shape]] = {}
    pending_conv: dict[str, Any] | None = None  # a conv waiting for a following affine

    def flush() -> None:
        nonlocal x, shape, pending_conv
        if pending_conv is None:
            return
        c = pending_conv
        inputs = [x, b.const("W", c["W"])] + ([b.const("B", c["B"])] if c["B"] is not None else [])
        (kh, kw), (sh, sw), (ph, pw) = c["kernel"], c["stride"], c["padding"]
        x = b.node("Conv", inputs, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw])
        shape = [
            shape[0],
            int(c["W"].shape[0]),
            _conv_out(shape[2], kh, sh, ph),
            _conv_out(shape[3], kw, sw, pw),
        ]
        pending_conv = None

    for op, layer in pairs:
        if op[0] == "tag":
            flush()
            tags[op[1]] = (x, list(shape))
            continue
        if op[0] == "skip":
            flush()
            x, shape = tags[op[1]][0], list(tags[op[1]][1])
            continue
        kind = op[1]
        if kind == "con":
            flush()
            w = layer.weights
            filters = w["filters"].astype(np.float64)
            bias = w.get("biases")
            if fold_input:  # conv((x - m) / 256) = conv(x) / 256 - sum(W * m) / 256
                shift = (filters * mean.reshape(1, 3, 1, 1)).sum(axis=(1, 2, 3)) / 256
                bias = (np.zeros(len(filters)) if bias is None else bias) - shift
                filters = filters / 256
                fold_input = False
            pending_conv = {
                "W": filters.astype(np.float32),
                "B": None if bias is None else np.asarray(bias, np.float32),
                **layer.attrs,
            }
            continue
        if kind == "affine":
            gamma, beta = layer.weights["gamma"], layer.weights["beta"]
            if pending_conv is not None:
                c = pending_conv
                c["W"] = (c["W"] * gamma.reshape(-1, 1, 1, 1)).astype(np.float32)
                bias = c["B"] if c["B"] is not None else np.zeros_like(gamma)
                c["B"] = (bias * gamma + beta).astype(np.float32)
                flush()
            else:
                x = b.node("Mul", [x, b.const("gamma", gamma.reshape(1, -1, 1, 1))])
                x = b.node("Add", [x, b.const("beta", beta.reshape(1, -1, 1, 1))])
            continue
        flush()
        if kind == "relu":
            x = b.node("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            (kh, kw), (sh, sw), (ph, pw) = (
                layer.attrs["kernel"],
                layer.attrs["stride"],
                layer.attrs["padding"],
            )
            if kind == "avg_pool" and kh == 0 and kw == 0:
                x = b.node("GlobalAveragePool", [x])
                shape = [shape[0], shape[1], 1, 1]
            else:
                onnx_op = "MaxPool" if kind == "max_pool" else "AveragePool"
                x = b.node(
                    onnx_op, [x], kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw]
                )
                shape = [
                    shape[0],
                    shape[1],
                    _conv_out(shape[2], kh, sh, ph),
                    _conv_out(shape[3], kw, sw, pw),
                ]
        elif kind == "add_prev":
            other, oshape = tags[op[2]["tag"]]
            target: Shape = []
            for mine, theirs in zip(shape, oshape, strict=True):
                if mine == theirs:
                    target.append(mine)
                elif mine is None or theirs is None:
                    raise ValueError("add_prev needs static shapes where they differ")
                else:
                    target.append(max(mine, theirs))
            x = b.node("Add", [_pad_to(b, x, shape, target), _pad_to(b, other, oshape, target)])
            shape = target
        elif kind == "fc":
            x = b.node("Flatten", [x], axis=1)
            x = b.node("MatMul", [x, b.const("fc_W", layer.weights["weights"])])
            if "biases" in layer.weights:
                x = b.node("Add", [x, b.const("fc_B", layer.weights["biases"])])
            shape = [None, int(layer.attrs["num_outputs"])]
        else:  # pragma: no cover - check() only lets known kinds through
            raise ValueError(f"unsupported layer {kind}")
    flush()
    b.nodes.append(helper.make_node("Identity", [x], [output_name], name="output"))
    graph = helper.make_graph(
        b.nodes,
        graph_name,
        [in_info],
        [
            helper.make_tensor_value_info(
                output_name,
                TensorProto.FLOAT,
                ["batch", *[d if d is not None else f"d{i}" for i, d in enumerate(shape[1:])]],
            )
        ],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facelens"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
