"""The command line given things that are not image files, or text meant for the terminal:
each is refused with its reason and exit 3, and the other inputs are still processed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facelens.cli.main import EXIT_INPUT, main


def cli(*argv: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A fresh ``facelens`` process, killed (and the test failed) if it hangs."""
    return subprocess.run(
        [sys.executable, "-m", "facelens", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, FACELENS_PROGRESS=""),
    )


@pytest.fixture
def photo(fr_photos: Path) -> Path:
    return fr_photos / "obama.jpg"


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, photo: Path) -> None:
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)  # nobody ever writes: reading it would block forever
    p = cli("detect", fifo, photo, "--json", timeout=60)
    assert p.returncode == EXIT_INPUT, p.stderr
    assert "not a regular file" in p.stderr
    assert len(json.loads(p.stdout)) == 1  # the photo after it was still searched


def test_an_endless_device_is_refused_without_reading_it(photo: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "facelens", "detect", "/dev/zero", str(photo), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, FACELENS_PROGRESS=""),
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == EXIT_INPUT, err
    assert "not a regular file" in err
    assert len(json.loads(out)) == 1


# Runs a command and prints its peak memory (KiB). The command is started from this small
# process, not from the test worker: a child's peak counts what it inherited at fork.
PEAK = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def test_reading_dev_zero_costs_no_memory() -> None:
    # reading /dev/zero grew to 1.8 GB in two seconds before
    p = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "facelens", "detect", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == EXIT_INPUT, p.stderr
    assert int(p.stdout.strip().splitlines()[-1]) < 600_000


def test_a_symlink_loop_is_an_input_error(
    tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    code = main(["detect", str(loop), str(photo), "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_INPUT and "internal error" not in err
    assert "loop.jpg" in err and "cannot open" in err
    assert len(json.loads(out)) == 1


def test_names_reach_the_terminal_as_text(
    tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = tmp_path / "g.db"
    evil = "\x1b]0;owned\x07\x1b[31mMallory\u202e"  # retitle the terminal, red, right-to-left
    assert main(["enroll", evil, str(photo), "--consent", "test", "--gallery", str(g)]) == 0
    for argv in (["gallery", "list"], ["gallery", "show", evil]):
        assert main([*argv, "--gallery", str(g)]) == 0
        out, err = capsys.readouterr()
        shown = out + err
        assert "Mallory" in shown
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
        assert "\\x1b" in shown
    # JSON keeps the name exactly (JSON escapes control characters itself)
    assert main(["gallery", "list", "--gallery", str(g), "--json"]) == 0
    out, _ = capsys.readouterr()
    assert "\x1b" not in out
    assert [i["name"] for i in json.loads(out)] == [evil]
