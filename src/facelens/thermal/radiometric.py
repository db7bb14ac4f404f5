"""Radiometric input -> temperatures in degrees C, refused when implausible.

Sources:

- FLIR radiometric JPEGs: the raw sensor values and the camera's calibration (Planck R1, R2,
  B, F, O; atmospheric constants) are read with ``flyr``; temperatures are computed here with
  FLIR's published model (as documented by IRimage): atmospheric transmission
  ``tau = X exp(-sqrt(d)(a1 + b1 sqrt(H))) + (1 - X) exp(-sqrt(d)(a2 + b2 sqrt(H)))`` with
  ``H`` the air's water content from temperature and humidity; the object's signal
  ``S = raw / (e tau) - (1 - tau) / (e tau) P(T_air) - (1 - e) / e P(T_refl)`` with
  ``P(T) = R1 / (R2 (exp(B / T) - F)) - O``; ``T = B / ln(R1 / (R2 (S + O)) + F)``. On the
  reference image this agrees with FLIR's own tool to 1e-5 degrees.
- 16-bit raw frames (PNG, TIFF, ``.npy``) with a ``LinearCalibration``: centi-kelvin
  (``T = raw / 100 - 273.15``) or ``T = gain * raw + offset``.
- float arrays already in degrees C.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from facelens.decode.cost import decode_cost
from facelens.decode.image import DecodeConfig, read_bounded
from facelens.errors import ImageTooLargeError, InputError, MissingDependencyError
from facelens.sandbox import Limits, Sandbox, task

__all__ = [
    "FlirParameters",
    "LinearCalibration",
    "ThermalFrame",
    "decode_thermal",
    "decode_thermal_isolated",
    "flir_raw_to_celsius",
    "from_celsius",
    "from_raw16",
]

# Outside this range a "temperature" is a decoding error, not a measurement.
PLAUSIBLE_C = (-60.0, 1500.0)


@dataclass(frozen=True, eq=False)
class ThermalFrame:
    """One radiometric frame.

    Attributes:
        celsius: (H, W) float32 temperatures in degrees C.
        source: where it came from.
        metadata: camera and environment values used (emissivity, distance, ...).
    """

    celsius: NDArray[np.float32]
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.celsius.shape[0]), int(self.celsius.shape[1])


def _check(c: NDArray[Any], source: str) -> NDArray[np.float32]:
    c = np.asarray(c)
    if c.ndim != 2 or min(c.shape) < 8:
        raise InputError(
            source, f"a thermal frame must be a 2-D array of at least 8x8, got shape {c.shape}"
        )
    if not np.issubdtype(c.dtype, np.number):
        raise InputError(source, f"temperatures must be numbers, got {c.dtype}")
    c = c.astype(np.float32)
    if not np.all(np.isfinite(c)):
        raise InputError(source, f"{int((~np.isfinite(c)).sum())} pixels are NaN or infinite")
    lo, hi = float(c.min()), float(c.max())
    if lo < PLAUSIBLE_C[0] or hi > PLAUSIBLE_C[1]:
        raise InputError(
            source,
            f"temperatures {lo:.1f}..{hi:.1f} C are outside the "
            f"plausible {PLAUSIBLE_C[0]:g}..{PLAUSIBLE_C[1]:g} C",
        )
    return c


def from_celsius(
    array: Any, source: str = "<array>", metadata: dict[str, Any] | None = None
) -> ThermalFrame:
    """A frame from temperatures already in degrees C (validated)."""
    return ThermalFrame(_check(np.asarray(array), source), source, metadata or {})


@dataclass(frozen=True)
class LinearCalibration:
    """How 16-bit raw values become degrees C.

    Attributes:
        kind: ``"centikelvin"`` (raw = kelvin x 100, the usual radiometric-TIFF encoding) or
            ``"gain_offset"`` (``T = gain * raw + offset``).
        gain: degrees per count (``gain_offset``).
        offset: degrees at count 0 (``gain_offset``).
    """

    kind: str = "centikelvin"
    gain: float = 0.01
    offset: float = -273.15

    def __post_init__(self) -> None:
        if self.kind not in ("centikelvin", "gain_offset"):
            raise ValueError(
                f"calibration kind must be centikelvin or gain_offset, got {self.kind!r}"
            )
        if self.kind == "gain_offset" and (not math.isfinite(self.gain) or self.gain <= 0):
            raise ValueError("gain must be a positive number")

    def apply(self, raw: NDArray[Any]) -> NDArray[np.float64]:
        r = raw.astype(np.float64)
        if self.kind == "centikelvin":
            return r / 100.0 - 273.15
        return self.gain * r + self.offset


def from_raw16(raw: Any, calibration: LinearCalibration, source: str = "<array>") -> ThermalFrame:
    """A frame from 16-bit raw counts and a linear calibration."""
    r = np.asarray(raw)
    if r.dtype not in (np.uint16, np.int32, np.int64, np.uint32) or r.ndim != 2:
        raise InputError(source, f"raw frames must be 2-D 16-bit integers, got {r.dtype} {r.shape}")
    if r.size and (r.min() < 0 or r.max() > 65535):
        raise InputError(source, "raw values outside 0..65535")
    return ThermalFrame(
        _check(calibration.apply(r), source),
        source,
        {"calibration": calibration.kind, "gain": calibration.gain, "offset": calibration.offset},
    )


@dataclass(frozen=True)
class FlirParameters:
    """Object and environment values for FLIR conversion (None: use the file's).

    Attributes:
        emissivity: of the object (skin: 0.98).
        distance_m: from the camera to the object.
        air_c: air temperature.
        humidity: relative humidity, 0..1.
        reflected_c: apparent reflected temperature.
    """

    emissivity: float | None = None
    distance_m: float | None = None
    air_c: float | None = None
    humidity: float | None = None
    reflected_c: float | None = None


def flir_raw_to_celsius(
    raw: NDArray[Any],
    *,
    r1: float,
    r2: float,
    b: float,
    f: float,
    o: float,
    emissivity: float,
    distance_m: float,
    air_c: float,
    humidity: float,
    reflected_c: float,
    alpha1: float,
    alpha2: float,
    beta1: float,
    beta2: float,
    x: float,
) -> NDArray[np.float64]:
    """FLIR's radiometric model (see the module docstring).

    Example:
        >>> raw = np.array([[17538.0]])
        >>> t = flir_raw_to_celsius(raw, r1=14748.045, r2=0.011027, b=1393.3, f=1.0,
        ...     o=-5790, emissivity=1.0, distance_m=0.0, air_c=20, humidity=0.5,
        ...     reflected_c=20, alpha1=0.006569, alpha2=0.01262, beta1=-0.002276,
        ...     beta2=-0.00667, x=1.9)
        >>> round(float(t[0, 0]), 2)  # B / ln(R1 / (R2 (raw + O)) + F) - 273.15
        20.57
    """
    if not 0 < emissivity <= 1:
        raise ValueError(f"emissivity must be in (0, 1], got {emissivity}")
    h2o = humidity * math.exp(
        1.5587 + 0.06939 * air_c - 0.00027816 * air_c**2 + 0.00000068455 * air_c**3
    )
    sd = math.sqrt(max(distance_m, 0.0))
    tau = x * math.exp(-sd * (alpha1 + beta1 * math.sqrt(h2o))) + (1 - x) * math.exp(
        -sd * (alpha2 + beta2 * math.sqrt(h2o))
    )

    def planck(t_c: float) -> float:
        return r1 / (r2 * (math.exp(b / (t_c + 273.15)) - f)) - o

    s = (
        np.asarray(raw, np.float64) / (emissivity * tau)
        - (1 - tau) / (emissivity * tau) * planck(air_c)
        - (1 - emissivity) / emissivity * planck(reflected_c)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        t: NDArray[np.float64] = b / np.log(r1 / (r2 * (s + o)) + f) - 273.15
    return t


def decode_flir(data: bytes, source: str, params: FlirParameters | None = None) -> ThermalFrame:
    """A FLIR radiometric JPEG as temperatures (with the file's or the given parameters)."""
    try:
        import flyr
    except ImportError:
        raise MissingDependencyError(
            "flyr", "reading FLIR files", "pip install 'facelens[thermal]'"
        ) from None
    try:
        return _decode_flir(flyr, data, source, params)
    except InputError:
        raise
    except Exception as e:
        # flyr raises whatever its parsing meets (struct.error, SyntaxError from an embedded
        # PNG, ZeroDivisionError from zero constants: found by benchmarks/fuzz_images.py);
        # all of it means the same to a caller: this file is not usable
        raise InputError(
            source, f"not a readable FLIR radiometric image ({type(e).__name__}: {e})"[:300]
        ) from None


# flyr finds the FLIR segments by reading the whole JPEG a byte at a time in Python (1.1 s
# per MiB of 0xFF bytes) and loops over the record count its header declares (a 4-byte count
# of 0xFFFFFFFF: benchmarks/fuzz_images.py found four files taking 330-409 s each). So the
# segments are found here by walking the JPEG's markers, and the directory is checked before
# flyr reads it. A radiometric JPEG from a camera is 0.1-2 MB with a few dozen records.
FLIR_MAX_BYTES = 8 * 1024 * 1024
FLIR_MAX_RECORDS = 1024


def _flir_app1(data: bytes, source: str) -> BinaryIO:
    """The FLIR data of a JPEG: its ``APP1 "FLIR\\0"`` segments' payloads in chunk order,
    found by walking the JPEG's segment markers up to the image data (each step jumps a whole
    segment, so the cost is the number of segments, not of bytes)."""

    def bad(why: str) -> InputError:
        return InputError(source, f"not a readable FLIR radiometric image ({why})")

    if data[:2] != b"\xff\xd8":
        raise bad("not a JPEG")
    chunks: dict[int, bytes] = {}
    total: int | None = None
    i, fill, segments = 2, 0, 0
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise bad(f"corrupt JPEG segment at byte {i}")
        marker = data[i + 1]
        if marker in (0xDA, 0xD9):  # start of the image data, or its end: no more segments
            break
        if marker == 0xFF:  # a fill byte; a few may pad a marker, not megabytes of them
            i, fill = i + 1, fill + 1
            if fill > 64:
                raise bad(f"corrupt JPEG segment at byte {i}")
            continue
        fill = 0
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        segments += 1
        if segments > 4096:  # a camera's JPEG has dozens before its image data
            raise bad("more than 4096 JPEG segments")
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > len(data):
            raise bad(f"JPEG segment at byte {i} runs past the end")
        seg = data[i + 4 : i + 2 + length]
        if marker == 0xE1 and seg[:5] == b"FLIR\x00" and len(seg) >= 8:
            nr, tot = seg[6], seg[7]
            if nr in chunks or nr > tot or (total is not None and tot != total):
                raise bad("inconsistent FLIR chunk numbers")
            chunks[nr], total = seg[8:], tot
        i += 2 + length
    if total is None:
        raise bad("no FLIR data in it")
    if len(chunks) != total + 1:
        raise bad(f"{total + 1 - len(chunks)} FLIR chunk(s) missing")
    return io.BytesIO(b"".join(chunks[n] for n in range(total + 1)))


def _checked_flir_records(app1: BinaryIO, source: str) -> None:
    """Refuse an FFF record directory larger than the data holds or ``FLIR_MAX_RECORDS``,
    before flyr iterates over it."""
    app1.seek(0)
    head = app1.read(0x40)
    total = len(head) + len(app1.read())
    app1.seek(0)
    if len(head) < 0x40:
        raise InputError(source, "not a readable FLIR radiometric image (short FFF header)")
    offset = int.from_bytes(head[0x18:0x1C], "big")
    count = int.from_bytes(head[0x1C:0x20], "big")
    if count > FLIR_MAX_RECORDS or offset + 32 * count > total:
        raise InputError(
            source,
            f"not a readable FLIR radiometric image (its directory declares {count} records "
            f"at offset {offset} in {total} bytes)",
        )


def _decode_flir(
    flyr: Any, data: bytes, source: str, params: FlirParameters | None
) -> ThermalFrame:
    from flyr.flyr import parse_thermogram
    from flyr.records import parse_flir_records

    if len(data) > FLIR_MAX_BYTES:
        raise InputError(
            source, f"a FLIR radiometric JPEG over {FLIR_MAX_BYTES // 2**20} MiB is refused"
        )
    # flyr.unpack's steps, with the segments found and the directory checked here
    stream = io.BytesIO(data)
    app1 = _flir_app1(data, source)
    _checked_flir_records(app1, source)
    records = parse_flir_records(app1)
    stream.seek(0)
    t = parse_thermogram(app1, records, stream)
    meta = dict(t.metadata)
    raw = _flir_raw(t)
    p = params or FlirParameters()
    used = {
        "emissivity": p.emissivity if p.emissivity is not None else float(meta["emissivity"]),
        "distance_m": p.distance_m if p.distance_m is not None else float(meta["object_distance"]),
        "air_c": p.air_c
        if p.air_c is not None
        else float(meta["atmospheric_temperature"]) - 273.15,
        "humidity": p.humidity if p.humidity is not None else float(meta["relative_humidity"]),
        "reflected_c": p.reflected_c
        if p.reflected_c is not None
        else float(meta["reflected_apparent_temperature"]) - 273.15,
    }
    c = flir_raw_to_celsius(
        raw,
        r1=float(meta["planck_r1"]),
        r2=float(meta["planck_r2"]),
        b=float(meta["planck_b"]),
        f=float(meta["planck_f"]),
        o=float(meta["planck_o"]),
        alpha1=float(meta["atmospheric_trans_alpha1"]),
        alpha2=float(meta["atmospheric_trans_alpha2"]),
        beta1=float(meta["atmospheric_trans_beta1"]),
        beta2=float(meta["atmospheric_trans_beta2"]),
        x=float(meta["atmospheric_trans_x"]),
        **used,
    )
    return ThermalFrame(_check(c, source), source, {"format": "FLIR radiometric JPEG", **used})


def _flir_raw(thermogram: Any) -> NDArray[np.float64]:
    """The raw sensor counts of a flyr thermogram (flyr keeps them privately)."""
    for name in ("_FlyrThermogram__thermal", "_thermal", "thermal"):
        raw = getattr(thermogram, name, None)
        if raw is not None:
            return np.asarray(raw, np.float64)
    raise AttributeError("no raw thermal data in this file")


# Radiometric cameras make frames of at most about 1.3 megapixels (1280x1024): a thermal
# input is held to 4 megapixels, checked from its header before anything is decoded.
THERMAL_LIMITS = DecodeConfig(max_bytes=64 * 1024 * 1024, max_pixels=4_000_000)


def _npy_array(data: bytes, name: str, limits: DecodeConfig) -> NDArray[Any]:
    """A .npy file's 2-D array, its header checked first: the shape it declares must fit the
    pixel limit and the bytes actually present (a header may claim 37 GiB in 141 KB)."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:
        # numpy's header parser meets untrusted bytes: it raises ValueError, SyntaxError,
        # tokenize.TokenError, TypeError... for a mangled header (benchmarks/fuzz_images.py);
        # all mean the file is not usable
        raise InputError(name, f"not a NumPy array file ({type(e).__name__})") from None
    if len(shape) != 2 or dtype.hasobject:
        raise InputError(name, f"a thermal frame is a 2-D number array, got shape {shape}")
    pixels = int(shape[0]) * int(shape[1])
    if pixels > limits.max_pixels:
        raise ImageTooLargeError(
            name,
            f"{shape[1]}x{shape[0]} is {pixels} pixels, over the limit of {limits.max_pixels}",
            actual=pixels,
            limit=limits.max_pixels,
        )
    if pixels * dtype.itemsize > len(data) - f.tell():
        raise InputError(name, f"the header declares {shape} {dtype}, more than the file holds")
    try:
        arr: NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise InputError(name, f"not a NumPy array file ({type(e).__name__})") from None
    return arr


def decode_thermal(
    src: str | Path | bytes,
    *,
    calibration: LinearCalibration | None = None,
    params: FlirParameters | None = None,
    suffix: str | None = None,
    limits: DecodeConfig = THERMAL_LIMITS,
    name: str | None = None,
) -> ThermalFrame:
    """Any supported radiometric input as temperatures.

    - ``.jpg``/``.jpeg`` (or bytes starting with a JPEG marker): FLIR radiometric JPEG;
    - ``.npy``: float array = degrees C, 16-bit integer array = raw (``calibration``);
    - ``.png``/``.tif``/``.tiff``: 16-bit raw (``calibration``, centi-kelvin by default),
      or a 32-bit float TIFF = degrees C.

    ``suffix`` says which for bytes (a file's own suffix otherwise); ``name`` is how errors
    refer to the input. Sizes are checked before decoding: ``limits.max_bytes`` of input and
    ``limits.max_pixels`` per frame (``THERMAL_LIMITS``: 4 megapixels).
    """
    # the same bounded reader as every other image: regular files only, at most
    # limits.max_bytes read, empty input refused
    data, name = read_bounded(src, limits, name)
    if isinstance(src, bytes | bytearray):
        suffix = suffix or (".jpg" if data[:2] == b"\xff\xd8" else "")
    else:
        suffix = suffix or Path(src).suffix
    suffix = suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return decode_flir(data, name, params)
    if suffix == ".npy":
        arr = _npy_array(data, name, limits)
        if np.issubdtype(arr.dtype, np.floating):
            return from_celsius(arr, name)
        return from_raw16(arr, calibration or LinearCalibration(), name)
    if suffix in (".png", ".tif", ".tiff"):
        from PIL import Image, UnidentifiedImageError

        try:
            im = Image.open(io.BytesIO(data))  # reads the header only
        except Image.DecompressionBombError as e:  # Pillow's own, far above our limit
            found = re.search(r"\((\d+) pixels\)", str(e))
            raise ImageTooLargeError(
                name,
                f"over the limit of {limits.max_pixels} pixels",
                actual=int(found.group(1)) if found else limits.max_pixels + 1,
                limit=limits.max_pixels,
            ) from None
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(name, f"not a readable image ({e})") from None
        w, h = im.size
        if w * h > limits.max_pixels:
            raise ImageTooLargeError(
                name,
                f"{w}x{h} is {w * h} pixels, over the limit of {limits.max_pixels}",
                actual=w * h,
                limit=limits.max_pixels,
            )
        decode_cost(im, data, name, limits)  # a TIFF's tiles, as for any image
        try:
            arr = np.asarray(im)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(name, f"not a readable image ({e})") from None
        if np.issubdtype(arr.dtype, np.floating):
            return from_celsius(arr, name)
        if arr.dtype != np.uint16 and im.mode not in ("I;16", "I;16B", "I"):
            raise InputError(name, f"a raw thermal image must be 16-bit, got mode {im.mode}")
        return from_raw16(arr.astype(np.int32), calibration or LinearCalibration(), name)
    raise InputError(name, "unsupported thermal input (FLIR .jpg, .npy, 16-bit .png/.tif)")


# What decoding one thermal frame may take in a sandbox: flyr's parsing and the float64
# arrays of the radiometric model, a few per pixel, within the thermal pixel limit.
THERMAL_BYTES_PER_PIXEL = 64
THERMAL_FIXED_BYTES = 128 * 1024 * 1024
THERMAL_CPU_S = 10.0


@task
def _thermal_task(args: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], NDArray[Any]]:
    """A sandbox's side of ``decode_thermal_isolated``."""
    frame = decode_thermal(payload, suffix=str(args["suffix"]), name=str(args["name"]))
    meta = json.loads(json.dumps(frame.metadata, default=str))
    return {"source": frame.source, "metadata": meta}, frame.celsius


def thermal_cost(limits: DecodeConfig = THERMAL_LIMITS) -> int:
    """The most memory decoding one frame within ``limits`` may take."""
    return THERMAL_FIXED_BYTES + THERMAL_BYTES_PER_PIXEL * limits.max_pixels


def decode_thermal_isolated(
    sandbox: Sandbox,
    data: bytes,
    *,
    suffix: str,
    name: str,
    cancelled: Callable[[], bool] | None = None,
) -> ThermalFrame:
    """``decode_thermal`` of bytes in one of ``sandbox``'s processes, within
    ``thermal_cost()`` of memory (see ``facelens.decode.image.decode_isolated``)."""
    header, celsius = sandbox.call(
        "facelens.thermal.radiometric:_thermal_task",
        {"suffix": suffix, "name": name},
        data,
        Limits(thermal_cost(), THERMAL_CPU_S, 3 * THERMAL_CPU_S),
        cancelled,
        source=name,
    )
    if celsius is None or celsius.dtype != np.float32 or celsius.ndim != 2:
        raise InputError(name, "its decoder failed on it")
    h, w = celsius.shape
    if h * w > THERMAL_LIMITS.max_pixels:
        raise InputError(name, "its decoder failed on it")
    return ThermalFrame(_check(celsius, name), name, dict(header.get("metadata", {})))
