"""A slice of the decoder fuzzing run (``make fuzz`` runs 100,000): mutated real images
through ``decode_image`` and ``decode_thermal`` with no crash and bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_thousand_mutated_images_crash_no_decoder(data: Path) -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz_images.py"), "--examples", "2000"],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, FACELENS_DATA=str(data)),
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["examples"] == 2000 and r["crash_count"] == 0
    # the mutations reach every outcome: decoded, refused as unreadable, and as too large
    assert r["outcomes"].get("decoded", 0) > 100
    assert r["outcomes"].get("InputError", 0) > 100
    assert r["outcomes"].get("ImageTooLargeError", 0) > 10
