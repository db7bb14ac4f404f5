"""Reading ``dlib::serialize`` output: the primitives, and a network's layers in file order.

What the bytes are (from dlib's ``serialize.h``, ``float_details.h``, ``cuda/tensor.h`` and
``dnn/core.h``):

- integers: a control byte (low 4 bits: number of value bytes, bit 7: negative), then the
  value little-endian;
- floating point: an integer mantissa and an integer exponent, ``mantissa * 2**exponent``
  (exponent 32000/32001/32002 = +inf/-inf/NaN);
- strings: an integer length, then the bytes; bools: the character ``'1'`` or ``'0'``;
- tensors: version 2, then num_samples, k, nr, nc, then raw little-endian float32 (NCHW);
  alias tensors: version 1 and the four dimensions only;
- a network: ``add_loss_layer`` writes its version and loss details, then the stack of layers
  outermost first. Each ``add_layer`` writes its version and then its sub-network *before*
  its own details, so the file holds every wrapper's version int (outer to inner), the input
  layer, and then each computational layer's details followed by its bookkeeping (three
  bools and two or three tensors) from the innermost layer outwards. Tag and skip layers
  contribute only their version int.

``read_network`` returns those computational layers in that inner-to-outer order, and the
wrapper versions, so that a caller who knows the network's C++ type can check the file
against it (``facelens.convert.dlib_nets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import ModelError

__all__ = ["DlibNetwork", "DlibStream", "Layer", "read_network"]

_INF, _NINF, _NAN = 32000, 32001, 32002


class DlibStream:
    """A cursor over dlib-serialised bytes; every read checks what it reads."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> ModelError:
        return ModelError(
            self.source,
            f"{self.source}: not a dlib network file of the expected "
            f"kind ({what} at byte {self.pos}).",
        )

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of file reading {n} bytes")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos : self.pos + n]

    def read_int(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _INF:
            return float("inf")
        if exponent == _NINF:
            return float("-inf")
        if exponent == _NAN:
            return float("nan")
        return float(np.ldexp(float(mantissa), exponent))

    def read_string(self) -> str:
        n = self.read_int()
        if not 0 <= n <= 1 << 16:
            raise self.fail(f"implausible string length {n}")
        try:
            return self._take(n).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII layer name") from None

    def read_bool(self) -> bool:
        c = self._take(1)
        if c not in (b"0", b"1"):
            raise self.fail(f"bad bool {c!r}")
        return c == b"1"

    def read_tensor(self) -> NDArray[np.float32]:
        version = self.read_int()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        dims = [self.read_int() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimensions {dims}")
        n = int(np.prod(dims))
        raw = self._take(4 * n)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.read_int()
        if version != 1:
            raise self.fail(f"alias tensor version {version}, expected 1")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc

    def expect(self, *names: str) -> str:
        s = self.read_string()
        if s not in names:
            raise self.fail(f"found {s!r} where {' or '.join(names)} was expected")
        return s


@dataclass
class Layer:
    """One computational layer as stored: its kind, hyper-parameters and weights.

    Attributes:
        kind: ``con``, ``fc``, ``affine``, ``relu``, ``max_pool``, ``avg_pool`` or ``add_prev``.
        attrs: hyper-parameters (kernel size, strides, paddings, filter count, ...).
        weights: named float32 arrays (``filters``/``biases``, ``gamma``/``beta``, ...).
    """

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, NDArray[np.float32]] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A deserialised network: loss details, input layer, wrapper versions, layers.

    Attributes:
        loss: loss layer name and its fields.
        input: input layer name and its fields (mean colour, size, pyramid padding).
        wrapper_versions: version int of every layer wrapper, outermost first.
        layers: computational layers, innermost (next to the input) first.
    """

    loss: dict[str, Any]
    input: dict[str, Any]
    wrapper_versions: list[int]
    layers: list[Layer]


def _con(s: DlibStream, version: str) -> Layer:
    params = s.read_tensor()
    num_filters = s.read_int()
    nr, nc = s.read_int(), s.read_int()
    stride_y, stride_x = s.read_int(), s.read_int()
    pad_y, pad_x = s.read_int(), s.read_int()
    fshape = s.read_alias_tensor()
    bshape = s.read_alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.read_float()
    use_bias = s.read_bool() if version in ("con_5", "con_6") else True
    if version == "con_6":
        s.read_bool()  # use_relu: a training-time fusion flag, always false in these files
    flat = params.reshape(-1)
    nf = int(np.prod(fshape))
    filters = flat[:nf].reshape(fshape)
    if filters.shape[0] != num_filters or tuple(filters.shape[2:]) != (nr, nc):
        raise s.fail(f"convolution filters {filters.shape} do not match {num_filters}x{nr}x{nc}")
    w: dict[str, NDArray[np.float32]] = {"filters": filters}
    if use_bias:
        w["biases"] = flat[nf : nf + int(np.prod(bshape))].reshape(-1)
        if w["biases"].size != num_filters:
            raise s.fail("convolution bias size mismatch")
    return Layer(
        "con",
        {
            "num_filters": num_filters,
            "kernel": (nr, nc),
            "stride": (stride_y, stride_x),
            "padding": (pad_y, pad_x),
        },
        w,
    )


def _fc(s: DlibStream, version: str) -> Layer:
    num_outputs, num_inputs = s.read_int(), s.read_int()
    params = s.read_tensor()
    wshape = s.read_alias_tensor()
    bshape = s.read_alias_tensor()
    bias_mode = s.read_int()
    for _ in range(4):
        s.read_float()
    use_bias = s.read_bool() if version == "fc_3" else True
    flat = params.reshape(-1)
    nw = int(np.prod(wshape))
    w: dict[str, NDArray[np.float32]] = {"weights": flat[:nw].reshape(num_inputs, num_outputs)}
    has_bias = bias_mode == 0 and use_bias
    if has_bias:
        w["biases"] = flat[nw : nw + int(np.prod(bshape))].reshape(-1)
    return Layer("fc", {"num_outputs": num_outputs, "num_inputs": num_inputs, "bias": has_bias}, w)


def _affine(s: DlibStream, version: str) -> Layer:
    if version.startswith("bn_"):
        return _bn_as_affine(s, version)
    params = s.read_tensor()
    gshape = s.read_alias_tensor()
    s.read_alias_tensor()
    mode = s.read_int()
    disabled = s.read_bool() if version == "affine_2" else False
    flat = params.reshape(-1)
    n = int(np.prod(gshape))
    return Layer(
        "affine",
        {"mode": mode, "disabled": disabled},
        {"gamma": flat[:n].copy(), "beta": flat[n : 2 * n].copy()},
    )


def _bn_as_affine(s: DlibStream, version: str) -> Layer:
    """A batch-norm layer read into an affine one, as dlib does for ``affine_``."""
    params = s.read_tensor()
    gshape = s.read_alias_tensor()
    s.read_alias_tensor()
    s.read_tensor()  # means of the last batch
    s.read_tensor()  # inverse standard deviations of the last batch
    running_means = s.read_tensor().reshape(-1)
    running_variances = s.read_tensor().reshape(-1)
    s.read_int()  # num_updates
    s.read_int()  # running_stats_window_size
    for _ in range(4):
        s.read_float()
    eps = s.read_float()
    flat = params.reshape(-1)
    n = int(np.prod(gshape))
    gamma, beta = flat[:n], flat[n : 2 * n]
    g = gamma / np.sqrt(running_variances + eps)
    return Layer(
        "affine",
        {"mode": 1 if version == "bn_con2" else 0, "disabled": False},
        {"gamma": g.astype(np.float32), "beta": (beta - running_means * g).astype(np.float32)},
    )


def _pool(kind: str) -> Any:
    def read(s: DlibStream, version: str) -> Layer:
        nr, nc = s.read_int(), s.read_int()
        stride_y, stride_x = s.read_int(), s.read_int()
        pad_y, pad_x = s.read_int(), s.read_int()
        return Layer(
            kind, {"kernel": (nr, nc), "stride": (stride_y, stride_x), "padding": (pad_y, pad_x)}
        )

    return read


def _relu(s: DlibStream, version: str) -> Layer:
    disabled = s.read_bool() if version == "relu_2" else False
    return Layer("relu", {"disabled": disabled})


def _add_prev(s: DlibStream, version: str) -> Layer:
    return Layer("add_prev")


_LAYERS = {
    "con_4": _con,
    "con_5": _con,
    "con_6": _con,
    "fc_2": _fc,
    "fc_3": _fc,
    "affine_": _affine,
    "affine_2": _affine,
    "bn_con2": _affine,
    "bn_fc2": _affine,
    "max_pool_2": _pool("max_pool"),
    "avg_pool_2": _pool("avg_pool"),
    "relu_": _relu,
    "relu_2": _relu,
    "add_prev_": _add_prev,
}


def _loss(s: DlibStream) -> dict[str, Any]:
    name = s.expect("loss_metric_", "loss_metric_2", "loss_mmod_")
    if name == "loss_metric_2":
        return {"name": "loss_metric", "margin": s.read_float(), "dist_thresh": s.read_float()}
    if name == "loss_metric_":
        return {"name": "loss_metric", "margin": 0.1, "dist_thresh": 0.75}
    version = s.read_int()
    if not 1 <= version <= 4:
        raise s.fail(f"mmod options version {version}")
    if version == 1:
        windows = [{"width": s.read_int(), "height": s.read_int(), "label": ""}]
    else:
        windows = []
        for _ in range(s.read_int()):
            windows.append(
                {"width": s.read_int(), "height": s.read_int(), "label": s.read_string()}
            )
    opts: dict[str, Any] = {
        "name": "loss_mmod",
        "detector_windows": windows,
        "loss_per_false_alarm": s.read_float(),
        "loss_per_missed_target": s.read_float(),
        "truth_match_iou_threshold": s.read_float(),
        "nms_iou": s.read_float(),
        "nms_percent_covered": s.read_float(),
        "ignore_iou": s.read_float(),
        "ignore_percent_covered": s.read_float(),
        "bounding_box_regression": False,
    }
    if version >= 3:
        s._take(1)  # assume_image_pyramid
    if version >= 4:
        opts["bounding_box_regression"] = s.read_bool()
        s.read_float()  # bbr_lambda
    return opts


def _input(s: DlibStream) -> dict[str, Any]:
    name = s.expect("input_rgb_image_sized", "input_rgb_image_pyramid", "input_rgb_image_pyramid2")
    mean = (s.read_float(), s.read_float(), s.read_float())
    if name == "input_rgb_image_sized":
        return {"name": name, "mean": mean, "rows": s.read_int(), "cols": s.read_int()}
    padding, outer = (s.read_int(), s.read_int()) if name.endswith("2") else (10, 11)
    return {
        "name": "input_rgb_image_pyramid",
        "mean": mean,
        "padding": padding,
        "outer_padding": outer,
    }


def read_network(data: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Deserialise a dlib network file into its layers (see the module docstring)."""
    s = DlibStream(data, source)
    if s.read_int() != 1:
        raise s.fail("add_loss_layer version is not 1")
    loss = _loss(s)
    versions = []
    # Wrapper versions are 2-byte integers; the input layer's name (a string, whose third
    # byte is its first letter 'i') ends them.
    while s.peek(3)[2:3] != b"i":
        versions.append(s.read_int())
        if len(versions) > 10_000:
            raise s.fail("no input layer found")
    inp = _input(s)
    layers = []
    first = True
    while s.pos < len(s.data):
        version = s.read_string()
        reader = _LAYERS.get(version)
        if reader is None:
            raise s.fail(f"unsupported layer {version!r}")
        layers.append(reader(s, version))
        for _ in range(3):  # setup called, gradient stale, output disabled
            s.read_bool()
        s.read_tensor()  # x_grad
        s.read_tensor()  # cached output
        # params_grad (version-2 wrappers; grad_final next to the input) is a tensor, whose
        # version bytes 01 02 cannot start the next layer (no layer name has 2 letters).
        if s.peek(2) == b"\x01\x02":
            s.read_tensor()
        if first and versions and versions[-1] >= 3:
            s.read_int()  # sample_expansion_factor of the wrapper next to the input
        first = False
    return DlibNetwork(loss=loss, input=inp, wrapper_versions=versions, layers=layers)
