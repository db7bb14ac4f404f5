"""Pictures of indexed faces for people to look at: a face's thumbnail, its photo.

They are made from the file the face was indexed from, read with the same limits as any
input, and only while the file is what was indexed (a photo: same SHA-256; a video: same size
and time, then the frame it was found in): a file changed or removed since gives
``NotFoundError``, never another picture. Nothing a caller sends names a file:
a face id is looked up in the archive, and the archive holds the paths the owner indexed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.archive.store import ArchiveFace, FileState
from facelens.decode.image import DecodeConfig, decode_image, read_bounded
from facelens.errors import FacelensError, NotFoundError

__all__ = ["face_photo", "face_thumbnail"]

THUMB_PX = 112
PHOTO_MAX_PX = 1024
JPEG_QUALITY = 85


# how a photo's bytes become pixels (``decode_image`` here by default; a service decodes in
# a sandbox and charges its memory budget first)
Decode = Callable[[bytes], NDArray[np.uint8]]


def _image(
    face: ArchiveFace, config: DecodeConfig, known: FileState | None, decode: Decode | None
) -> NDArray[np.uint8]:
    if face.time_s is not None:
        return _frame(face, config, known)
    try:
        data, _ = read_bounded(face.path, config)
    except (FacelensError, OSError):
        raise NotFoundError("photo of face", face.id) from None
    if hashlib.sha256(data).hexdigest() != face.sha256:
        raise NotFoundError("photo of face (changed since it was indexed)", face.id)
    if decode is not None:
        return decode(data)
    return decode_image(data, config)[0]


def _frame(face: ArchiveFace, config: DecodeConfig, known: FileState | None) -> NDArray[np.uint8]:
    """A video face's frame. A video is not hashed again for a picture (it may be
    gigabytes): it must have the size and time it was indexed with."""
    import cv2

    try:
        st = os.stat(face.path)
    except OSError:
        raise NotFoundError("video of face", face.id) from None
    if known is None or (st.st_size, st.st_mtime_ns) != (known.size, known.mtime_ns):
        raise NotFoundError("video of face (changed since it was indexed)", face.id)
    cap = cv2.VideoCapture(face.path)
    try:
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if not cap.isOpened() or w * h > config.max_pixels:
            raise NotFoundError("video of face", face.id)
        cap.set(cv2.CAP_PROP_POS_FRAMES, face.frame)
        ok, bgr = cap.read()
    finally:
        cap.release()
    if not ok or bgr is None:
        raise NotFoundError("frame of face", face.id)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _jpeg(rgb: NDArray[Any]) -> bytes:
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise NotFoundError("picture of face", "")
    return bytes(buf)


def face_thumbnail(
    face: ArchiveFace,
    config: DecodeConfig | None = None,
    known: FileState | None = None,
    decode: Decode | None = None,
) -> bytes:
    """The face, with a margin, as a square JPEG of ``THUMB_PX`` pixels. ``known``: the
    archive's record of its file (needed for a video's face); ``decode``: how the photo's
    bytes become pixels (``decode_image`` by default)."""
    import cv2

    image = _image(face, config or DecodeConfig(), known, decode)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1) * 1.3
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = image[b:d, a:c] if d > b and c > a else image
    return _jpeg(cv2.resize(crop, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA))


def face_photo(
    face: ArchiveFace,
    config: DecodeConfig | None = None,
    known: FileState | None = None,
    decode: Decode | None = None,
) -> bytes:
    """The face's photo (or video frame), at most ``PHOTO_MAX_PX`` on its long side, the
    face outlined."""
    import cv2

    image = _image(face, config or DecodeConfig(), known, decode)
    h, w = image.shape[:2]
    scale = min(1.0, PHOTO_MAX_PX / max(h, w))
    small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))))
    x1, y1, x2, y2 = (int(v * scale) for v in face.box)
    out = np.ascontiguousarray(small)
    cv2.rectangle(out, (x1, y1), (x2, y2), (255, 200, 0), max(2, int(3 * scale)))
    return _jpeg(out)
