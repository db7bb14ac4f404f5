"""Radiometric decoding against an independent tool, bad input, and real FLIR photos."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelens import InputError
from facelens.errors import ImageTooLargeError
from facelens.thermal import (
    Blackbody,
    Environment,
    FlirParameters,
    LinearCalibration,
    ScreeningSession,
    decode_thermal,
    find_warm_faces,
    from_celsius,
    from_raw16,
)


@pytest.fixture(scope="module")
def thermal(data: Path) -> Path:
    return data / "thermal"


def test_flir_decoding_matches_the_reference_everywhere(thermal: Path) -> None:
    ref_dir = thermal / "flir_reference"
    # the parameters the independent tool used (results/parameters.csv)
    params = FlirParameters(emissivity=0.95, distance_m=5, air_c=20, humidity=0.5, reflected_c=7)
    frame = decode_thermal(ref_dir / "test_image.jpg", params=params)
    ref = np.asarray(Image.open(ref_dir / "temp" / "test_image.tif"), np.float32)
    assert frame.shape == ref.shape == (120, 160)
    assert np.abs(frame.celsius - ref).max() <= 0.1
    assert np.abs(frame.celsius - ref).mean() < 0.001


def test_the_raw_reference_with_centikelvin_and_gain_offset(thermal: Path, tmp_path: Path) -> None:
    raw = np.asarray(Image.open(thermal / "flir_reference" / "raw" / "test_image.PNG"))
    assert raw.dtype == np.uint16
    f = from_raw16(raw, LinearCalibration("gain_offset", gain=0.004, offset=-40.0))
    assert np.allclose(f.celsius, raw * 0.004 - 40.0, atol=1e-4)
    ck = np.rint(np.full((16, 16), 310.15 * 100)).astype(np.uint16)  # 37.0 C in centi-kelvin
    p = tmp_path / "ck.png"
    Image.fromarray(ck).save(p)
    assert np.allclose(decode_thermal(p).celsius, 37.0, atol=1e-3)
    np.save(tmp_path / "c.npy", np.full((10, 10), 36.5, np.float32))
    assert np.allclose(decode_thermal(tmp_path / "c.npy").celsius, 36.5)


def test_a_file_whose_metadata_does_not_match_is_a_clear_error(thermal: Path) -> None:
    bad = next((thermal / "flir_radiometric").glob("07 - *.jpg"))
    with pytest.raises(InputError, match="not a readable FLIR radiometric image.*width and height"):
        decode_thermal(bad)


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.full((20, 20), np.nan), "NaN"),
        (np.full((20, 20), 5000.0), "plausible"),
        (np.zeros((20,)), "2-D"),
        (np.zeros((4, 4)), "8x8"),
    ],
)
def test_implausible_arrays_are_refused(array: np.ndarray, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        from_celsius(array)


def with_blackbody(c: np.ndarray) -> tuple[np.ndarray, Blackbody]:
    """The frame with a reference source in view (these photos have none): 8x8 px at 35 C."""
    c = c.copy()
    c[2:10, 2:10] = 35.0
    return c, Blackbody(box=(2, 2, 10, 10), set_c=35.0)


def test_real_photo_of_people_refuses_then_reads_one_person(thermal: Path) -> None:
    lab = decode_thermal(next((thermal / "flir_radiometric").glob("09 - *.jpg")))
    c, bb = with_blackbody(lab.celsius)
    faces = find_warm_faces(c)
    assert len(faces) >= 4  # five people, one partly hidden
    room = Environment(ambient_c=21.0, humidity=0.45)
    r = ScreeningSession(blackbody=bb).screen(from_celsius(c), room)
    assert r.outcome is None and "several_faces" in r.refused
    one = (138, 20, 172, 70)  # the screening region around the person at the top right
    r = ScreeningSession(blackbody=bb).screen(from_celsius(c), room, region=one)
    assert r.outcome in ("clear", "refer") and r.site == "face_hottest_region"
    assert 30.0 < r.estimate_c < 38.0  # type: ignore[operator]


def test_real_photo_of_a_seated_group_is_refused(thermal: Path) -> None:
    group = decode_thermal(next((thermal / "flir_radiometric").glob("25 - *.jpg")))
    c, bb = with_blackbody(group.celsius)
    assert len(find_warm_faces(c)) >= 6
    r = ScreeningSession(blackbody=bb).screen(
        from_celsius(c), Environment(ambient_c=21.0, humidity=0.45)
    )
    assert r.refused == ("several_faces",)


def _npy(shape: tuple[int, int], dtype: str, payload: bytes) -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


def _png(width: int, height: int, bit_depth: int = 16) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_thermal_inputs_are_sized_from_their_headers_before_decoding() -> None:
    # a header that claims 37 GiB of float32 in 64 bytes
    with pytest.raises(ImageTooLargeError, match="over the limit of 4000000"):
        decode_thermal(_npy((100000, 100000), "<f4", b"\0" * 64), suffix=".npy")
    # within the pixel limit, but more than the file holds
    with pytest.raises(InputError, match="more than the file holds"):
        decode_thermal(_npy((1000, 1000), "<f4", b"\0" * 64), suffix=".npy")
    with pytest.raises(InputError, match="2-D"):
        decode_thermal(_npy((4, 4, 4), "<f4", b"\0" * 256), suffix=".npy")
    # a 900-megapixel PNG (Pillow's own bomb check would raise a non-OSError) and 5 MP
    for w, h in ((30000, 30000), (2500, 2000)):
        with pytest.raises(ImageTooLargeError, match="over the limit of 4000000"):
            decode_thermal(_png(w, h), suffix=".png", name="frame")
    # a real frame's size still decodes, from bytes, named as the caller says
    ok = _npy((16, 16), "<f4", np.full((16, 16), 36.6, "<f4").tobytes())
    assert np.allclose(decode_thermal(ok, suffix=".npy", name="frame").celsius, 36.6)
