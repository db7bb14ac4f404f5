"""Covering faces in one image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError
from facelens.faces import Faces

__all__ = ["REDACT_STYLES", "RedactConfig", "apply_redaction", "redact_image"]

REDACT_STYLES = ("blur", "pixelate", "box")


@dataclass(frozen=True)
class RedactConfig:
    """How faces are covered.

    Attributes:
        style: ``blur``, ``pixelate`` or ``box`` (solid fill).
        margin: the box is grown by this fraction of its size on every side (hair, ears,
            chin: what still identifies someone around a detector's tight box).
        detector: the detector that finds what to cover. Anonymisation must find every face,
            a turned or blurred one too, and can afford to cover a false one: CenterFace at a
            low threshold finds the profile close-ups YuNet at its recognition threshold
            misses (docs/video.md, "Redaction").
        threshold: its score threshold (None: the detector's own default).
        upsample: detector upsampling (0: CenterFace finds faces from about 16 px; each step
            halves that at four times the cost).
        mode: ``all`` or ``except`` (spare enrolled people with valid consent).
        spare_threshold: the bar a face must pass to be spared in the ``except`` mode, an
            operating point of the recognizer's calibration: FPIR 0.01% for the gallery's
            size, a hundredth of identification's default. A stranger left visible is the
            one error redaction cannot take back, and video frames resemble the wrong
            person more than LFW's photos do: on the Hamilton clip dlib's templates put
            Alex Lacamoire's profile at 0.93 from Lin-Manuel Miranda's photo, past FPIR 1%
            and 0.1% for a one-person gallery (docs/video.md).
        fill: colour of the ``box`` style.
    """

    style: str = "blur"
    margin: float = 0.25
    detector: str = "centerface"
    threshold: float | None = 0.3
    upsample: int = 0
    mode: str = "all"
    spare_threshold: str | float = "fpir=0.0001"
    fill: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if self.style not in REDACT_STYLES:
            raise ValueError(f"style must be one of {REDACT_STYLES}, got {self.style!r}")
        if self.mode not in ("all", "except"):
            raise ValueError(f"mode must be 'all' or 'except', got {self.mode!r}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin must be in [0, 2], got {self.margin}")


def _grown(box: NDArray[np.float32], margin: float, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return (
        max(0, int(x1 - mx)),
        max(0, int(y1 - my)),
        min(w, int(np.ceil(x2 + mx))),
        min(h, int(np.ceil(y2 + my))),
    )


def apply_redaction(
    image: NDArray[np.uint8], faces: Faces, config: RedactConfig
) -> NDArray[np.uint8]:
    """A copy of ``image`` with every face of ``faces`` covered.

    Example:
        >>> img = np.full((40, 40, 3), 200, np.uint8)
        >>> out = apply_redaction(img, Faces(xyxy=[[10, 10, 20, 20]], score=[1]),
        ...                       RedactConfig(style="box", margin=0))
        >>> int(out[15, 15, 0]), int(img[15, 15, 0])
        (0, 200)
    """
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    for box in faces.xyxy:
        x1, y1, x2, y2 = _grown(box, config.margin, w, h)
        if x2 <= x1 or y2 <= y1:
            continue
        region = out[y1:y2, x1:x2]
        if config.style == "box":
            region[:] = config.fill
        elif config.style == "pixelate":
            bw, bh = max(1, (x2 - x1) // 8), max(1, (y2 - y1) // 8)
            small = cv2.resize(
                region,
                ((x2 - x1 + bw - 1) // bw, (y2 - y1 + bh - 1) // bh),
                interpolation=cv2.INTER_AREA,
            )
            region[:] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        else:
            # Strong enough that no detector finds a face in it: sigma a quarter of the size,
            # then averaged again so no structure survives.
            sigma = max(x2 - x1, y2 - y1) / 4
            blurred = cv2.GaussianBlur(
                region, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE
            )
            region[:] = cv2.blur(blurred, (max(1, (x2 - x1) // 3), max(1, (y2 - y1) // 3)))
    return out


def redact_image(
    pipeline: object,
    src: str | Path,
    dst: str | Path,
    config: RedactConfig,
    spare: object | None = None,
) -> Faces:
    """Write ``src`` to ``dst`` with faces covered; returns the faces covered.

    The output is the upright image (EXIF orientation applied) with no metadata: EXIF, GPS
    and comments of the original are not copied. ``spare(image, faces) -> mask`` (for the
    ``except`` mode) says which faces to leave.
    """
    from PIL import Image

    from facelens.pipeline import Pipeline

    assert isinstance(pipeline, Pipeline)
    image, meta = pipeline.decode(src)
    faces = pipeline.detect(image)
    if spare is not None and len(faces):
        keep = [bool(k) for k in spare(image, faces)]  # type: ignore[operator]
        faces = faces[np.array([not k for k in keep], bool)]
    out = apply_redaction(image, faces, config)
    dst = Path(dst)
    fmt = {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".png": "PNG",
        ".webp": "WEBP",
        ".bmp": "BMP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
    }.get(dst.suffix.lower())
    if fmt is None:
        raise InputError(str(dst), "output must be .jpg, .png, .webp, .bmp or .tif")
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(dst, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    del meta
    return faces
