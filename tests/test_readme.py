"""The README's command-line examples, run as written against a temporary gallery, in a
folder laid out as they assume (photos/ada/, photo.jpg, a.jpg, in.mp4, ... made of the shared
data's photos and clips). The examples that need what a test machine does not have - a
camera, a PostgreSQL server, a Ray cluster, an ONNX file of the user's, the user's own
folders - are listed in ``NOT_RUN`` with why, and are checked by hand."""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from facelens.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"

# example (its first words) -> why it is not run here
NOT_RUN = {
    "facelens gallery list | show": "a synopsis of four commands (each is run below)",
    "facelens gallery delete --id 3fa85f64...": "a placeholder id",
    "facelens identify photo.jpg --model sface": "needs SFace templates in the gallery",
    "facelens models add r100.onnx": "an ONNX recognizer of the user's",
    "facelens models calibrate r100": "an ONNX recognizer of the user's",
    "facelens gallery retemplate --model r100": "an ONNX recognizer of the user's",
    "facelens watch rtsp://camera.local/stream": "a camera",
    "facelens serve": "a long-running server (tests/service runs it)",
    "facelens gallery export people.json && facelens gallery import people.json --gallery "
    "postgresql://": "a PostgreSQL server (tests/gallery runs it)",
    "FACELENS_KEY_FILE=": "a placeholder command",
    "facelens index /photos": "a Ray cluster and a PostgreSQL server",
    "facelens cluster merge c1a2...": "placeholder group ids",
    "facelens cluster name c1a2...": "placeholder group ids",
    "facelens thermal screen frame.jpg": "a radiometric frame (tests/thermal runs the command)",
    "facelens eval lfw": "all of LFW: minutes (benchmarks/ and docs/accuracy.md)",
    "facelens eval identify": "all of LFW: minutes",
}


# what the examples name that this machine has not: the user's own photo folder
SUBSTITUTE = {"~/Pictures": "photos"}


def examples() -> list[str]:
    """The commands of the README's "Command line" section, continuation lines joined."""
    text = README.read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "alias ")):
                out.append(line)
    return out


def test_the_readme_examples_are_found_and_every_one_is_run_or_explained() -> None:
    found = examples()
    assert len(found) >= 40
    explained = [e for e in found if e.startswith(tuple(NOT_RUN))]
    assert {k for k in NOT_RUN if any(e.startswith(k) for e in found)} == set(NOT_RUN)
    assert len(found) - len(explained) >= 20  # most run below


@pytest.fixture
def folder(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder as the examples assume it, with a new gallery and key-less store."""
    fr = data / "faces" / "face_recognition"
    knn = fr / "knn_examples"
    layout = {
        "photos/ada/1.jpg": knn / "train" / "obama" / "obama.jpg",
        "photos/ada/2.jpg": knn / "train" / "obama" / "obama2.jpg",
        "photos/ada-2027/1.jpg": fr / "obama-480p.jpg",
        "photos/party/1.jpg": knn / "test" / "obama_and_biden.jpg",
        "photos/party/2.jpg": knn / "test" / "kit_with_rose.jpg",
        "photo.jpg": knn / "test" / "obama1.jpg",
        "a.jpg": fr / "obama.jpg",
        "b.jpg": fr / "obama2.jpg",
        "group.jpg": fr / "two_people.jpg",
        "in.mp4": data / "video" / "bbt_5frames.mp4",
    }
    for rel, src in layout.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp_path / rel)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACELENS_GALLERY", str(tmp_path / "gallery.db"))
    monkeypatch.delenv("FACELENS_KEY_FILE", raising=False)
    return tmp_path


def test_the_readme_examples_run_as_written(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = []
    for example in examples():
        if example.startswith(tuple(NOT_RUN)):
            continue
        argv = [SUBSTITUTE.get(a, a) for a in shlex.split(example, comments=True)]
        assert argv[0] == "facelens", example
        args = [m for a in argv[1:] for m in (sorted(glob.glob(a)) if "*" in a else [a])]
        code = main(args)
        _, err = capsys.readouterr()
        assert code == 0, f"{example}: exit {code}\n{err}"
        ran.append(example)
    # the synopsis "gallery list | show NAME | rename NAME NEW | delete NAME --yes", one by one
    for argv in (
        ["gallery", "list"],
        ["gallery", "show", "Ada Lovelace"],
        ["gallery", "rename", "Ada Lovelace", "Ada King"],
        ["gallery", "delete", "Ada King", "--yes"],
    ):
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert len(ran) >= 20
    assert (folder / "out" / "1.jpg").is_file() and (folder / "out.mp4").is_file()
    assert os.path.getsize(folder / "people.json") > 0
