"""``Pipeline``: the stages wired together, each step accepting the previous step's output.

detect -> align (dlib's landmarks, for quality and dlib's chips) -> the chips each recognizer
reads (``views``) -> templates (``Pipeline.embedder``, one ``ViewsEmbedder`` whatever the
model: one recognizer, or a fusion of several) -> match.

Example:
    >>> p = Pipeline()
    >>> p.config.embed.model
    'dlib_resnet_v1_int8+sface_2021dec'
    >>> p.model
    'fusion(dlib_resnet_v1_int8+flip*0.6,sface_2021dec+flip*0.4)'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelens.align import AlignConfig, Aligner
from facelens.align.arcface import upright_keypoints
from facelens.align.dlib_box import BOX_MAPS
from facelens.decode import DecodeConfig, ImageMeta, decode_image
from facelens.detect import DetectConfig, Detector, make_detector
from facelens.detect.rotated import ROTATIONS, detect_rotated
from facelens.embed import EmbedConfig, Embedder, Embeddings, make_embedder
from facelens.embed.base import SingleEmbedder, Views, ViewsEmbedder, model_names, view_key
from facelens.embed.fusion import make_fusion
from facelens.errors import EnrollmentError, InputError, ModelError
from facelens.faces import Faces, box_iou
from facelens.match import Verification, resolve_threshold, verify
from facelens.match.thresholds import DEFAULT_IDENTIFY, DEFAULT_VERIFY, Calibrations
from facelens.models import ModelStore
from facelens.quality import QualityGate, QualityScores, measure
from facelens.results import ChosenFace
from facelens.runtime import RuntimeConfig

__all__ = [
    "Analysis",
    "FaceChoice",
    "Pipeline",
    "PipelineConfig",
    "Views",
]

# Single-person photos larger than this (4 megapixels) are not searched again when the first
# pass finds no face: a 40 MP photo retried at twice the resolution and turned twice was
# minutes of work for one request (issue 15).
RETRY_MAX_PIXELS = 4_000_000

log = logging.getLogger(__name__)

# "primary" and "largest" refuse when another face is at least this fraction of the chosen
# face's area:
# enrolling the wrong one of two similar faces is worse than asking for an explicit box.
AMBIGUOUS_AREA_RATIO = 0.5
# An explicit box picks the detected face overlapping it at least this much (IoU).
BOX_MATCH_IOU = 0.3

FaceChoice = str | tuple[float, float, float, float]
# how an input becomes pixels (``Pipeline.decode``, or a sandboxed decoder a service passes)
Decode = Callable[[str | Path | bytes], tuple[NDArray[np.uint8], ImageMeta]]


def _views_embedder(given: ViewsEmbedder | Embedder | None, c: PipelineConfig) -> ViewsEmbedder:
    """The one embedder of a pipeline: ``given`` (one recognizer is read through
    ``SingleEmbedder``), else the fusion or the recognizer ``c.embed`` names."""
    if isinstance(given, ViewsEmbedder):
        return given
    if given is not None:
        return SingleEmbedder(given)
    if len(model_names(c.embed.model)) > 1:
        return make_fusion(c.embed, c.models, c.runtime)
    return SingleEmbedder(make_embedder(c.embed, c.models, c.runtime))


def choose_primary(faces: Faces, width: int, height: int) -> int:
    """Index of the face a single-person request is about: the best area x centrality.

    Centrality is 1 at the image centre and 0 at a corner; squaring it lets a large face at
    the edge lose to a slightly smaller one in the middle (press photos, door cameras).

    Example:
        >>> f = Faces(xyxy=[[0, 0, 60, 60], [70, 70, 120, 120]], score=[1, 1])
        >>> choose_primary(f, 190, 190)
        1
    """
    if len(faces) == 0:
        raise IndexError("no faces")
    centre = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    half_diag = float(np.hypot(width, height)) / 2 or 1.0
    d = np.hypot(centre[:, 0] - width / 2, centre[:, 1] - height / 2) / half_diag
    return int(np.argmax(faces.area * np.clip(1 - d, 0, 1) ** 2))


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs, explicit and frozen (the library reads no environment).

    Attributes:
        decode: decoding limits.
        detect: detector backend and its settings.
        align: landmark model and chip geometry.
        embed: embedding backend.
        gate: the enrolment quality gate.
        models: where model files are found.
        runtime: ONNX Runtime provider, threads and the converted-model cache.
        verify_threshold: operating point name or cosine value for 1:1.
        identify_threshold: operating point name or cosine value for 1:N.
        top_k: candidates returned per probe.
    """

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    gate: QualityGate = field(default_factory=QualityGate)
    models: ModelStore = field(default_factory=ModelStore)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    verify_threshold: str | float = DEFAULT_VERIFY
    identify_threshold: str | float = DEFAULT_IDENTIFY
    top_k: int = 5


@dataclass(frozen=True, eq=False)
class Analysis:
    """All faces of one image, aligned, measured and (optionally) embedded.

    Attributes:
        faces: the faces, with dlib's landmarks (and the detector's keypoints, if any).
        quality: their quality measures.
        embeddings: their templates of the pipeline's model (None when not asked for).
        chips: dlib's 150 px chips (what quality is measured on).
        views: every chip the recognizers read (``Views``).
    """

    faces: Faces
    quality: QualityScores
    embeddings: Embeddings | None
    chips: NDArray[np.uint8]
    views: Views = field(default_factory=dict)


class Pipeline:
    """Detect, align, measure quality, embed, match.

    Backends are built from ``config`` unless given (``detector=``, ``aligner=``,
    ``embedder=``: a ``ViewsEmbedder``, or one recognizer), so tests and services can inject
    their own. Nothing loads before first use.

    Raises:
        ModelError: a recognizer needs keypoints (ArcFace alignment) that the detector does
            not find, or a name is unknown.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        detector: Detector | None = None,
        aligner: Aligner | None = None,
        embedder: ViewsEmbedder | Embedder | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        c = self.config
        self.detector = detector or make_detector(c.detect, c.models, c.runtime)
        self._retry_detector: Detector | None = None
        self.aligner = aligner or Aligner(c.align, c.models, BOX_MAPS.get(self.detector.name))
        self.embedder: ViewsEmbedder = _views_embedder(embedder, c)
        needs_keypoints = [e.model for e in self.embedder.parts if e.alignment == "arcface"]
        if needs_keypoints and not getattr(self.detector, "keypoints", False):
            raise ModelError(
                needs_keypoints[0],
                f"recognizer {needs_keypoints[0]!r} aligns faces on the five keypoints a "
                f"detector finds, and detector {self.detector.name!r} finds none.",
                "Use --detector yunet or centerface.",
            )

    def load(self) -> None:
        """Load every model now (otherwise each loads on first use)."""
        self.detector.load()
        self.aligner.load()
        self.embedder.load()

    @property
    def model(self) -> str:
        """Tag of the templates this pipeline makes (a fusion's tag names its parts)."""
        return self.embedder.model

    @property
    def calibrations(self) -> Calibrations:
        """The thresholds this pipeline's templates are judged by: the shipped calibrations
        and those of the user's models in ``config.models`` (read now: a model calibrated
        since counts)."""
        return Calibrations.of(self.config.models)

    # -- stages -----------------------------------------------------------------------------

    def decode(self, src: str | Path | bytes) -> tuple[NDArray[np.uint8], ImageMeta]:
        return decode_image(src, self.config.decode)

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        return self.detector.detect(image)

    def align(self, image: NDArray[np.uint8], faces: Faces) -> Faces:
        """``faces`` with landmarks (unchanged if they already have them)."""
        return faces if faces.landmarks is not None else self.aligner.landmarks(image, faces)

    def chips(self, image: NDArray[np.uint8], faces: Faces) -> NDArray[np.uint8]:
        return self.aligner.chips(image, self.align(image, faces))

    def quality(
        self, image: NDArray[np.uint8], faces: Faces, chips: NDArray[np.uint8] | None = None
    ) -> QualityScores:
        faces = self.align(image, faces)
        return measure(faces, self.aligner.chips(image, faces) if chips is None else chips)

    def views(
        self, image: NDArray[np.uint8], faces: Faces, chips: NDArray[np.uint8] | None = None
    ) -> Views:
        """The chips the pipeline's embedder reads (``embedder.views``), for ``faces``
        (aligned here if they are not). ``chips``: dlib's chips of these faces, when already
        made."""
        out: dict[str, NDArray[np.uint8]] = {}
        for alignment, size in self.embedder.views:
            key = view_key(alignment, size)
            if alignment == "dlib" and chips is not None:
                out[key] = chips
            elif alignment == "dlib":
                out[key] = self.chips(image, faces)
            else:
                if alignment == "arcface":
                    faces = upright_keypoints(image, self.align(image, faces), self.detect)
                out[key] = self.aligner.chips_for(image, faces, alignment, size)
        return out

    def templates(self, views: Views) -> list[Embeddings]:
        """The pipeline's templates of the faces in ``views``: its model's first, then, for a
        fusion, each recognizer's own."""
        return self.embedder.templates(views)

    def embed_views(self, views: Views) -> Embeddings:
        """Templates of the pipeline's model for the faces in ``views``."""
        return self.embedder.embed_views(views)

    def embed(
        self,
        image: NDArray[np.uint8],
        faces: Faces | None = None,
        chips: NDArray[np.uint8] | None = None,
    ) -> Embeddings:
        """Embeddings of ``faces`` (detected when None); ``chips``: dlib's chips of them,
        when already made."""
        if faces is None:
            faces = self.detect(image)
        if chips is not None and self.embedder.views == (("dlib", 150),):
            return self.embedder.embed_views({view_key("dlib", 150): chips})
        faces = self.align(image, faces)
        return self.embed_views(self.views(image, faces, chips))

    def analyze(self, image: NDArray[np.uint8], embed: bool = True) -> Analysis:
        """Every face in ``image``: landmarks, quality, chips and (when ``embed``) embeddings."""
        faces = self.align(image, self.detect(image))
        chips = self.aligner.chips(image, faces)
        views = self.views(image, faces, chips) if embed else {}
        return Analysis(
            faces=faces,
            quality=measure(faces, chips),
            embeddings=self.embed_views(views) if embed else None,
            chips=chips,
            views=views,
        )

    def analyze_many(self, images: Sequence[NDArray[np.uint8]]) -> list[Analysis]:
        """``analyze`` for several images, their faces embedded together: recognizers run
        far faster on a batch of chips than on the one or two of a photo."""
        return self.embed_many([self.prepare(image) for image in images])

    def prepare(self, image: NDArray[np.uint8]) -> Analysis:
        """``analyze`` up to the recognizer: faces, quality and every chip the recognizers
        read (``views``), ``embeddings`` None; ``embed_many`` finishes it. A caller may
        prepare the next images while the last ones are embedded."""
        faces = self.align(image, self.detect(image))
        chips = self.aligner.chips(image, faces)
        return Analysis(
            faces=faces,
            quality=measure(faces, chips),
            embeddings=None,
            chips=chips,
            views=self.views(image, faces, chips),
        )

    def embed_many(self, prepared: Sequence[Analysis]) -> list[Analysis]:
        """Each of ``prepared`` (``prepare``) with its faces' embeddings, every face of all of
        them embedded in one call."""
        if not prepared:
            return []
        keys = {k for a in prepared for k in a.views}
        merged = {k: np.concatenate([a.views[k] for a in prepared]) for k in keys}
        all_embeddings = self.embed_views(merged)
        out, start = [], 0
        for a in prepared:
            n = len(a.faces)
            out.append(dataclasses.replace(a, embeddings=all_embeddings[start : start + n]))
            start += n
        return out

    def detect_single(self, image: NDArray[np.uint8]) -> Faces:
        """Detection for a request about one person (verify, enrol): when nothing is found,
        try once more at twice the resolution (upsample + 1), which finds faces half as
        small; a photo of one person rarely has none (docs/accuracy.md). The retry keeps only
        faces smaller than the first pass finds reliably: a large face it missed is more
        likely something else (a dog's face scores higher enlarged). When that finds none
        either, the photo is searched turned 30 degrees each way (a tilted head). Photos over
        ``RETRY_MAX_PIXELS`` are searched once."""
        faces = self.detect(image)
        h, w = image.shape[:2]
        if len(faces) or self.config.detect.upsample >= 3 or h * w > RETRY_MAX_PIXELS:
            # a photo this large already shows a face at a size the first pass finds: a
            # second search of it would only cost time and memory
            return faces
        if self._retry_detector is None:
            d = self.config.detect
            retry = dataclasses.replace(d, upsample=d.upsample + 1)
            self._retry_detector = make_detector(retry, self.config.models, self.config.runtime)
        found = self._retry_detector.detect(image)
        limit = 1.5 * self.detector.smallest_face / 2**self.config.detect.upsample
        found = found[found.width < limit]
        if len(found):
            return found
        # a head tilted past the detector's range: the photo turned each way (detect.rotated),
        # for detectors whose score on turned copies was measured
        bar = getattr(self.detector, "rotated_threshold", None)
        if bar is None:
            return found
        for degrees in ROTATIONS:
            turned = detect_rotated(self.detector, image, degrees)
            turned = turned[turned.score >= bar]
            if len(turned):
                return turned
        return found

    def compared_face(
        self, image: NDArray[np.uint8], face: int | None = None, source: str = "image"
    ) -> tuple[Views, ChosenFace]:
        """The chips of the face of ``image`` a 1:1 comparison uses, and which it is among
        the faces found, numbered from 0 left to right: the largest (``face`` None), or face
        ``face``.

        Raises:
            EnrollmentError: no face, even on the retry (``no_face``).
            InputError: ``face`` is not one of the image's faces.
        """
        faces = self.detect_single(image)
        if len(faces) == 0:
            raise EnrollmentError(source, ["no_face"])
        order = [int(i) for i in np.argsort(faces.xyxy[:, 0], kind="stable")]
        if face is None:
            n, chosen = order.index(faces.largest()), "largest"
        elif 0 <= face < len(faces):
            n, chosen = face, "asked"
        else:
            raise InputError(source, f"face {face} asked for, the photo has {len(faces)}")
        h, w = image.shape[:2]
        clipped = faces.clip(w, h).xyxy
        boxes = tuple(tuple(float(v) for v in clipped[i]) for i in order)
        views = self.views(image, self.align(image, faces[order[n]]))
        return views, ChosenFace(boxes, n, chosen)  # type: ignore[arg-type]

    def primary_embedding(self, image: NDArray[np.uint8]) -> Embeddings | None:
        """The embedding of the face a single-person photo is about (``choose_primary``),
        or None when there is no face even on the retry."""
        faces = self.detect_single(image)
        if len(faces) == 0:
            return None
        h, w = image.shape[:2]
        return self.embed(image, faces[choose_primary(faces, w, h)])

    # -- decisions --------------------------------------------------------------------------

    def verify(
        self, a: Embeddings, b: Embeddings, threshold: str | float | None = None
    ) -> Verification:
        """1:1: is ``a`` (one face) the same person as ``b`` (one face)?"""
        t = resolve_threshold(
            a.model,
            threshold if threshold is not None else self.config.verify_threshold,
            DEFAULT_VERIFY,
            calibrations=self.calibrations,
        )
        return verify(a, b, t)

    # -- enrolment --------------------------------------------------------------------------

    def select_face(
        self, faces: Faces, choice: FaceChoice, source: str, size: tuple[int, int] = (0, 0)
    ) -> Faces:
        """The one face to enrol: ``"primary"`` (``choose_primary``), ``"largest"``, or the
        detection matching an explicit box. ``size`` is the image's (width, height)."""
        if choice in ("primary", "largest"):
            if len(faces) == 0:
                raise EnrollmentError(source, ["no_face"])
            i = faces.largest() if choice == "largest" else choose_primary(faces, *size)
            others = np.delete(faces.area, i)
            if others.size and others.max() >= AMBIGUOUS_AREA_RATIO * faces.area[i]:
                raise EnrollmentError(source, ["ambiguous_face"])
            return faces[i]
        if isinstance(choice, str):
            raise ValueError(f"face choice must be 'primary', 'largest' or a box, got {choice!r}")
        box = np.asarray(choice, np.float32).reshape(1, 4)
        if len(faces):
            iou = box_iou(box, faces.xyxy)[0]
            j = int(np.argmax(iou))
            if iou[j] >= BOX_MATCH_IOU:
                return faces[j]
        # No detection there: trust the operator's box; the quality gate still applies.
        return Faces(xyxy=box, score=np.zeros(1, np.float32))
