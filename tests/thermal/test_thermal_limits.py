"""FLIR radiometric JPEGs built to make the parser work without end are refused at once
(fuzzing found files that kept flyr busy for 330-409 s each)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from facelens.errors import InputError
from facelens.thermal import decode_thermal


@pytest.fixture
def flir(data: Path) -> bytes:
    return sorted((data / "thermal" / "flir_radiometric").glob("*.jpg"))[0].read_bytes()


def refused_quickly(data: bytes, why: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=why):
        decode_thermal(data, suffix=".jpg", name="frame")
    assert time.perf_counter() - t0 < 1.0


def test_a_record_directory_of_four_billion_entries(flir: bytes) -> None:
    bad = bytearray(flir)
    i = bad.index(b"FFF\x00")
    bad[i + 0x1C : i + 0x20] = b"\xff\xff\xff\xff"  # the record count flyr loops over
    refused_quickly(bytes(bad), "declares 4294967295 records")


def test_megabytes_of_fill_bytes_or_empty_segments(flir: bytes) -> None:
    # flyr scanned these a byte at a time in Python: 1.1 s per MiB
    refused_quickly(b"\xff\xd8" + b"\xff" * (8 * 2**20 - 2), "corrupt JPEG segment")
    refused_quickly(b"\xff\xd8" + b"\xff\xe0\x00\x02" * (2**20), "more than 4096 JPEG segments")
    refused_quickly(flir + b"\x00" * (9 * 2**20), "over 8 MiB")


def test_a_missing_or_repeated_chunk(data: Path) -> None:
    flir = max(
        (data / "thermal" / "flir_radiometric").glob("*.jpg"), key=lambda p: p.stat().st_size
    ).read_bytes()
    first = flir.index(b"FLIR\x00")
    refused_quickly(flir[: first - 4] + b"\xff\xd9", "no FLIR data")
    second = flir.index(b"FLIR\x00", first + 1)  # a photo this size has several chunks
    bad = bytearray(flir)
    bad[second + 6] = bad[first + 6]  # the second chunk numbered as the first
    refused_quickly(bytes(bad), "inconsistent FLIR chunk numbers")
    bad = bytearray(flir)
    bad[first + 7] += 1  # one more chunk announced than there is
    refused_quickly(bytes(bad), "inconsistent FLIR chunk numbers|missing")


def test_real_files_still_decode(flir: bytes) -> None:
    frame = decode_thermal(flir, suffix=".jpg", name="frame")
    assert frame.celsius.ndim == 2 and frame.celsius.size > 1000
