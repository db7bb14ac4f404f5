"""decode: every kind of input gives RGB uint8 or an InputError naming the file and reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelens import DecodeConfig, ImageTooLargeError, InputError, load_image
from facelens.decode import decode_image


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_supported_formats_decode_to_rgb_uint8(fmt: str) -> None:
    im = Image.new("RGB", (40, 30), (200, 100, 50))
    px, meta = decode_image(_save(im, fmt))
    assert px.shape == (30, 40, 3) and px.dtype == np.uint8
    assert meta.format == fmt
    assert np.abs(px.astype(int) - [200, 100, 50]).max() <= 8  # lossy formats


@pytest.mark.parametrize(
    ("mode", "colour"), [("L", 77), ("P", 3), ("1", 1), ("CMYK", (0, 255, 255, 0))]
)
def test_other_colour_modes_become_rgb(mode: str, colour: object) -> None:
    im = Image.new(mode, (8, 8), colour)  # type: ignore[arg-type]
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    px = load_image(_save(im, fmt))
    assert px.shape == (8, 8, 3) and px.dtype == np.uint8


def test_cmyk_jpeg_keeps_its_colour() -> None:
    red_cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    px = load_image(_save(red_cmyk, "JPEG"))
    r, g, b = px[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_16_bit_png_is_scaled_not_clipped() -> None:
    a = np.array([[0, 32896, 65535]], np.uint16)  # black, mid grey, white
    im = Image.fromarray(a)
    assert im.mode.startswith("I;16")
    data = _save(im, "PNG")
    px, meta = decode_image(data)
    assert meta.mode.startswith("I")
    assert px[0, :, 0].tolist() == [0, 128, 255]


def test_rgba_is_composited_on_white() -> None:
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert load_image(_save(im, "PNG"))[0, 0].tolist() == [255, 255, 255]


def test_exif_rotate_90_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (60, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rotated.jpg"
    im.save(p, exif=exif.tobytes())
    px, meta = decode_image(p)
    assert meta.orientation == 6
    assert px.shape == (60, 20, 3)  # portrait after rotation
    assert px[:8, :, 0].mean() > 200  # the band is now on top


def test_real_photo_with_exif_rotation_is_upright_for_detection(
    tmp_path, pipeline, fr_photos
) -> None:  # type: ignore[no-untyped-def]
    upright = Image.open(fr_photos / "obama.jpg").convert("RGB")
    # Store the pixels turned on their side, with the EXIF tag that says how to turn them back.
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "sideways.jpg"
    sideways.save(p, exif=exif.tobytes(), quality=95)
    px = load_image(p)
    assert px.shape[:2] == (upright.height, upright.width)
    assert len(pipeline.detect(px)) == 1


def test_truncated_jpeg(tmp_path: Path, fr_photos: Path) -> None:
    data = (fr_photos / "obama.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: truncated image data") as e:
        load_image(p)
    assert e.value.source == str(p)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        load_image(p)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(InputError, match=r"notes\.jpg: not a supported image"):
        load_image(p)


def test_png_declaring_20000x20000_is_refused_before_decoding(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_declaring(20000, 20000))
    assert p.stat().st_size < 1000
    with pytest.raises(ImageTooLargeError, match="declares .*400000000 pixels") as e:
        load_image(p)
    assert e.value.limit == 40_000_000 and e.value.actual == 400_000_000


def test_pixel_and_byte_limits_are_configurable(tmp_path: Path) -> None:
    data = _save(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLargeError, match="over the limit of 5000"):
        load_image(data, DecodeConfig(max_pixels=5000))
    with pytest.raises(ImageTooLargeError, match="bytes, over the limit of 10"):
        load_image(data, DecodeConfig(max_bytes=10))
    p = tmp_path / "x.png"
    p.write_bytes(data)
    with pytest.raises(ImageTooLargeError):
        load_image(p, DecodeConfig(max_bytes=10))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)


def test_unsupported_container_is_refused() -> None:
    gif = _save(Image.new("RGB", (4, 4)), "GIF")
    with pytest.raises(InputError, match="not a supported image"):
        load_image(gif)


def test_32bit_png_from_the_wild(fr_photos: Path) -> None:
    px = load_image(fr_photos / "test_images" / "32bit.png")
    assert px.ndim == 3 and px.shape[2] == 3 and px.dtype == np.uint8
