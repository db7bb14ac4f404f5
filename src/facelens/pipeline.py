"""``Pipeline``: the stages wired together, each step accepting the previous step's output.

Example:
    >>> p = Pipeline()
    >>> p.config.detect.backend
    'dlib_hog'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.align import AlignConfig, Aligner
from facelens.decode import DecodeConfig, decode_image
from facelens.detect import DetectConfig, Detector, make_detector
from facelens.embed import EmbedConfig, Embedder, Embeddings, make_embedder
from facelens.errors import EnrollmentError, InputError
from facelens.faces import Faces, box_iou
from facelens.gallery import Consent, EnrollResult, Gallery, NewSample
from facelens.match import Identification, Verification, resolve_threshold, verify
from facelens.match.thresholds import DEFAULT_IDENTIFY, DEFAULT_VERIFY
from facelens.models import ModelStore
from facelens.quality import QualityGate, QualityScores, measure
from facelens.runtime import RuntimeConfig

__all__ = ["Analysis", "EnrollReport", "FaceChoice", "Pipeline", "PipelineConfig"]

log = logging.getLogger(__name__)

# "primary" and "largest" refuse when another face is at least this fraction of the chosen
# face's area:
# enrolling the wrong one of two similar faces is worse than asking for an explicit box.
AMBIGUOUS_AREA_RATIO = 0.5
# An explicit box picks the detected face overlapping it at least this much (IoU).
BOX_MATCH_IOU = 0.3

FaceChoice = str | tuple[float, float, float, float]


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
    """All faces of one image, aligned, measured and (optionally) embedded."""

    faces: Faces
    quality: QualityScores
    embeddings: Embeddings | None
    chips: NDArray[np.uint8]


@dataclass(frozen=True)
class EnrollReport:
    """An enrolment: what was stored, and which images were refused and why."""

    result: EnrollResult
    rejected: tuple[EnrollmentError | InputError, ...]
    rejected_at: tuple[int, ...] = ()  # position of each rejected image in the input


class Pipeline:
    """Detect, align, measure quality, embed, match.

    Backends are built from ``config`` unless given (``detector=``, ``aligner=``,
    ``embedder=``), so tests and services can inject their own. Nothing loads before first use.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        detector: Detector | None = None,
        aligner: Aligner | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        c = self.config
        self.detector = detector or make_detector(c.detect, c.models, c.runtime)
        self._retry_detector: Detector | None = None
        self.aligner = aligner or Aligner(c.align, c.models)
        self.embedder = embedder or make_embedder(c.embed, c.models, c.runtime)

    def load(self) -> None:
        """Load every model now (otherwise each loads on first use)."""
        self.detector.load()
        self.aligner.load()
        self.embedder.load()

    @property
    def model(self) -> str:
        """Tag of the embeddings this pipeline makes."""
        return self.embedder.model

    # -- stages -----------------------------------------------------------------------------

    def decode(self, src: str | Path | bytes) -> tuple[NDArray[np.uint8], Any]:
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

    def embed(
        self,
        image: NDArray[np.uint8],
        faces: Faces | None = None,
        chips: NDArray[np.uint8] | None = None,
    ) -> Embeddings:
        """Embeddings of ``faces`` (detected when None), from ``chips`` when given."""
        if chips is None:
            chips = self.chips(image, self.detect(image) if faces is None else faces)
        return self.embedder.embed(chips)

    def analyze(self, image: NDArray[np.uint8], embed: bool = True) -> Analysis:
        """Every face in ``image``: landmarks, quality, chips and (when ``embed``) embeddings."""
        faces = self.align(image, self.detect(image))
        chips = self.aligner.chips(image, faces)
        return Analysis(
            faces=faces,
            quality=measure(faces, chips),
            embeddings=self.embedder.embed(chips) if embed else None,
            chips=chips,
        )

    def detect_single(self, image: NDArray[np.uint8]) -> Faces:
        """Detection for a request about one person (verify, enrol): when nothing is found,
        try once more at twice the resolution (upsample + 1), which finds faces half as
        small; a photo of one person rarely has none (docs/accuracy.md)."""
        faces = self.detect(image)
        if len(faces) or self.config.detect.upsample >= 3:
            return faces
        if self._retry_detector is None:
            d = self.config.detect
            retry = DetectConfig(backend=d.backend, upsample=d.upsample + 1, threshold=d.threshold)
            self._retry_detector = make_detector(retry, self.config.models, self.config.runtime)
        return self._retry_detector.detect(image)

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
        )
        return verify(a, b, t)

    def identify(
        self,
        probes: Embeddings,
        gallery: Gallery,
        threshold: str | float | None = None,
        k: int | None = None,
    ) -> list[Identification]:
        """1:N open set: per probe face, candidates and the identity or None (unknown).

        The default rule (``open_set``) depends on the gallery's size: it keeps the
        false-positive identification rate at 1% however many people are enrolled
        (``facelens.match.thresholds.identify_rule``).
        """
        rule = gallery.rule(
            probes.model, threshold if threshold is not None else self.config.identify_threshold
        )
        return gallery.identify(probes, rule, k or self.config.top_k)

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

    def prepare_sample(
        self, src: str | Path | bytes, face: FaceChoice = "primary", gate: bool = True
    ) -> NewSample:
        """Decode, detect, choose the face, check quality, embed: one sample ready to store.

        Raises:
            InputError: the image cannot be read.
            EnrollmentError: no usable face (reasons attached).
        """
        image, meta = self.decode(src)
        faces = self.detect_single(image) if isinstance(face, str) else self.detect(image)
        size = (image.shape[1], image.shape[0])
        chosen = self.align(image, self.select_face(faces, face, meta.source, size))
        chips = self.aligner.chips(image, chosen)
        q = measure(chosen, chips)
        if gate:
            reasons = self.config.gate.reasons(q, 0)
            if reasons:
                raise EnrollmentError(meta.source, reasons)
        emb = self.embedder.embed(chips)
        x1, y1, x2, y2 = (float(v) for v in chosen.xyxy[0])
        return NewSample(
            embedding=emb.vectors[0],
            model=emb.model,
            quality=q.row(0),
            image_sha256=meta.sha256,
            box=(x1, y1, x2, y2),
            source=meta.source,
        )

    def enroll(
        self,
        gallery: Gallery,
        name: str,
        images: Sequence[str | Path | bytes],
        consent: Consent | None,
        *,
        face: FaceChoice = "primary",
        gate: bool = True,
        metadata: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> EnrollReport:
        """Enrol ``name`` from ``images``: images that fail are listed, the rest are stored in
        one atomic write. Consent is checked before any image is processed.

        Raises:
            ConsentError: no valid consent (nothing is processed).
            EnrollmentError: no image gave a usable face (nothing is stored).
        """
        gallery.require_consent(name, consent)
        samples: list[NewSample] = []
        rejected: list[EnrollmentError | InputError] = []
        rejected_at: list[int] = []
        for n, src in enumerate(images):
            try:
                samples.append(self.prepare_sample(src, face, gate))
            except (EnrollmentError, InputError) as e:
                log.info("not enrolled: %s", e)
                rejected.append(e)
                rejected_at.append(n)
            if progress:
                progress(n + 1, len(images))
        if not samples:
            reasons = sorted({r for e in rejected for r in getattr(e, "reasons", ("unreadable",))})
            raise EnrollmentError(f"{name}: every image", reasons or ["no_images"])
        return EnrollReport(
            gallery.enroll(name, samples, consent, metadata), tuple(rejected), tuple(rejected_at)
        )
