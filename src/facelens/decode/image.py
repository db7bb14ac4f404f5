"""Still images: JPEG, PNG, WebP, BMP, TIFF -> RGB uint8, with limits checked before decoding."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.decode.cost import DecodeCost, decode_cost
from facelens.errors import ImageTooLargeError, InputError
from facelens.sandbox import Limits, Sandbox, task

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "DecodeConfig",
    "ImageMeta",
    "decode_image",
    "decode_isolated",
    "load_image",
    "probe_cost",
    "probe_image",
]

# Pillow format names accepted (camera MPO files open through the JPEG decoder).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")


@dataclass(frozen=True)
class DecodeConfig:
    """Limits for decoding untrusted images.

    Attributes:
        max_bytes: largest encoded input accepted (default 64 MiB).
        max_pixels: largest decoded width x height accepted (default 40 megapixels), checked
            from the header before any pixel is decoded, so decompression bombs are refused.
        max_scans: most scans a JPEG may have (``facelens.decode.cost``): each is a pass
            over the whole picture (up to 80 ms for 36 MP here), and a camera's progressive
            JPEG has about ten (libjpeg's default script: 10 for colour, 6 for grey;
            Photoshop's 3-5).
        max_tile_pixels: largest TIFF tile (or strip) a decoder may fill at once when it is
            larger than the image itself (rounded up to 16): 1 megapixel, four times a
            512 x 512 tile, the largest that TIFF writers use for photos.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_scans: int = 32
    max_tile_pixels: int = 1 << 20


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


# Rows converted at a time: the conversion's temporaries are a strip's, not the picture's
# (a 40 MP float TIFF once took 1.3 GB of float64 copies).
STRIP_ROWS = 256
HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _strips(height: int) -> Iterator[tuple[int, int]]:
    for y0 in range(0, height, STRIP_ROWS):
        yield y0, min(height, y0 + STRIP_ROWS)


def _grey_scale(im: PILImage.Image) -> float:
    """What a high-depth grey image's full scale is: 255 for float images that stay within
    0..255, 65535 otherwise (16-bit and 32-bit integers: values are scaled, not clipped)."""
    if im.mode != "F":
        return 65535.0
    w, h = im.size
    top = 0.0
    for y0, y1 in _strips(h):
        a = np.nan_to_num(np.asarray(im.crop((0, y0, w, y1)), dtype=np.float32))
        top = max(top, float(a.max(initial=0.0)))
    return 255.0 if top <= 255.0 else 65535.0


def _to_rgb(im: PILImage.Image) -> NDArray[np.uint8]:
    """Any Pillow mode -> RGB uint8, scaling high bit depths rather than clipping them,
    converted a strip of rows at a time into the result."""
    from PIL import Image

    w, h = im.size
    mode = im.mode
    if mode == "RGB":  # one copy of Pillow's buffer, as the result
        return np.asarray(im, dtype=np.uint8)
    out = np.empty((h, w, 3), np.uint8)
    if mode in HIGH_DEPTH:
        hi = _grey_scale(im)
        for y0, y1 in _strips(h):
            a = np.nan_to_num(np.asarray(im.crop((0, y0, w, y1)), dtype=np.float32))
            g = np.rint(np.clip(a * np.float32(255.0 / hi), 0, 255)).astype(np.uint8)
            out[y0:y1] = g[:, :, None]
        return out
    alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
    for y0, y1 in _strips(h):
        strip = im.crop((0, y0, w, y1))
        if alpha:
            rgba = strip.convert("RGBA")
            strip = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
        if strip.mode != "RGB":
            strip = strip.convert("RGB")
        out[y0:y1] = np.asarray(strip, dtype=np.uint8)
    return out


def _orientation(im: PILImage.Image) -> int:
    """The EXIF orientation (1-8), or 1 when it is absent, unreadable or not a whole number
    from 1 to 8 (stored as text, as a fraction, NaN...): such a tag is ignored, the picture
    kept as stored."""
    try:
        v = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: the pixels are still the picture
        return 1
    if isinstance(v, tuple) and len(v) == 1:
        v = v[0]
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8:
        return v
    return 1


def _upright(rgb: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """``rgb`` turned as EXIF ``orientation`` says it must be to display (one copy)."""
    turned = {
        1: rgb,
        2: rgb[:, ::-1],
        3: rgb[::-1, ::-1],
        4: rgb[::-1],
        5: rgb.transpose(1, 0, 2),
        6: np.rot90(rgb, k=-1),
        7: np.rot90(rgb, k=2).transpose(1, 0, 2),
        8: np.rot90(rgb, k=1),
    }[orientation]
    return rgb if orientation == 1 else np.ascontiguousarray(turned)


def _open_checked(
    data: bytes, name: str, config: DecodeConfig
) -> tuple[PILImage.Image, DecodeCost]:
    """The image's header, opened and checked against the limits, and what decoding it will
    take (``facelens.decode.cost``); no pixel decoded yet."""
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
        return im, decode_cost(im, data, name, config)


def decode_image(
    src: str | Path | bytes, config: DecodeConfig | None = None
) -> tuple[NDArray[np.uint8], ImageMeta]:
    """Decode an image file or its bytes to RGB uint8 (H, W, 3) with EXIF orientation applied.

    Grayscale, palette, RGBA (composited on white), 16-bit, float and CMYK inputs are
    converted. The byte limit is checked before reading; the pixel limit, TIFF tile sizes and
    JPEG scan counts from the file's structure before decoding (``facelens.decode.cost``).
    An EXIF orientation that is not a whole number from 1 to 8 is ignored.

    Args:
        src: a path, or the encoded bytes.
        config: limits; ``DecodeConfig()`` when None.

    Returns:
        The pixels and an ``ImageMeta``.

    Raises:
        InputError: missing, empty, truncated, corrupt or non-image input, naming the source.
        ImageTooLargeError: over ``max_bytes``, ``max_pixels``, ``max_scans`` or
            ``max_tile_pixels``.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (4, 2), 128).save(buf, "PNG")
        >>> pixels, meta = decode_image(buf.getvalue())
        >>> pixels.shape, pixels.dtype.name, meta.format
        ((2, 4, 3), 'uint8', 'PNG')
    """
    import hashlib

    from PIL import Image

    config = config or DecodeConfig()
    data, name = read_bounded(src, config)
    with warnings.catch_warnings():
        # Pillow warns about large images; our own pixel limit decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im, _ = _open_checked(data, name, config)
        w, h = im.size
        fmt = im.format or "?"
        mode = im.mode
        try:
            im.seek(0)
            im.load()
            orientation = _orientation(im)
            pixels = _to_rgb(im)
            im.close()
            pixels = _upright(pixels, orientation)
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
    c = probe_cost(src, config)
    return c.width, c.height


def probe_cost(src: str | Path | bytes, config: DecodeConfig | None = None) -> DecodeCost:
    """What decoding an image will take (``facelens.decode.cost``), from its header and
    structure, within the limits, without decoding a pixel.

    Raises:
        InputError: not a readable image header.
        ImageTooLargeError: over a limit (bytes, pixels, tile size, scans).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("I;16", (60, 50)).save(buf, "PNG")
        >>> c = probe_cost(buf.getvalue())
        >>> (c.width, c.height, c.pixel_bytes)
        (60, 50, 2)
    """
    config = config or DecodeConfig()
    data, name = read_bounded(src, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _open_checked(data, name, config)[1]


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


# -- decoding in a sandbox ------------------------------------------------------------------

# CPU-seconds a decode may use: a fixed allowance, and per pixel ten times what a 36 MP
# JPEG took to decode and convert here (0.6 s), plus each scan's pass (a refining AC scan
# of a 36 MP picture took 80 ms here: ~2e-9 s a pixel and scan).
DECODE_CPU_S = 5.0
DECODE_CPU_S_PER_PIXEL = 1.7e-7
DECODE_CPU_S_PER_PIXEL_SCAN = 1e-8


@task
def _decode_task(args: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], NDArray[Any]]:
    """A sandbox's side of ``decode_isolated``."""
    pixels, meta = decode_image(payload, DecodeConfig(**args["config"]))
    return {"meta": dataclasses.replace(meta, source=str(args["name"])).__dict__}, pixels


def decode_isolated(
    sandbox: Sandbox,
    src: bytes,
    config: DecodeConfig | None = None,
    name: str = "<bytes>",
    cancelled: Callable[[], bool] | None = None,
) -> tuple[NDArray[np.uint8], ImageMeta]:
    """``decode_image`` in one of ``sandbox``'s processes, limited to the memory and CPU
    time its structure says it needs (``probe_cost``): a decoder that would take more fails
    there, not here. ``cancelled``: asked while waiting; true stops the decode
    (``facelens.sandbox.Cancelled``).

    Raises:
        InputError, ImageTooLargeError: as ``decode_image``; also when the decode passed its
            limits or its decoder died.
        facelens.sandbox.Busy: no sandbox process was free in time.
    """
    config = config or DecodeConfig()
    data, name = read_bounded(src, config, name)
    cost = probe_cost(data, config)
    cpu = (
        DECODE_CPU_S
        + cost.pixels * DECODE_CPU_S_PER_PIXEL
        + cost.pixels * cost.scans * DECODE_CPU_S_PER_PIXEL_SCAN
    )
    limits = Limits(memory_bytes=cost.peak_bytes + len(data), cpu_s=cpu, wall_s=3 * cpu + 5)
    header, pixels = sandbox.call(
        "facelens.decode.image:_decode_task",
        {"config": dataclasses.asdict(config), "name": name},
        data,
        limits,
        cancelled,
        source=name,
    )
    try:
        meta = ImageMeta(**{f.name: header["meta"][f.name] for f in dataclasses.fields(ImageMeta)})
    except (KeyError, TypeError):
        raise InputError(name, "its decoder failed on it") from None
    if (
        pixels is None
        or pixels.dtype != np.uint8
        or pixels.shape != (meta.height, meta.width, 3)
        or meta.width * meta.height > config.max_pixels
    ):
        raise InputError(name, "its decoder failed on it")
    return pixels, meta
