"""``Pipeline``: the stages wired together, each step accepting the previous step's output.

detect -> align (dlib's landmarks, for quality and dlib's chips) -> the chips each recognizer
reads (``views``) -> templates (one recognizer's, or a fusion of several) -> match.

Example:
    >>> p = Pipeline()
    >>> p.config.embed.model
    'dlib_resnet_v1'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.align import AlignConfig, Aligner
from facelens.align.arcface import upright_keypoints
from facelens.align.dlib_box import BOX_MAPS
from facelens.decode import DecodeConfig, decode_image
from facelens.detect import DetectConfig, Detector, make_detector
from facelens.detect.rotated import ROTATIONS, detect_rotated
from facelens.embed import EmbedConfig, Embedder, Embeddings, make_embedder
from facelens.embed.base import config_for_tag, model_names, template_tag
from facelens.embed.fusion import fuse, fusion_weights
from facelens.errors import EnrollmentError, InputError, ModelError, NoTemplatesError
from facelens.faces import Faces, box_iou
from facelens.gallery import Consent, EnrollResult, Gallery, NewSample
from facelens.match import Identification, Verification, resolve_threshold, verify
from facelens.match.thresholds import DEFAULT_IDENTIFY, DEFAULT_VERIFY
from facelens.models import ModelStore
from facelens.quality import QualityGate, QualityScores, measure
from facelens.runtime import RuntimeConfig

__all__ = [
    "Analysis",
    "EnrollReport",
    "FaceChoice",
    "Pipeline",
    "PipelineConfig",
    "RetemplateReport",
    "Views",
    "search_config",
]

# Single-person photos larger than this (4 megapixels) are not searched again when the first
# pass finds no face: a 40 MP photo retried at twice the resolution and turned twice was
# minutes of work for one request (issue 15).
RETRY_MAX_PIXELS = 4_000_000

# The chips of one image's faces for each alignment the recognizers read, keyed by
# ``view_key(alignment, size)``: ``{"dlib150": (N, 150, 150, 3), "arcface112": ...}``.
Views = dict[str, NDArray[np.uint8]]


def view_key(alignment: str, size: int) -> str:
    return f"{alignment}{size}"


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


def search_config(
    config: PipelineConfig, gallery: Gallery, explicit: str | None = None
) -> tuple[PipelineConfig, str | None]:
    """The configuration to search ``gallery`` with, and a one-line notice for the user (or
    None): existing galleries keep answering when the default recognizer changes.

    - The gallery holds templates of ``config``'s recognizer: ``config`` (the notice counts
      the people without such templates, who cannot be found).
    - It does not, and the caller named the recognizer (``explicit``, as the caller wrote
      it): ``NoTemplatesError`` ("N people are enrolled, none with X templates"), never an
      empty search.
    - It does not, and the recognizer is the default: ``config`` changed to the recognizer
      the gallery holds templates of (of the most people), with a notice saying how to add
      the default's templates.
    - No one is enrolled: ``config``, no notice.

    Raises:
        NoTemplatesError: as above, or when no recognizer installed here makes any of the
            templates the gallery holds.
    """
    tag = template_tag(config.embed, config.models)
    enrolled = gallery.store.count_identities(gallery.name)
    held = {t: n for t, (n, _) in gallery.models().items() if n > 0}
    how = (
        "add them with 'facelens gallery retemplate{}' (from the chips a gallery keeps) or "
        "enrol the people again{}"
    )
    if enrolled == 0:
        return config, None
    if tag in held:
        missing = enrolled - held[tag]
        if missing <= 0:
            return config, None
        return config, (
            f"{missing} of the {enrolled} people enrolled have no {tag} templates and cannot "
            "be found: " + how.format(f" --model {explicit}" if explicit else "", "")
        )
    if explicit is not None:
        raise NoTemplatesError(
            enrolled,
            explicit,
            tag,
            how.format(f" --model {explicit}", f" with --model {explicit}").capitalize()
            + "; without --model the search uses the templates the gallery holds.",
        )
    options = [
        (n, t, c) for t, n in held.items() if (c := config_for_tag(t, config.embed, config.models))
    ]
    if not options:
        raise NoTemplatesError(
            enrolled,
            "the default recognizer's",
            tag,
            "No recognizer installed here makes the templates it holds ("
            + ", ".join(sorted(held))
            + "): "
            + how.format("", ""),
        )
    n, held_tag, embed = max(options, key=lambda o: (o[0], o[1].startswith("fusion("), o[1]))
    return dataclasses.replace(config, embed=embed), (
        f"the gallery holds no templates of the default recognizer ({tag}): searching with "
        f"{held_tag} ({n} of {enrolled} people); to search with the default, " + how.format("", "")
    )


@dataclass(frozen=True)
class RetemplateReport:
    """What ``Pipeline.retemplate`` did to a gallery.

    Attributes:
        model: the template tag made.
        added: templates stored.
        identities: identities that received templates.
        already: identities that had templates of the model before.
        must_reenrol: (id, name) of identities without a kept chip to make them from: they
            must be enrolled again (with consent) to be found by this model.
        no_consent: (id, name) of identities left alone because their consent has lapsed.
    """

    model: str
    added: int
    identities: int
    already: int
    must_reenrol: tuple[tuple[str, str], ...]
    no_consent: tuple[tuple[str, str], ...]


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
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        c = self.config
        self.detector = detector or make_detector(c.detect, c.models, c.runtime)
        self._retry_detector: Detector | None = None
        self.aligner = aligner or Aligner(c.align, c.models, BOX_MAPS.get(self.detector.name))
        if embedder is not None:
            self.embedders: tuple[Embedder, ...] = (embedder,)
            self.weights: tuple[float, ...] = (1.0,)
        else:
            names = model_names(c.embed.model)
            self.embedders = tuple(
                make_embedder(dataclasses.replace(c.embed, model=n), c.models, c.runtime)
                for n in names
            )
            if c.embed.weights is not None and len(c.embed.weights) != len(names):
                raise ModelError(c.embed.model, "a fusion needs one weight per model")
            self.weights = (
                (c.embed.weights or fusion_weights(names, c.embed.augment))
                if len(names) > 1
                else (1.0,)
            )
        needs_keypoints = [e.model for e in self.embedders if e.alignment == "arcface"]
        if needs_keypoints and not getattr(self.detector, "keypoints", False):
            raise ModelError(
                needs_keypoints[0],
                f"recognizer {needs_keypoints[0]!r} aligns faces on the five keypoints a "
                f"detector finds, and detector {self.detector.name!r} finds none.",
                "Use --detector yunet or centerface.",
            )

    @property
    def embedder(self) -> Embedder:
        """The recognizer (the first one of a fusion)."""
        return self.embedders[0]

    def load(self) -> None:
        """Load every model now (otherwise each loads on first use)."""
        self.detector.load()
        self.aligner.load()
        for e in self.embedders:
            e.load()

    @property
    def model(self) -> str:
        """Tag of the templates this pipeline makes (a fusion's tag names its parts)."""
        if len(self.embedders) == 1:
            return self.embedders[0].model
        from facelens.embed.fusion import fusion_tag

        return fusion_tag([e.model for e in self.embedders], self.weights)

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

    def views(
        self, image: NDArray[np.uint8], faces: Faces, chips: NDArray[np.uint8] | None = None
    ) -> Views:
        """The chips every recognizer of the pipeline reads, for ``faces`` (aligned here if
        they are not). ``chips``: dlib's chips of these faces, when already made."""
        out: Views = {}
        for e in self.embedders:
            key = view_key(e.alignment, e.chip_size)
            if key in out:
                continue
            if e.alignment == "dlib" and chips is not None:
                out[key] = chips
            elif e.alignment == "dlib":
                out[key] = self.chips(image, faces)
            else:
                if e.alignment == "arcface":
                    faces = upright_keypoints(image, self.align(image, faces), self.detect)
                out[key] = self.aligner.chips_for(image, faces, e.alignment, e.chip_size)
        return out

    def templates(self, views: Mapping[str, NDArray[np.uint8]]) -> list[Embeddings]:
        """The pipeline's templates of the faces in ``views``: its model's first, then, for a
        fusion, each recognizer's own."""
        parts = [e.embed(views[view_key(e.alignment, e.chip_size)]) for e in self.embedders]
        if len(parts) == 1:
            return parts
        return [fuse(parts, self.weights), *parts]

    def embed_views(self, views: Mapping[str, NDArray[np.uint8]]) -> Embeddings:
        """Templates of the pipeline's model for the faces in ``views``."""
        return self.templates(views)[0]

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
        if chips is not None and len(self.embedders) == 1 and self.embedder.alignment == "dlib":
            return self.embedder.embed(chips)
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

    def primary_views(self, image: NDArray[np.uint8]) -> Views | None:
        """The chips of the face a single-person photo is about, ready for ``embed_views``
        (so a caller may embed several photos' faces in one call), or None without a face."""
        faces = self.detect_single(image)
        if len(faces) == 0:
            return None
        h, w = image.shape[:2]
        return self.views(image, self.align(image, faces[choose_primary(faces, w, h)]))

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

    def prepare_samples(
        self, src: str | Path | bytes, face: FaceChoice = "primary", gate: bool = True
    ) -> list[NewSample]:
        """Decode, detect, choose the face, check quality, embed: the samples of one image
        ready to store, the pipeline's model first (then, for a fusion, each recognizer's
        template). The first carries the reference chip (``Aligner.reference_chips``), which
        a gallery keeps only when set to.

        Raises:
            InputError: the image cannot be read.
            EnrollmentError: no usable face (reasons attached).
        """
        image, meta = self.decode(src)
        faces = self.detect_single(image) if isinstance(face, str) else self.detect(image)
        size = (image.shape[1], image.shape[0])
        chosen = self.align(image, self.select_face(faces, face, meta.source, size))
        if chosen.keypoints is None and any(e.alignment == "arcface" for e in self.embedders):
            raise EnrollmentError(meta.source, ["no_face"])  # an operator's box, no detection
        chips = self.aligner.chips(image, chosen)
        q = measure(chosen, chips)
        if gate:
            reasons = self.config.gate.reasons(q, 0)
            if reasons:
                raise EnrollmentError(meta.source, reasons)
        templates = self.templates(self.views(image, chosen, chips))
        reference = self.aligner.reference_chips(image, chosen)[0]
        x1, y1, x2, y2 = (float(v) for v in chosen.xyxy[0])
        return [
            NewSample(
                embedding=t.vectors[0],
                model=t.model,
                quality=q.row(0),
                image_sha256=meta.sha256,
                box=(x1, y1, x2, y2),
                source=meta.source,
                chip=reference if n == 0 else None,
            )
            for n, t in enumerate(templates)
        ]

    def prepare_sample(
        self, src: str | Path | bytes, face: FaceChoice = "primary", gate: bool = True
    ) -> NewSample:
        """The sample of the pipeline's model from one image (``prepare_samples``)."""
        return self.prepare_samples(src, face, gate)[0]

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
                samples.extend(self.prepare_samples(src, face, gate))
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

    def retemplate(
        self, gallery: Gallery, progress: Callable[[int, int], None] | None = None
    ) -> RetemplateReport:
        """Give every identity of ``gallery`` templates of this pipeline's model, made from the
        reference chips the gallery kept at enrolment (``Gallery.configure(keep_chips=True)``).

        Each kept chip is searched for its face by this pipeline's detector, aligned as this
        pipeline's recognizers need and embedded; identities that already hold this model's
        templates are left as they are, those whose consent has lapsed are not processed, and
        those with no usable chip are listed as having to enrol again.
        """
        added = done = already = 0
        reenrol: list[tuple[str, str]] = []
        lapsed: list[tuple[str, str]] = []
        people = gallery.identities()
        now = gallery.clock()
        for n, ident in enumerate(people):
            if progress:
                progress(n + 1, len(people))
            if self.model in ident.models:
                already += 1
                continue
            if not ident.consent_valid_at(now):
                lapsed.append((ident.id, ident.name))
                continue
            samples: list[NewSample] = []
            for sha, chip in gallery.chips(ident.id):
                faces = self.detect_single(chip)
                if len(faces) == 0:
                    continue
                h, w = chip.shape[:2]
                face = self.align(chip, faces[choose_primary(faces, w, h)])
                dlib_chips = self.aligner.chips(chip, face)
                q = measure(face, dlib_chips).row(0)
                for t in self.templates(self.views(chip, face, dlib_chips)):
                    samples.append(
                        NewSample(
                            embedding=t.vectors[0],
                            model=t.model,
                            quality={**q, "from_kept_chip": 1.0},
                            image_sha256=sha,
                        )
                    )
            if not samples:
                reenrol.append((ident.id, ident.name))
                continue
            added += len(gallery.add_templates(ident.id, samples))
            done += 1
        return RetemplateReport(self.model, added, done, already, tuple(reenrol), tuple(lapsed))
