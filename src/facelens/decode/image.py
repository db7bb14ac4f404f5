"""Still images: JPEG, PNG, WebP, BMP, TIFF -> RGB uint8, with limits checked before decoding."""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from facelens.errors import ImageTooLargeError, InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["DecodeConfig", "ImageMeta", "decode_image", "load_image", "probe_image"]

# Pillow format names accepted (camera MPO files open through the JPEG decoder).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")


@dataclass(frozen=True)
class DecodeConfig:
    """Limits for decoding untrusted images.

    Attributes:
        max_bytes: largest encoded input accepted (default 64 MiB).
        max_pixels: largest decoded width x height accepted (default 40 megapixels), checked
            from the header before any pixel is decoded, so decompression bombs are refused.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class ImageMeta:
    """What decoding learned about an image.

    Attributes:
        source: the path, or ``"<bytes>"``.
        format: the container format (``"JPEG"``, ``"PNG"``, ...).
        mode: Pillow's pixel mode before conversion (``"RGB"``, ``"CMYK"``, ``"I;16"``, ...).
        width: width after EXIF orientation was applied.
        height: height after EXIF orientation was applied.
        orientation: the EXIF orientation tag (1 when absent).
        sha256: SHA-256 of the encoded bytes (what the gallery records, never the image).
    """

    source: str
    format: str
    mode: str
    width: int
    height: int
    orientation: int
    sha256: str


def _read_file(path: Path, config: DecodeConfig) -> bytes:
    """A regular file's bytes, at most ``max_bytes``. Opened without blocking and checked on
    the open descriptor, so a FIFO (which would wait for a writer), a device such as
    /dev/zero (endless), a socket, a directory or a symlink loop is refused with its reason,
    also when the path changes between check and read."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(name, "no such file") from None
    except PermissionError:
        raise InputError(name, "permission denied") from None
    except IsADirectoryError:
        raise InputError(name, "is a directory, not an image file") from None
    except OSError as e:
        raise InputError(name, f"cannot open ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(name, "is a directory, not an image file")
        raise InputError(name, "not a regular file (a pipe, device or socket)")
    with os.fdopen(fd, "rb", buffering=0) as f:
        if st.st_size > config.max_bytes:
            raise ImageTooLargeError(
                name,
                f"file is {st.st_size} bytes, over the limit of {config.max_bytes}",
                actual=st.st_size,
                limit=config.max_bytes,
            )
        chunks, total = [], 0
        try:
            while total <= config.max_bytes:
                chunk = f.read(min(1 << 20, config.max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as e:
            raise InputError(name, f"cannot read file ({e.strerror})") from None
    return b"".join(chunks)


def read_bounded(
    src: str | Path | bytes, config: DecodeConfig, name: str | None = None
) -> tuple[bytes, str]:
    """The bytes of untrusted input (a regular file or bytes) and how errors name it
    (``name``, else the path or ``<bytes>``), with ``config.max_bytes`` enforced while
    reading; empty input refused."""
    if isinstance(src, bytes | bytearray | memoryview):
        data, name = bytes(src), name or "<bytes>"
    else:
        data, name = _read_file(Path(src), config), name or str(src)
    if len(data) == 0:
        raise InputError(name, "empty file (0 bytes)")
    if len(data) > config.max_bytes:
        raise ImageTooLargeError(
            name,
            f"input is {len(data)} bytes, over the limit of {config.max_bytes}",
            actual=len(data),
            limit=config.max_bytes,
        )
    return data, name


def _to_rgb(im: PILImage.Image) -> NDArray[np.uint8]:
    """Any Pillow mode -> RGB uint8, scaling high bit depths rather than clipping them."""
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im)
        if mode == "F":
            a = np.nan_to_num(a.astype(np.float64))
            hi = 255.0 if a.max(initial=0.0) <= 255.0 else 65535.0
            g = np.clip(a / hi * 255.0, 0, 255)
        else:
            g = np.clip(a.astype(np.float64), 0, 65535) / 257.0
        gray = np.rint(g).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    rgb = im.convert("RGB") if im.mode != "RGB" else im
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _open_checked(data: bytes, name: str, config: DecodeConfig) -> PILImage.Image:
    """The image's header, opened and checked against the limits; no pixel decoded yet."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise InputError(
                name, "not a supported image (expected JPEG, PNG, WebP, BMP or TIFF)"
            ) from None
        except Image.DecompressionBombError as e:
            # Pillow's own, higher, limit fired while reading the header.
            m = re.search(r"\((\d+) pixels\)", str(e))
            n = int(m.group(1)) if m else 0
            raise ImageTooLargeError(
                name,
                f"image declares {n} pixels, over the limit of {config.max_pixels}",
                actual=n,
                limit=config.max_pixels,
            ) from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(name, f"corrupt image header ({e})") from None
        w, h = im.size
        if w <= 0 or h <= 0:
            raise InputError(name, f"image declares an empty size {w}x{h}")
        if w * h > config.max_pixels:
            raise ImageTooLargeError(
                name,
                f"image declares {w}x{h} = {w * h} pixels, over the limit of {config.max_pixels}",
                actual=w * h,
                limit=config.max_pixels,
            )
        return im


def decode_image(
    src: str | Path | bytes, config: DecodeConfig | None = None
) -> tuple[NDArray[np.uint8], ImageMeta]:
    """Decode an image file or its bytes to RGB uint8 (H, W, 3) with EXIF orientation applied.

    Grayscale, palette, RGBA (composited on white), 16-bit and CMYK inputs are converted.
    The byte limit is checked before reading, the pixel limit from the header before decoding.

    Args:
        src: a path, or the encoded bytes.
        config: limits; ``DecodeConfig()`` when None.

    Returns:
        The pixels and an ``ImageMeta``.

    Raises:
        InputError: missing, empty, truncated, corrupt or non-image input, naming the source.
        ImageTooLargeError: over ``max_bytes`` or ``max_pixels``.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (4, 2), 128).save(buf, "PNG")
        >>> pixels, meta = decode_image(buf.getvalue())
        >>> pixels.shape, pixels.dtype.name, meta.format
        ((2, 4, 3), 'uint8', 'PNG')
    """
    import hashlib

    from PIL import Image, ImageOps

    config = config or DecodeConfig()
    data, name = read_bounded(src, config)
    with warnings.catch_warnings():
        # Pillow warns about large images; our own pixel limit decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = _open_checked(data, name, config)
        w, h = im.size
        fmt = im.format or "?"
        mode = im.mode
        try:
            im.seek(0)
            im.load()
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            pixels = _to_rgb(ImageOps.exif_transpose(im) or im)
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(
                name,
                f"refused as a decompression bomb ({e})",
                actual=w * h,
                limit=config.max_pixels,
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            msg = str(e)
            reason = (
                "truncated image data"
                if "truncat" in msg.lower()
                else f"corrupt image data ({msg})"
            )
            raise InputError(name, reason) from None
    meta = ImageMeta(
        source=name,
        format=fmt,
        mode=mode,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        orientation=orientation,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return pixels, meta


def probe_image(src: str | Path | bytes, config: DecodeConfig | None = None) -> tuple[int, int]:
    """An image's ``(width, height)`` from its header, within the limits, without decoding a
    pixel: what a service checks its memory budget against before decoding.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (6000, 5000)).save(buf, "JPEG")
        >>> probe_image(buf.getvalue())
        (6000, 5000)
    """
    config = config or DecodeConfig()
    data, name = read_bounded(src, config)
    w, h = _open_checked(data, name, config).size
    return int(w), int(h)


def load_image(src: str | Path | bytes, config: DecodeConfig | None = None) -> NDArray[np.uint8]:
    """Load an image as RGB uint8 (H, W, 3); see ``decode_image`` for what is accepted.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (3, 5)).save(buf, "BMP")
        >>> load_image(buf.getvalue()).shape
        (5, 3, 3)
    """
    return decode_image(src, config)[0]
