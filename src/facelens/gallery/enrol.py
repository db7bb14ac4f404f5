"""Photos -> the samples a gallery stores: the enrolment side of the pipeline.

The pipeline finds, aligns, measures and embeds faces; what makes a stored sample of one
photo (which face, the quality gate, the templates of every model, the reference chip) and
the templates made again from kept chips (``retemplate``) live here, on the gallery's side:
the pipeline knows nothing of galleries. The governed gallery (``facelens.Gallery``) is
what enrols; these only compute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelens.errors import EnrollmentError, InputError
from facelens.gallery.gallery import EnrollResult
from facelens.gallery.records import NewSample
from facelens.pipeline import Decode, FaceChoice, Pipeline, choose_primary
from facelens.quality import measure

__all__ = [
    "EnrollReport",
    "RetemplateReport",
    "no_face_error",
    "prepare_many",
    "prepare_samples",
    "samples_from_chip",
]


@dataclass(frozen=True)
class EnrollReport:
    """An enrolment: what was stored, and which images were refused and why."""

    result: EnrollResult
    rejected: tuple[EnrollmentError | InputError, ...]
    rejected_at: tuple[int, ...] = ()  # position of each rejected image in the input


@dataclass(frozen=True)
class RetemplateReport:
    """What ``Gallery.retemplate`` did.

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


def prepare_samples(
    pipeline: Pipeline,
    src: str | Path | bytes,
    face: FaceChoice = "primary",
    gate: bool = True,
    decode: Decode | None = None,
) -> list[NewSample]:
    """Decode, detect, choose the face, check quality, embed: the samples of one image
    ready to store, the pipeline's model first (then, for a fusion, each recognizer's
    template). The first carries the reference chip (``Aligner.reference_chips``), which
    a gallery keeps only when set to. ``decode``: how ``src`` becomes pixels (default
    ``Pipeline.decode``, in this process; a service passes one that decodes in a sandbox).

    Raises:
        InputError: the image cannot be read.
        EnrollmentError: no usable face (reasons attached).
    """
    p = pipeline
    image, meta = (decode or p.decode)(src)
    faces = p.detect_single(image) if isinstance(face, str) else p.detect(image)
    size = (image.shape[1], image.shape[0])
    chosen = p.align(image, p.select_face(faces, face, meta.source, size))
    if chosen.keypoints is None and any(a == "arcface" for a, _ in p.embedder.views):
        raise EnrollmentError(meta.source, ["no_face"])  # an operator's box, no detection
    chips = p.aligner.chips(image, chosen)
    q = measure(chosen, chips)
    if gate:
        reasons = p.config.gate.reasons(q, 0)
        if reasons:
            raise EnrollmentError(meta.source, reasons)
    templates = p.templates(p.views(image, chosen, chips))
    reference = p.aligner.reference_chips(image, chosen)[0]
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


def prepare_many(
    pipeline: Pipeline,
    images: Sequence[str | Path | bytes],
    face: FaceChoice = "primary",
    gate: bool = True,
    progress: Callable[[int, int], None] | None = None,
    decode: Decode | None = None,
) -> tuple[list[NewSample], list[EnrollmentError | InputError], list[int]]:
    """``prepare_samples`` of each image: (samples, the errors of the images refused, their
    positions in ``images``)."""
    samples: list[NewSample] = []
    rejected: list[EnrollmentError | InputError] = []
    rejected_at: list[int] = []
    for n, src in enumerate(images):
        try:
            samples.extend(prepare_samples(pipeline, src, face, gate, decode))
        except (EnrollmentError, InputError) as e:
            rejected.append(e)
            rejected_at.append(n)
        if progress:
            progress(n + 1, len(images))
    return samples, rejected, rejected_at


def samples_from_chip(pipeline: Pipeline, sha256: str, chip: NDArray[np.uint8]) -> list[NewSample]:
    """Templates of the pipeline's model(s) made from a kept reference chip (nothing when
    the pipeline's detector finds no face in it)."""
    p = pipeline
    faces = p.detect_single(chip)
    if len(faces) == 0:
        return []
    h, w = chip.shape[:2]
    face = p.align(chip, faces[choose_primary(faces, w, h)])
    dlib_chips = p.aligner.chips(chip, face)
    q = measure(face, dlib_chips).row(0)
    return [
        NewSample(
            embedding=t.vectors[0],
            model=t.model,
            quality={**q, "from_kept_chip": 1.0},
            image_sha256=sha256,
        )
        for t in p.templates(p.views(chip, face, dlib_chips))
    ]


def no_face_error(name: str, rejected: Sequence[EnrollmentError | InputError]) -> EnrollmentError:
    """The error of an enrolment none of whose images gave a usable face."""
    reasons = sorted({r for e in rejected for r in getattr(e, "reasons", ("unreadable",))})
    return EnrollmentError(f"{name}: every image", reasons or ["no_images"])
