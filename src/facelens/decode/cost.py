"""What decoding an image will allocate and compute, read from its structure before a pixel is
decoded; what no image may make a decoder do is refused here.

A header's width x height is a claim about the picture, not about the decoder's work. Pillow's
decoders allocate more than the picture in three places, each read here from the file:

- TIFF: libtiff decodes a tile (or strip) at a time into a buffer of the tile's size, which
  the file declares apart from the image's: a 64 x 64 image with one 32768 x 32768 deflate tile
  is 1 MB on the wire and a 1 GiB buffer. A tile may cover the image (rounded up to TIFF's
  multiples of 16) or be at most ``DecodeConfig.max_tile_pixels``; anything larger is refused.
- JPEG: a progressive (or multi-scan) JPEG is decoded into a buffer of every DCT coefficient
  (2 bytes a sample), and each scan passes over it again: 20,000 copies of one scan behind a
  6000 x 6000 frame cost ~40 CPU-seconds. The scans are counted by walking the file's markers
  (the entropy-coded data is skipped by a compiled search, not a Python loop over bytes); more
  than ``DecodeConfig.max_scans`` is refused.
- Bit depth: Pillow keeps a pixel in 1 (L, P), 2 (16-bit) or 4 bytes (everything else, float
  and 32-bit included), whatever the header's pixel count says.

Frames: only the first frame of a TIFF, WebP, APNG or MPO is ever decoded (nothing reads how
many follow), so a file of a thousand pages costs one. Decompressed bytes: every decoder here
inflates into the buffers above (a tile, a row, the picture), never into one sized by the
compressed data; Pillow caps what text and colour-profile chunks may inflate to.

Example:
    >>> import io
    >>> from PIL import Image
    >>> from facelens.decode import DecodeConfig
    >>> buf = io.BytesIO(); Image.new("RGB", (64, 48)).save(buf, "JPEG", progressive=True)
    >>> c = decode_cost(Image.open(buf), buf.getvalue(), "<bytes>", DecodeConfig())
    >>> c.scans, c.pixel_bytes, c.decoder_bytes > 0
    (10, 4, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facelens.errors import ImageTooLargeError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from facelens.decode.image import DecodeConfig

__all__ = ["DecodeCost", "decode_cost", "jpeg_scans"]

# Bytes Pillow keeps per pixel, by mode (multi-band modes take 4 bytes a pixel).
MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# What every decode allocates besides the picture's buffers (Pillow's and the RGB copies):
# the decoder's tables, row buffers, EXIF, text and colour-profile chunks (Pillow caps what
# the last two inflate to at 64 MiB in all).
FIXED_BYTES = 96 * 1024 * 1024
# The RGB result (3 bytes a pixel) and one more copy of it (EXIF orientation, or the
# conversion from another mode).
RGB_COPIES_BYTES = 6

# The start of a marker in JPEG entropy-coded data: 0xFF followed by anything but a stuffed
# zero, a restart marker (RST0-7, which sit inside a scan) or a fill byte.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Start-of-frame markers (all but DHT C4, JPG C8 and DAC CC); progressive ones decode every
# coefficient into memory first.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}


@dataclass(frozen=True)
class DecodeCost:
    """What decoding one image takes, read from its structure.

    Attributes:
        width: the picture's width, as its header declares.
        height: its height.
        pixel_bytes: bytes a pixel takes in Pillow's buffer (its mode's depth).
        decoder_bytes: the decoder's own largest buffer (a TIFF tile or strip, a JPEG's
            coefficients), beside the picture.
        scans: a JPEG's scans (1 for other formats).
    """

    width: int
    height: int
    pixel_bytes: int
    decoder_bytes: int
    scans: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def peak_bytes(self) -> int:
        """The most memory decoding it to RGB may hold at once: Pillow's buffer, the decoder's
        own, the RGB result and one copy of it, and a fixed allowance for the rest."""
        return (
            FIXED_BYTES + self.pixels * (self.pixel_bytes + RGB_COPIES_BYTES) + self.decoder_bytes
        )


def jpeg_scans(data: bytes, stop_after: int) -> tuple[int, int, list[tuple[int, int]]] | None:
    """A JPEG's (scans, start-of-frame marker, [(h, v) sampling of each component]), its
    scans counted up to ``stop_after + 1``; None when ``data`` has no frame header.

    Structure that libjpeg may still accept or refuse (garbage between segments, a length
    past the end) ends the walk; it is the decoder's to judge, not this count's.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (8, 8)).save(buf, "JPEG", progressive=True)
        >>> jpeg_scans(buf.getvalue(), 100)
        (6, 194, [(1, 1)])
    """
    if data[:2] != b"\xff\xd8":
        return None
    i, n, scans = 2, len(data), 0
    sof, sampling = 0, []
    while i + 4 <= n and scans <= stop_after:
        if data[i] != 0xFF:
            j = data.find(b"\xff", i)
            if j < 0:
                break
            i = j
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of image: an MPO's later frames are never decoded
            break
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            break
        if marker in _SOF and length >= 8 and not sof:
            sof = marker
            ncomp = data[i + 9] if i + 9 < n else 0
            for c in range(min(ncomp, 4)):
                at = i + 10 + 3 * c + 1
                if at < n:
                    sampling.append((max(1, data[at] >> 4), max(1, data[at] & 0x0F)))
        i += 2 + length
        if marker == 0xDA:
            scans += 1
            m = _MARKER.search(data, i)
            if m is None:
                break
            i = m.start()
    return (scans, sof, sampling) if sof else None


def _jpeg(data: bytes, w: int, h: int, name: str, config: DecodeConfig) -> tuple[int, int]:
    """(coefficient buffer bytes, scans) of a JPEG; too many scans refused."""
    found = jpeg_scans(data, config.max_scans)
    if found is None:
        return 0, 1
    scans, sof, sampling = found
    if scans > config.max_scans:
        raise ImageTooLargeError(
            name,
            f"a JPEG of more than {config.max_scans} scans is refused (each scan is a pass "
            "over the whole picture; a camera's progressive JPEG has about ten)",
            actual=scans,
            limit=config.max_scans,
        )
    if scans <= 1 and sof not in _PROGRESSIVE:
        return 0, max(scans, 1)
    hmax = max(s[0] for s in sampling) if sampling else 1
    vmax = max(s[1] for s in sampling) if sampling else 1
    coefficients = 0
    for hs, vs in sampling or [(1, 1)]:
        samples_w, samples_h = -(-w * hs // hmax), -(-h * vs // vmax)
        # blocks of 8x8, padded to whole MCUs (one more each way covers the padding)
        bw, bh = -(-samples_w // 8) + hmax, -(-samples_h // 8) + vmax
        coefficients += bw * bh * 64 * 2
    return coefficients, max(scans, 1)


def _tiff(im: PILImage.Image, w: int, h: int, name: str, config: DecodeConfig) -> int:
    """The largest buffer libtiff fills at once for the first page: a tile, or a strip;
    tiles larger than the (rounded-up) image and ``max_tile_pixels`` refused."""
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return 0
    bits = tags.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    depth = -(-sum(int(b) for b in bits) // 8)
    if tags.get(262) == 6 or tags.get(259) in (6, 7):  # YCbCr, JPEG: decoded via RGBA
        depth = max(depth, 4)
    tw, th = tags.get(322), tags.get(323)
    if tw is not None or th is not None:
        tw, th = int(tw or w), int(th or h)
        cover = (-(-w // 16) * 16) * (-(-h // 16) * 16)
        if tw * th > max(cover, config.max_tile_pixels):
            raise ImageTooLargeError(
                name,
                f"its tiles are {tw}x{th} for a {w}x{h} image: the decoder would allocate "
                f"{tw * th * depth // 2**20} MiB for one tile; tiles over the image's size "
                f"and {config.max_tile_pixels} pixels are refused",
                actual=tw * th,
                limit=max(cover, config.max_tile_pixels),
            )
        return tw * th * depth
    rows = int(tags.get(278, h) or h)
    return min(max(rows, 1), h) * w * depth


def decode_cost(im: PILImage.Image, data: bytes, name: str, config: DecodeConfig) -> DecodeCost:
    """What decoding ``im`` (opened from ``data``, header only) will take.

    Raises:
        ImageTooLargeError: a TIFF tile or a JPEG scan count over the limits.
    """
    w, h = im.size
    pixel_bytes = MODE_BYTES.get(im.mode, 4)
    fmt = im.format or ""
    scans, decoder = 1, 0
    if fmt in ("JPEG", "MPO"):
        decoder, scans = _jpeg(data, w, h, name, config)
    elif fmt == "TIFF":
        decoder = _tiff(im, w, h, name, config)
    elif fmt == "WEBP":
        decoder = 4 * w * h  # libwebp decodes into its own RGBA buffer first
    return DecodeCost(w, h, pixel_bytes, decoder, scans)
