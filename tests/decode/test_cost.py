"""What a decoder would allocate or compute is read from the file's structure and refused
before decoding: TIFF tiles larger than their image, JPEGs of thousands of scans; bit depth
is charged; high-depth pictures convert in strips; EXIF orientation of the wrong type is
ignored."""

from __future__ import annotations

import io
import math
import struct
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageOps
from tests.hostile import exif_jpeg, jpeg_scans, tiff

from facelens import DecodeConfig, ImageTooLargeError
from facelens.decode import decode_image
from facelens.decode.image import probe_cost


@pytest.mark.parametrize("bits", [8, 16])
def test_a_tile_far_larger_than_its_image_is_refused_before_decoding(bits: int) -> None:
    # the file declares a 1-2 GiB tile (its data cut short: it is never read)
    bomb = tiff(64, 64, bits=bits, tile=(32768, 32768), cut=1 << 20)
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"tiles are 32768x32768 for a 64x64 image"):
        decode_image(bomb)
    assert time.perf_counter() - t0 < 1.0


def test_tiles_and_strips_of_ordinary_sizes_decode() -> None:
    for data in (
        tiff(100, 80, tile=(512, 512)),  # a tile larger than a small image: allowed
        tiff(1000, 900, samples=3, tile=(1024, 1024)),
        tiff(300, 200, samples=3, rows_per_strip=16),
        tiff(300, 200, bits=16, rows_per_strip=10**6),  # clipped to the image by libtiff
    ):
        cost = probe_cost(data)
        px, _ = decode_image(data)
        assert px.shape == (cost.height, cost.width, 3)
        assert cost.decoder_bytes <= 4 * 1024 * 1024


def test_bit_depth_is_charged() -> None:
    grey8, grey16 = probe_cost(tiff(300, 200)), probe_cost(tiff(300, 200, bits=16))
    flt = probe_cost(tiff(300, 200, bits=32, float_samples=True))
    assert (grey8.pixel_bytes, grey16.pixel_bytes, flt.pixel_bytes) == (1, 2, 4)
    assert grey8.peak_bytes < grey16.peak_bytes < flt.peak_bytes


def test_a_jpeg_of_thousands_of_scans_is_refused_before_decoding() -> None:
    bomb = jpeg_scans(2000, 2000, 5000)
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="more than 32 scans"):
        decode_image(bomb)
    assert time.perf_counter() - t0 < 1.0
    # a lower limit is the caller's to set
    with pytest.raises(ImageTooLargeError):
        decode_image(jpeg_scans(64, 64, 20), DecodeConfig(max_scans=20))


def test_ordinary_progressive_jpegs_decode_and_are_charged_their_coefficients() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(buf, "JPEG", progressive=True)
    cost = probe_cost(buf.getvalue())
    assert cost.scans == buf.getvalue().count(b"\xff\xda") == 10
    # 4:2:0 colour: 1.5 samples a pixel, 2 bytes each
    assert 1.5 * 2 * 640 * 480 <= cost.decoder_bytes <= 2 * 2 * 640 * 480
    assert decode_image(buf.getvalue())[0].shape == (480, 640, 3)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, "JPEG")
    assert probe_cost(buf.getvalue()).decoder_bytes == 0  # baseline: decoded row by row


def test_a_large_float_image_converts_without_picture_sized_temporaries() -> None:
    data = tiff(3000, 2000, bits=32, float_samples=True)
    tracemalloc.start()
    try:
        px, meta = decode_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert meta.mode == "F" and px.shape == (2000, 3000, 3)
    # the result (18 MB) and a strip's temporaries; float64 copies of the picture were 144 MB
    assert peak < 3 * 3000 * 2000 + 24 * 2**20, peak / 2**20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_as_pillow_does(orientation: int) -> None:
    a = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    px, meta = decode_image(buf.getvalue())
    assert meta.orientation == orientation
    assert px.shape == want.shape and (px == want).all()


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (2, b"6\0"),  # ASCII
        (11, struct.pack("<f", math.nan)),  # FLOAT NaN
        (5, struct.pack("<II", 0, 0)),  # RATIONAL 0/0
        (3, struct.pack("<H", 99)),  # a SHORT out of range
    ],
    ids=["ascii", "nan", "zero-over-zero", "out-of-range"],
)
def test_an_exif_orientation_of_the_wrong_kind_is_ignored_not_refused(
    kind: int, value: bytes
) -> None:
    px, meta = decode_image(exif_jpeg(kind, value, (48, 32)))
    assert meta.orientation == 1 and px.shape == (32, 48, 3)
