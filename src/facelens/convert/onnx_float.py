"""ONNX files as ONNX Runtime runs them: block-quantised weights made float32, inputs cleaned.

The OpenCV Zoo models (YuNet, SFace) ship "int8bq": each weight is an int8 initializer with
a ``DequantizeLinear`` node (``block_size`` set) in front of it. ONNX Runtime 1.32 refuses
some of these nodes (a per-tensor scale with a block size), and dequantising at every run
would cost time anyway. ``float_model`` turns every ``DequantizeLinear`` whose inputs are all
initializers into a float32 initializer, computed exactly as the ONNX operator defines it:

    y = (x - zero_point) * scale

per tensor (one scale), per axis (a scale per slice of ``axis``), or per block (``block_size``
consecutive elements along ``axis`` share a scale: element ``i`` uses scale ``i // block``).
Then ``Reshape`` nodes of constants are folded, graph inputs that are really initializers
(old exporters list weights as inputs) or that nothing reads are dropped, unused initializers
are removed, and the batch, height and width of image inputs are made free, so one session
serves every image size or batch size the model allows.

Last, each ``PRelu`` with a per-channel constant slope is written as operators ONNX Runtime
runs in its blocked (NCHWc) convolution layout (``prelu_as_relu``): ONNX Runtime's own PRelu
kernel, and the layout reorders around it, took 60-70% of SFace's time. The result is the
same function: ``PRelu(x) = x + (1 - slope) * Relu(-x)``, with ``-x`` and the scaling by
``1 - slope`` written as per-channel ``BatchNormalization`` (mean 0, variance 1, epsilon 0:
an exact multiplication), which the layout pass turns into convolutions it fuses with the
``Relu`` and the ``Add``. Templates stay within 1e-5 of the original graph's
(``tests/convert/test_onnx_float.py``).

Example:
    >>> x = np.array([[1, 2, 3, 4]], np.int8)
    >>> dequantize(x, np.array([[0.5, 2.0]], np.float32), None, axis=1, block=2).tolist()
    [[0.5, 1.0, 6.0, 8.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import ModelError

__all__ = ["dequantize", "float_model", "prelu_as_relu"]


def _expand(a: NDArray[Any], axis: int, block: int, size: int) -> NDArray[Any]:
    """A per-block parameter repeated ``block`` times along ``axis`` and cut to ``size``."""
    return np.take(np.repeat(a, block, axis=axis), np.arange(size), axis=axis)


def dequantize(
    x: NDArray[Any],
    scale: NDArray[np.float32],
    zero_point: NDArray[Any] | None,
    axis: int = 1,
    block: int = 0,
) -> NDArray[np.float32]:
    """ONNX ``DequantizeLinear`` (opset 21) on constant inputs, as float32.

    Raises:
        ValueError: the scale's shape fits none of per-tensor, per-axis or per-block.
    """
    xf = x.astype(np.float32)
    s = scale.astype(np.float32)
    z = np.zeros(1, np.float32) if zero_point is None else zero_point.astype(np.float32)
    if s.size == 1:  # per tensor (a block size given with one scale means nothing more)
        return np.asarray((xf - z.reshape(-1)[0]) * s.reshape(-1)[0], np.float32)
    axis = axis % x.ndim
    if block == 0:  # per axis: one scale per slice along ``axis``
        if s.ndim != 1 or s.shape[0] != x.shape[axis]:
            raise ValueError(
                f"per-axis scale has shape {s.shape}, expected ({x.shape[axis]},) for axis "
                f"{axis} of {x.shape}"
            )
        shape = [1] * x.ndim
        shape[axis] = -1
        zz = z.reshape(shape) if z.size > 1 else z.reshape(-1)[0]
        return np.asarray((xf - zz) * s.reshape(shape), np.float32)
    blocks = -(-x.shape[axis] // block)
    want = tuple(blocks if d == axis else n for d, n in enumerate(x.shape))
    if s.shape != want:
        raise ValueError(
            f"blocked scale has shape {s.shape}, expected {want} for {x.shape}, axis {axis}, "
            f"block {block}"
        )
    se = _expand(s, axis, block, x.shape[axis])
    ze = _expand(z, axis, block, x.shape[axis]) if z.size > 1 else z.reshape(-1)[0]
    return np.asarray((xf - ze) * se, np.float32)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def float_model(data: bytes, source: str, rewrite: bool = True) -> tuple[bytes, dict[str, Any]]:
    """The ONNX file ``data`` with constant weights dequantised and its inputs cleaned (and,
    with ``rewrite``, its PRelu rewritten: ``prelu_as_relu``).

    Image inputs (rank 4, NCHW) get free batch, height and width dimensions (whether the
    graph really allows another batch or size is for its user to know: YuNet takes any size
    but one image, SFace any batch of 112 x 112 chips). Returns the new file and a summary
    (``{"dequantized": n, "folded": n, "inputs": [...], "outputs": [...], "declared_inputs":
    [...]}``, the last with the input shapes the file itself declared).

    Raises:
        ModelError: ``data`` is not an ONNX file, or a quantised weight has a form the ONNX
            operator does not define.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(source, f"not an ONNX file ({type(e).__name__})") from None
    g = model.graph
    external = [t.name for t in _tensors(g) if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ModelError(
            source,
            f"tensor {external[0]!r} keeps its data in another file; only a model in one "
            "file is accepted (nothing outside it is read)",
        )
    consts: dict[str, NDArray[Any]] = {}
    for init in g.initializer:
        try:
            consts[init.name] = numpy_helper.to_array(init)
        except Exception as e:  # declared dimensions without the data, a wrong type...
            raise ModelError(
                source, f"initializer {init.name!r} is malformed ({type(e).__name__})"
            ) from None
    declared = [_describe(i) for i in g.input if i.name not in consts]
    kept: list[Any] = []
    dequantized = folded = 0
    for node in g.node:
        ins = list(node.input)
        if node.op_type == "DequantizeLinear" and all(i in consts for i in ins if i):
            a = _attrs(node)
            try:
                y = dequantize(
                    consts[ins[0]],
                    consts[ins[1]],
                    consts[ins[2]] if len(ins) > 2 and ins[2] else None,
                    axis=int(a.get("axis", 1)),
                    block=int(a.get("block_size", 0)),
                )
            except ValueError as e:
                raise ModelError(source, f"node {node.name!r}: {e}") from None
            consts[node.output[0]] = y
            dequantized += 1
            continue
        if node.op_type == "Reshape" and len(ins) == 2 and ins[0] in consts and ins[1] in consts:
            shape = [int(v) for v in consts[ins[1]]]
            src = consts[ins[0]]
            if not _attrs(node).get("allowzero", 0):
                shape = [src.shape[i] if v == 0 else v for i, v in enumerate(shape)]
            consts[node.output[0]] = src.reshape(shape)
            folded += 1
            continue
        kept.append(node)
    used = {i for n in kept for i in n.input if i} | {o.name for o in g.output}
    inputs = [i for i in g.input if i.name not in consts and i.name in used]
    missing = [
        i
        for n in kept
        for i in n.input
        if i
        and i not in consts
        and i not in {x.name for x in inputs}
        and i not in {o for m in kept for o in m.output}
    ]
    if missing:
        raise ModelError(source, f"the graph reads {missing[0]!r}, which nothing provides")
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in consts.items() if k in used
    ]
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.input[:]
    g.input.extend(inputs)
    for vi in g.input:  # images: batch, height and width free; channels kept
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 4:
            for i, label in ((0, "N"), (2, "H"), (3, "W")):
                dims[i].dim_param = label
    for vi in g.output:  # output shapes follow from the inputs' (ONNX Runtime infers them)
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            d.dim_param = f"{vi.name}_{i}"
    del g.value_info[:]  # stale shapes of the old graph; ONNX Runtime infers its own
    model.ir_version = max(model.ir_version, 4)  # from IR 4 weights need not be inputs
    rewritten = prelu_as_relu(model) if rewrite else 0
    out = model.SerializeToString()
    summary = {
        "dequantized": dequantized,
        "folded": folded,
        "prelu_rewritten": rewritten,
        "inputs": [_describe(i) for i in g.input],
        "outputs": [_describe(o) for o in g.output],
        "declared_inputs": [d for d in declared if d["name"] in {i.name for i in g.input}],
    }
    return bytes(out), summary


def _scale_node(name: str, x: str, y: str, scale: NDArray[np.float32], inits: list[Any]) -> Any:
    """``y = scale * x`` per channel, as a BatchNormalization that multiplies exactly."""
    from onnx import helper, numpy_helper

    c = scale.shape[0]
    params = {
        "scale": scale,
        "bias": np.zeros(c, np.float32),
        "mean": np.zeros(c, np.float32),
        "var": np.ones(c, np.float32),
    }
    for key, value in params.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_{key}"))
    ins = [x, *(f"{name}_{key}" for key in params)]
    return helper.make_node("BatchNormalization", ins, [y], name=name, epsilon=0.0)


def prelu_as_relu(model: Any) -> int:
    """Rewrite, in place, each ``PRelu`` whose slope is a per-channel constant (shape (C,),
    (C, 1) or (C, 1, 1)) as ``x + (1 - slope) * Relu(-x)``; returns how many were rewritten.

    Example:
        >>> from onnx import TensorProto, helper, numpy_helper
        >>> slope = numpy_helper.from_array(np.array([[[0.25]], [[-0.5]]], np.float32), "s")
        >>> node = helper.make_node("PRelu", ["x", "s"], ["y"])
        >>> io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 1, 2]) for n in "xy"]
        >>> m = helper.make_model(helper.make_graph([node], "g", io[:1], io[1:], [slope]))
        >>> prelu_as_relu(m), [n.op_type for n in m.graph.node]
        (1, ['BatchNormalization', 'Relu', 'BatchNormalization', 'Add'])
    """
    from onnx import helper, numpy_helper

    g = model.graph
    slopes = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    nodes: list[Any] = []
    inits: list[Any] = []
    count = 0
    for n in g.node:
        s = slopes.get(n.input[1]) if n.op_type == "PRelu" and len(n.input) == 2 else None
        if s is None or s.ndim not in (1, 2, 3) or any(d != 1 for d in s.shape[1:]):
            nodes.append(n)
            continue
        x, y = n.input[0], n.output[0]
        p = f"facelens_prelu{count}"
        slope = s.reshape(-1).astype(np.float32)
        nodes += [
            _scale_node(f"{p}_neg", x, f"{p}_negx", -np.ones_like(slope), inits),
            helper.make_node("Relu", [f"{p}_negx"], [f"{p}_relu"], name=f"{p}_relu"),
            _scale_node(f"{p}_scale", f"{p}_relu", f"{p}_scaled", 1 - slope, inits),
            helper.make_node("Add", [x, f"{p}_scaled"], [y], name=f"{p}_add"),
        ]
        readers[n.input[1]] -= 1
        count += 1
    if count:
        unused = {k for k, v in readers.items() if v == 0 and k in slopes}
        kept = [i for i in g.initializer if i.name not in unused]
        del g.node[:]
        g.node.extend(nodes)
        del g.initializer[:]
        g.initializer.extend(kept + inits)
    return count


def _tensors(graph: Any) -> list[Any]:
    """Every tensor a graph holds: initializers, and constants in node attributes (subgraphs
    included)."""
    from onnx import AttributeProto

    out = list(graph.initializer)
    for node in graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR:
                out.append(a.t)
            elif a.type == AttributeProto.TENSORS:
                out.extend(a.tensors)
            elif a.type == AttributeProto.GRAPH:
                out.extend(_tensors(a.g))
            elif a.type == AttributeProto.GRAPHS:
                for sub in a.graphs:
                    out.extend(_tensors(sub))
    return out


def _describe(vi: Any) -> dict[str, Any]:
    dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    return {"name": vi.name, "shape": dims}
