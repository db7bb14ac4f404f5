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


def test_names_with_terminal_controls_are_refused_and_old_ones_are_shown_as_text(
    tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    g = tmp_path / "g.db"
    evil = "\x1b]0;owned\x07\x1b[31mMallory\u202e"  # retitle the terminal, red, right-to-left
    code = main(["enroll", evil, str(photo), "--consent", "test", "--gallery", str(g)])
    _, err = capsys.readouterr()
    assert code == EXIT_INPUT and "control character" in err and "\x1b" not in err
    # a gallery written before names were checked may still hold one: shown as text
    assert main(["enroll", "Mallory", str(photo), "--consent", "test", "--gallery", str(g)]) == 0
    with sqlite3.connect(g) as db:
        db.execute("UPDATE identities SET name = ?", (evil,))
    capsys.readouterr()
    assert main(["gallery", "list", "--gallery", str(g), "--json"]) == 0
    ident = json.loads(capsys.readouterr().out)[0]
    assert ident["name"] == evil  # JSON keeps the name exactly (escaped by JSON itself)
    for argv in (["gallery", "list"], ["gallery", "show", "--id", ident["id"]]):
        assert main([*argv, "--gallery", str(g)]) == 0
        out, err = capsys.readouterr()
        shown = out + err
        assert "Mallory" in shown
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
        assert "\\x1b" in shown


def test_an_unreadable_file_is_exit_3_and_the_others_go_on(tmp_path: Path, photo: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(photo.read_bytes())
    secret.chmod(0)
    tmp_path.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    # root reads any file: the command runs in a user namespace, where it is nobody
    prefix = ["unshare", "-U"] if os.geteuid() == 0 else []
    p = subprocess.run(
        [*prefix, sys.executable, "-m", "facelens", "detect", str(secret), str(photo), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, FACELENS_PROGRESS="", FACELENS_HOME=str(home)),
    )
    assert p.returncode == EXIT_INPUT, p.stderr  # was 2, a usage error, and nothing ran
    assert "secret.jpg: permission denied" in p.stderr
    assert len(json.loads(p.stdout)) == 1  # the readable photo was still searched
