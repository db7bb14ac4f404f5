"""A process killed with SIGKILL in the middle of an enrolment leaves no half-written identity."""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def complete_enrolment(data: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many samples the 50-image enrolment stores when nothing interrupts it."""
    g = tmp_path_factory.mktemp("complete") / "g.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "George W Bush",
            *map(str, _images(data, 50)),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    n = int(json.loads(proc.stdout)["added"])
    assert 40 <= n <= 50
    return n


# Killed while images are processed (10, 25, 45), and once all 50 are processed, racing the
# single write transaction (50).
@pytest.mark.parametrize("kill_after", [10, 25, 45, 50])
def test_sigkill_during_a_50_image_enrolment(
    tmp_path: Path, data: Path, kill_after: int, complete_enrolment: int
) -> None:
    g = tmp_path / "g.db"
    # Someone already enrolled, whose data must survive the crash untouched.
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "Colin Powell",
            *(str(p) for p in sorted((data / "lfw" / "images" / "Colin_Powell").iterdir())[:4]),
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
    with Gallery.open(g) as gallery:
        before = gallery.get("Colin Powell").sample_count
    assert before == 4

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
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with Gallery.open(g) as gallery:
        assert gallery.store.integrity_check() == []
        names = {i.name: i for i in gallery.identities()}
        assert names["Colin Powell"].sample_count == before
        if kill_after < 50:
            assert "George W Bush" not in names  # nothing of the interrupted enrolment
        elif "George W Bush" in names:
            # killed while writing: the commit either happened whole or not at all
            assert names["George W Bush"].sample_count == complete_enrolment
    con = sqlite3.connect(g)
    orphans = con.execute(
        "SELECT count(*) FROM samples WHERE identity_id NOT IN (SELECT id FROM identities)"
    ).fetchone()[0]
    con.close()
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
