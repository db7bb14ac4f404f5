"""A process killed with SIGKILL in the middle of an enrolment leaves no half-written identity."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facelens import Gallery


def _images(data: Path, n: int) -> list[Path]:
    folder = data / "lfw" / "images" / "George_W_Bush"
    return sorted(folder.iterdir())[:n]


@pytest.mark.parametrize("kill_after", [10, 25, 45])
def test_sigkill_during_a_50_image_enrolment(tmp_path: Path, data: Path, kill_after: int) -> None:
    g = tmp_path / "g.db"
    # Someone already enrolled, whose data must survive the crash untouched.
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "Colin Powell",
            str(data / "lfw" / "images" / "Colin_Powell"),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    before = Gallery.open(g).get("Colin Powell").sample_count

    images = _images(data, 50)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "George W Bush",
            *map(str, images),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--progress",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith(f"enroll: {kill_after}/"):
            break
        assert time.monotonic() < deadline
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with Gallery.open(g) as gallery:
        assert gallery.store.integrity_check() == []
        names = {i.name: i for i in gallery.identities()}
        assert names["Colin Powell"].sample_count == before
        assert "George W Bush" not in names  # nothing of the interrupted enrolment
    con = sqlite3.connect(g)
    orphans = con.execute(
        "SELECT count(*) FROM samples WHERE identity_id NOT IN (SELECT id FROM identities)"
    ).fetchone()[0]
    assert orphans == 0
    # and the gallery still takes the same enrolment afterwards
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "George W Bush",
            *map(str, images[:3]),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
