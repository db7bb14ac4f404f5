"""Mutated images through the decoders: no crash, bounded memory (hypothesis).

    .venv/bin/python benchmarks/fuzz_images.py [--examples 100000] [--write docs/benchmarks.md]

Seeds are real photos from the shared data (LFW and face_recognition's JPEGs and PNGs, the
FLIR radiometric JPEGs, 16-bit thermal PNGs) and the same photos re-encoded as PNG, WebP,
BMP, TIFF and .npy. Hypothesis draws a seed and a list of mutations - bytes overwritten with
random or boundary values (0x00, 0xFF, 0x7F, 0x80), a range deleted, duplicated or moved,
the file cut short, a header field (a JPEG SOF or a PNG IHDR size) set to a large value,
bytes inserted - and hands the result to ``facelens.decode.image.decode_image`` (the photo
decoder every route and command uses) and, for the thermal formats,
``facelens.thermal.decode_thermal``.

A crash is anything but a decoded image or facelens's own ``InputError`` (with
``ImageTooLargeError``): another exception, a hang (each example has a deadline) or the
process dying. Memory, two figures: the peak (resident size sampled every 50 examples, which
catches a decoder's transient arrays: a 20-megapixel PNG is 60 MB while it lives), bounded
by ``--max-peak-mb`` over the size after the first hundred; and what stays - the resident
size after each chunk, once garbage is collected and freed heap handed back
(``malloc_trim``) - whose growth from the first chunk to the last is bounded by
``--max-growth-mb`` (a leak would grow it chunk after chunk).
Examples run in chunks of 10,000, each a fresh hypothesis run with its own seed: hypothesis
remembers every example of a run (to avoid repeats), which in one 100,000-example run grew
the process by ~300 MB that was hypothesis's, not the decoders'. Prints a JSON summary;
exits 1 on any crash or memory overrun.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from tests import hostile

from _report import data_root, machine, write_section
from facelens.decode.image import DecodeConfig, decode_image
from facelens.errors import InputError


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seeds(root: Path) -> list[tuple[str, bytes]]:
    """(kind, bytes): real files, and some of them re-encoded in every accepted format."""
    from PIL import Image

    photos = sorted((root / "faces" / "face_recognition").glob("*.jpg"))[:4]
    photos += sorted((root / "lfw").rglob("*.jpg"))[:8]
    out: list[tuple[str, bytes]] = [("photo", p.read_bytes()) for p in photos]
    out += [("photo", p.read_bytes()) for p in sorted((root / "faces").rglob("*.png"))[:2]]
    for p in photos[:3]:
        im = Image.open(p).convert("RGB")
        im.thumbnail((200, 200))
        for fmt in ("PNG", "WEBP", "BMP", "TIFF"):
            buf = io.BytesIO()
            im.save(buf, fmt)
            out.append(("photo", buf.getvalue()))
        # progressive JPEGs (their scans are counted before decoding) and tiled, 16-bit and
        # float TIFFs (their tiles and depth are charged before decoding)
        buf = io.BytesIO()
        im.save(buf, "JPEG", progressive=True)
        out.append(("photo", buf.getvalue()))
    out += [
        ("photo", hostile.jpeg_scans(320, 240, 8)),
        ("photo", hostile.tiff(200, 150, samples=3, tile=(64, 64))),
        ("photo", hostile.tiff(200, 150, tile=(256, 256))),
        ("photo", hostile.tiff(120, 90, bits=16, rows_per_strip=8)),
        ("photo", hostile.tiff(120, 90, bits=32, float_samples=True)),
    ]
    thermal = sorted((root / "thermal").rglob("*")) + sorted((root / "flir_radiometric").rglob("*"))
    for p in [q for q in thermal if q.suffix.lower() in (".jpg", ".png", ".tif", ".tiff")][:4]:
        out.append(("thermal" + p.suffix.lower(), p.read_bytes()))
    buf = io.BytesIO()
    np.save(buf, np.full((60, 80), 30815, np.uint16))
    out.append(("thermal.npy", buf.getvalue()))
    return out


CHUNK = 10_000

MUTATION = st.tuples(
    st.sampled_from(
        ["set", "boundary", "delete", "duplicate", "truncate", "insert", "size", "tile", "scans"]
    ),
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
    st.binary(min_size=1, max_size=16),
)


def mutate(data: bytes, ops: list[tuple[str, float, float, bytes]]) -> bytes:
    b = bytearray(data)
    for op, a, c, payload in ops:
        if not b:
            break
        i = min(int(a * len(b)), len(b) - 1)
        n = 1 + int(c * 64)
        if op == "set":
            b[i : i + len(payload)] = payload
        elif op == "boundary":
            b[i] = (0x00, 0xFF, 0x7F, 0x80)[int(c * 3.999)]
        elif op == "delete":
            del b[i : i + n]
        elif op == "duplicate":
            b[i:i] = b[i : i + n]
        elif op == "truncate":
            del b[max(1, i) :]
        elif op == "insert":
            b[i:i] = payload
        elif op == "size":  # a header that declares a huge picture
            big = struct.pack(">HH", 0xFFFF, 1 + int(c * 0xFFFE))
            sof = b.find(b"\xff\xc0")
            ihdr = b.find(b"IHDR")
            if sof >= 0:
                b[sof + 5 : sof + 9] = big
            elif ihdr >= 0:
                b[ihdr + 4 : ihdr + 12] = struct.pack(">II", 1 + int(a * 2**30), 1 + int(c * 2**30))
        elif op == "tile":  # a TIFF tile (or strip) declared far larger than its image
            for tag in (b"\x42\x01\x04\x00", b"\x43\x01\x04\x00", b"\x16\x01\x04\x00"):
                at = b.find(tag)
                if at >= 0 and at + 12 <= len(b):
                    b[at + 8 : at + 12] = struct.pack("<I", 1 + int(a * 2**20) * 16)
        elif op == "scans":  # a JPEG's last scan repeated
            last = b.rfind(b"\xff\xda")
            if last > 0:
                b[last:last] = bytes(b[last:-2]) * (1 + int(c * 60))
    return bytes(b)


def settle() -> float:
    """Resident size once garbage is collected and glibc has handed freed heap back."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


def run(
    examples: int, max_growth_mb: float, max_peak_mb: float, deadline_s: float
) -> dict[str, Any]:
    from facelens.thermal import decode_thermal

    pool = seeds(data_root())
    config = DecodeConfig()
    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    state = {"n": 0, "base": 0.0, "peak": 0.0, "slowest": 0.0}
    settled: list[float] = []  # resident size after each chunk, garbage collected

    def one(index: int, ops: list[tuple[str, float, float, bytes]]) -> None:
        kind, original = pool[index]
        data = mutate(original, ops)
        t0 = time.perf_counter()
        try:
            if kind.startswith("thermal"):
                decode_thermal(data, suffix=kind[len("thermal") :], name="frame")
            else:
                decode_image(data, config)
            outcomes["decoded"] += 1
        except InputError as e:
            outcomes[type(e).__name__] += 1
        except Exception as e:  # a crash: anything else
            crashes.append(f"{kind} {type(e).__name__}: {str(e)[:120]}")
            outcomes["crash"] += 1
        dt = time.perf_counter() - t0
        state["slowest"] = max(state["slowest"], dt)
        if dt > deadline_s:
            crashes.append(f"{kind}: {dt:.1f} s for one image")
        state["n"] += 1
        if state["n"] == 100:
            state["base"] = rss_mb()
        if state["n"] % 50 == 0:
            state["peak"] = max(state["peak"], rss_mb())

    def chunk(size: int, number: int) -> None:
        @seed(number)
        @settings(
            max_examples=size,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        @given(st.integers(0, len(pool) - 1), st.lists(MUTATION, min_size=1, max_size=6))
        def run_chunk(index: int, ops: list[tuple[str, float, float, bytes]]) -> None:
            one(index, ops)

        run_chunk()

    t0 = time.perf_counter()
    for number, start in enumerate(range(0, examples, CHUNK)):
        chunk(min(CHUNK, examples - start), number)
        settled.append(settle())
    elapsed = time.perf_counter() - t0
    peak = max(0.0, state["peak"] - state["base"])
    growth = max(0.0, settled[-1] - settled[0]) if len(settled) > 1 else 0.0
    return {
        "examples": state["n"],
        "seeds": len(pool),
        "outcomes": dict(outcomes),
        "crashes": sorted(set(crashes))[:20],
        "crash_count": len(crashes),
        "rss_base_mb": round(state["base"], 1),
        "rss_peak_over_base_mb": round(peak, 1),
        "rss_after_chunks_mb": [round(m, 1) for m in settled],
        "rss_growth_mb": round(growth, 1),
        "memory_ok": growth <= max_growth_mb and peak <= max_peak_mb,
        "slowest_s": round(state["slowest"], 3),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--max-growth-mb", type=float, default=50)
    ap.add_argument("--max-peak-mb", type=float, default=500)
    ap.add_argument("--deadline-s", type=float, default=10)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    r = run(args.examples, args.max_growth_mb, args.max_peak_mb, args.deadline_s)
    print(json.dumps(r, indent=1))
    if args.write:
        o = r["outcomes"]
        body = (
            f"Command: `.venv/bin/python benchmarks/fuzz_images.py --examples {args.examples} "
            f"--write docs/benchmarks.md` ({machine()}; the machine was shared with other "
            "work).\n\n"
            f"{r['examples']:,} mutated images from {r['seeds']} seeds (real photos, their "
            "PNG/WebP/BMP/TIFF and progressive JPEG re-encodings, tiled, 16-bit and float "
            "TIFFs, a JPEG of repeated scans, radiometric JPEGs, 16-bit PNGs, .npy; mutations "
            "include huge declared sizes, TIFF tiles and strips far larger than their image "
            "and repeated JPEG scans) through "
            f"`decode_image` and `decode_thermal` in {r['seconds']:.0f} s: "
            f"**{r['crash_count']} crashes**; {o.get('decoded', 0):,} decoded, "
            f"{o.get('InputError', 0):,} refused as unreadable, "
            f"{o.get('ImageTooLargeError', 0):,} as too large; slowest image "
            f"{r['slowest_s']:.2f} s. Memory: peak {r['rss_peak_over_base_mb']:.0f} MB over "
            f"the size after the first 100 (bound {args.max_peak_mb:.0f} MB, a decoder's "
            "transient arrays included); resident size after each 10,000, garbage collected: "
            + ", ".join(f"{m:.0f}" for m in r["rss_after_chunks_mb"])
            + f" MB, **growth {r['rss_growth_mb']:.0f} MB** from the first chunk to the last "
            f"(bound {args.max_growth_mb:.0f} MB)."
        )
        write_section(args.write, "fuzz-images", body)
    sys.exit(0 if r["crash_count"] == 0 and r["memory_ok"] else 1)


if __name__ == "__main__":
    main()
