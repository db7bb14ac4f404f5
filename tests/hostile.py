"""Hostile files, built byte by byte: what a decoder is made to allocate or compute beyond
what a header's pixel count suggests (TIFF tiles, bit depth, JPEG scans), and EXIF tags of
the wrong type. Used by the decoder tests, the service's hostile-input corpus and
``benchmarks/fuzz_images.py``."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

__all__ = ["exif_jpeg", "jpeg_scans", "tiff"]

# TIFF field types: SHORT, LONG
_SHORT, _LONG = 3, 4


def _deflate(nbytes: int, fill: int = 0) -> bytes:
    """``nbytes`` of ``fill`` bytes, deflated (1 GiB of them is ~1 MB)."""
    c = zlib.compressobj(9)
    block = bytes([fill]) * (1 << 20)
    parts = []
    while nbytes > 0:
        n = min(nbytes, len(block))
        parts.append(c.compress(block[:n]))
        nbytes -= n
    parts.append(c.flush())
    return b"".join(parts)


def tiff(
    width: int,
    height: int,
    *,
    bits: int = 8,
    samples: int = 1,
    float_samples: bool = False,
    tile: tuple[int, int] | None = None,
    rows_per_strip: int | None = None,
    cut: int | None = None,
) -> bytes:
    """A little-endian TIFF of zeros, deflated: one page of ``width`` x ``height``, in one
    tile of ``tile`` (width, length) pixels when given (a tile may be far larger than the
    image), else in strips of ``rows_per_strip`` rows (default: all of them).

    Example:
        >>> from PIL import Image
        >>> im = Image.open(io.BytesIO(tiff(40, 30, bits=16)))
        >>> im.size, im.mode
        ((40, 30), 'I;16')
    """
    per_pixel = bits // 8 * samples
    limit = cut if cut is not None else 1 << 62
    if tile is not None:
        blocks = [_deflate(min(limit, tile[0] * tile[1] * per_pixel))]
    else:
        rows = min(rows_per_strip or height, height)
        blocks = [
            _deflate(min(limit, width * min(rows, height - y) * per_pixel))
            for y in range(0, height, rows)
        ]
    tags: list[tuple[int, int, list[int]]] = [
        (256, _LONG, [width]),
        (257, _LONG, [height]),
        (258, _SHORT, [bits] * samples),
        (259, _SHORT, [8]),  # deflate
        (262, _SHORT, [2 if samples >= 3 else 1]),
        (277, _SHORT, [samples]),
        (284, _SHORT, [1]),
        (339, _SHORT, [3 if float_samples else 1] * samples),
    ]
    if tile is not None:
        tags += [(322, _LONG, [tile[0]]), (323, _LONG, [tile[1]])]
        offsets_tag, counts_tag = 324, 325
    else:
        tags += [(278, _LONG, [min(rows_per_strip or height, height)])]
        offsets_tag, counts_tag = 273, 279
    tags += [(offsets_tag, _LONG, [0] * len(blocks)), (counts_tag, _LONG, [len(b) for b in blocks])]
    tags.sort()
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    extra = bytearray()
    # values that do not fit in an entry go after the directory, then the data
    layout = []
    for tag, kind, values in tags:
        size = (2 if kind == _SHORT else 4) * len(values)
        if size > 4:
            layout.append((tag, extra_at + len(extra)))
            extra += b"\0" * size
        else:
            layout.append((tag, None))
    data_at = extra_at + len(extra)
    offsets, at = [], data_at
    for b in blocks:
        offsets.append(at)
        at += len(b)
    out = bytearray(b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<H", len(tags)))
    for (tag, kind, values), (_, where) in zip(tags, layout, strict=True):
        if tag == offsets_tag:
            values = offsets
        fmt = "<" + ("H" if kind == _SHORT else "I") * len(values)
        packed = struct.pack(fmt, *values)
        if where is None:
            out += struct.pack("<HHI", tag, kind, len(values)) + packed.ljust(4, b"\0")
        else:
            out += struct.pack("<HHII", tag, kind, len(values), where)
            extra[where - extra_at : where - extra_at + len(packed)] = packed
    out += struct.pack("<I", 0) + extra
    for b in blocks:
        out += b
    return bytes(out)


def jpeg_scans(width: int, height: int, copies: int) -> bytes:
    """A progressive greyscale JPEG of ``width`` x ``height`` whose last scan is repeated
    ``copies`` more times: each copy is a pass over every coefficient of the picture.

    Example:
        >>> jpeg_scans(64, 64, 10).count(b"\\xff\\xda")
        16
    """
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "JPEG", progressive=True, quality=10)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * copies + b"\xff\xd9"


def exif_jpeg(kind: int, value: bytes, size: tuple[int, int] = (48, 32)) -> bytes:
    """A JPEG whose EXIF Orientation tag is of TIFF field type ``kind`` (2: ASCII, 5:
    RATIONAL, 11: FLOAT...) holding ``value`` (in the entry, or after it when longer).

    Example:
        >>> from PIL import Image
        >>> Image.open(io.BytesIO(exif_jpeg(3, struct.pack("<H", 6)))).getexif()[0x0112]
        6
    """
    count = len(value) if kind == 2 else 1
    entry = value.ljust(4, b"\0") if len(value) <= 4 else struct.pack("<I", 8 + 2 + 12 + 4)
    ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, kind, count) + entry
    after = value if len(value) > 4 else b""
    exif = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + after
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()
