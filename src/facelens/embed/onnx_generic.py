"""Any ONNX face recognition network, run from its declaration (``models.Recognizer``).

The declaration says everything the network needs: chip size and alignment (the pipeline
makes the chips), colour order and normalisation (applied here), and the template length
(checked here). SFace ships this way; a user's own ArcFace-family model
(``facelens models add``) runs through the same class.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.embed.base import EmbedConfig, check_chips
from facelens.embed.embeddings import Embeddings
from facelens.errors import ImageTooLargeError, InputError, ModelError
from facelens.models import ModelSpec, ModelStore, Recognizer
from facelens.runtime import OnnxModel, RuntimeConfig, make_session
from facelens.sandbox import Limits, Sandbox, task

__all__ = [
    "OnnxRecognizer",
    "check_declaration",
    "check_declaration_isolated",
    "prepare_input",
]


def prepare_input(chips: NDArray[np.uint8], decl: Recognizer) -> NDArray[np.float32]:
    """(N, S, S, 3) uint8 RGB chips -> the network's (N, 3, S, S) float32 input."""
    x = chips.astype(np.float32)
    if decl.colour == "bgr":
        x = x[..., ::-1]
    x = (x - np.asarray(decl.mean, np.float32)) / np.float32(decl.std)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class OnnxRecognizer(OnnxModel):
    """Templates from a declared ONNX recognizer on ONNX Runtime.

    Attributes:
        model: the template tag (the registry name; for a user's model with its checksum).
        alignment: which chips it reads (``models.registry.ALIGNMENTS``).
        chip_size: their side in pixels.
    """

    name = "onnx"
    what = "embedder"

    def __init__(
        self,
        spec: ModelSpec,
        config: EmbedConfig,
        models: ModelStore,
        runtime: RuntimeConfig,
        session: Any = None,
    ) -> None:
        if spec.recognizer is None:
            raise ModelError(spec.name, f"model {spec.name!r} is not a recognizer")
        self.spec = spec
        self.decl = spec.recognizer
        self.config = config
        self.model = spec.tag
        self.alignment = self.decl.alignment
        self.chip_size = self.decl.input_size
        self.dim = self.decl.dim
        self._input = ""
        super().__init__(spec.name, models, runtime, session)

    def opened(self, session: Any, converted: Any) -> None:
        self._input = session.get_inputs()[0].name

    def embed(self, chips: NDArray[np.uint8]) -> Embeddings:
        chips = check_chips(chips, self.chip_size)
        if len(chips) == 0:
            return Embeddings.empty(self.model, self.decl.dim)
        session = self.session
        bs = max(1, self.config.batch_size) if self.decl.batch else 1
        x = prepare_input(chips, self.decl)
        out = [
            np.asarray(session.run(None, {self._input: x[i : i + bs]})[0], np.float32)
            for i in range(0, len(x), bs)
        ]
        v = np.concatenate(out).reshape(len(chips), -1)
        if v.shape[1] != self.decl.dim:
            raise ModelError(
                self.spec.name,
                f"the network returned {v.shape[1]} values per face, its declaration "
                f"{self.decl.dim}",
            )
        return Embeddings(v, self.model)


def _test_chips(size: int) -> NDArray[np.uint8]:
    """Two different, face-sized test inputs (smooth gradients, one mirrored and darker)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    a = np.stack([x * 200 + 30, y * 180 + 40, (1 - x) * 160 + 50], axis=2)
    b = a[:, ::-1] * 0.6 + 20
    return np.stack([a, b]).astype(np.uint8)


def check_declaration(data: bytes, name: str, decl: Recognizer) -> Recognizer:
    """Check that ONNX file ``data`` is the recognizer ``decl`` declares; returns the
    declaration completed with what was measured (template length, whether it batches).

    Raises:
        ModelError: naming what does not match.
    """
    from facelens.convert.onnx_float import float_model

    onnx, summary = float_model(data, name)
    inputs = summary["declared_inputs"]
    if len(inputs) != 1:
        names = [i["name"] for i in inputs]
        raise ModelError(name, f"a recognizer has one input (the chips); this file has {names}")
    shape = inputs[0]["shape"]
    if len(shape) != 4:
        raise ModelError(name, f"the input must be NCHW images, the file's is {shape}")
    for axis, want in ((1, 3), (2, decl.input_size), (3, decl.input_size)):
        have = shape[axis]
        if isinstance(have, int) and have not in (0, want):
            raise ModelError(
                name,
                f"the file's input is {shape[1:]} (C, H, W) but the declaration says "
                f"3 x {decl.input_size} x {decl.input_size}",
                "Give --input-size to match the network.",
            )
    try:
        session, _ = make_session(onnx, RuntimeConfig(threads=1), name)
    except ModelError:
        raise
    except Exception as e:  # onnxruntime refusing the graph
        raise ModelError(name, f"ONNX Runtime cannot load it ({type(e).__name__})") from None
    import onnxruntime

    quiet = onnxruntime.RunOptions()
    quiet.log_severity_level = 4  # a refused shape is an answer here, not an error to log
    x = prepare_input(_test_chips(decl.input_size), decl)
    feed = session.get_inputs()[0].name
    batch = True
    try:
        out = np.asarray(session.run(None, {feed: x}, quiet)[0], np.float32)
        if out.shape[0] != 2:
            raise ValueError("batch")
    except Exception:
        batch = False
        try:
            out = np.concatenate(
                [np.asarray(session.run(None, {feed: x[i : i + 1]}, quiet)[0]) for i in range(2)]
            ).astype(np.float32)
        except Exception as e:
            raise ModelError(
                name, f"running it on a {decl.input_size} px chip failed ({type(e).__name__})"
            ) from None
    v = out.reshape(2, -1)
    if out.ndim not in (2, 4) or (out.ndim == 4 and out.shape[2:] != (1, 1)):
        raise ModelError(name, f"a recognizer returns (N, D) templates, this one {out.shape}")
    dim = v.shape[1]
    if decl.dim and dim != decl.dim:
        raise ModelError(name, f"it returns {dim} values per face, the declaration says {decl.dim}")
    if not np.all(np.isfinite(v)) or np.any(np.linalg.norm(v, axis=1) == 0):
        raise ModelError(name, "it returns non-finite or zero templates")
    cos = float(v[0] @ v[1] / (np.linalg.norm(v[0]) * np.linalg.norm(v[1])))
    if cos > 0.99999:
        raise ModelError(name, "it returns the same template for different inputs")
    if not 8 <= dim <= 4096:
        raise ModelError(name, f"a template of {dim} values is not a face template")
    return dataclasses.replace(decl, dim=dim, batch=batch)


# What checking a user's model may take, in a process of its own (``facelens.sandbox``): a
# graph can make constants far larger than its file (one made 10 GB), and a recognizer that
# cannot embed one chip within this is not one to register (every use would need as much).
CHECK_MEMORY_BYTES = 2 * 1024 * 1024 * 1024
CHECK_MEMORY_PER_FILE_BYTE = 4
CHECK_CPU_S = 120.0


@task
def _check_task(args: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], None]:
    """A sandbox's side of ``check_declaration_isolated``."""
    decl = Recognizer(**{**args["declaration"], "mean": tuple(args["declaration"]["mean"])})
    return {"declaration": check_declaration(payload, str(args["name"]), decl).to_dict()}, None


def check_declaration_isolated(data: bytes, name: str, decl: Recognizer) -> Recognizer:
    """``check_declaration`` in a process of its own, limited to ``CHECK_MEMORY_BYTES`` (and
    ``CHECK_MEMORY_PER_FILE_BYTE`` a byte of the file) of memory and ``CHECK_CPU_S`` of CPU:
    a model that needs more is refused, and cannot exhaust the caller.

    Raises:
        ModelError: naming what does not match, or that it needed more than its limits.
    """
    memory = CHECK_MEMORY_BYTES + CHECK_MEMORY_PER_FILE_BYTE * len(data)
    limits = Limits(memory_bytes=memory, cpu_s=CHECK_CPU_S, wall_s=3 * CHECK_CPU_S)
    with Sandbox(workers=1) as box:
        try:
            header, _ = box.call(
                "facelens.embed.onnx_generic:_check_task",
                {"name": name, "declaration": decl.to_dict()},
                data,
                limits,
                source=name,
            )
        except ImageTooLargeError:
            raise ModelError(
                name,
                f"checking it needed more than {memory >> 20} MiB of memory or "
                f"{CHECK_CPU_S:g} CPU-seconds: a face recognizer needs far less",
            ) from None
        except InputError:
            raise ModelError(
                name,
                f"ONNX Runtime failed on it within {memory >> 20} MiB of memory and "
                f"{CHECK_CPU_S:g} CPU-seconds",
            ) from None
    d = header["declaration"]
    return Recognizer(**{**d, "mean": tuple(d["mean"])})
