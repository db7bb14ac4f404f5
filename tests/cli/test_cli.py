"""The ``facelens`` command: the scenarios the README promises, and its documented errors."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facelens import Pipeline
from facelens.cli.main import (
    EXIT_GALLERY,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_NO_FACE,
    EXIT_POLICY,
    EXIT_USAGE,
    main,
)
from facelens.eval import lfw_image, read_pairs


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: object) -> object:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def knn(data: Path) -> Path:
    return data / "faces" / "face_recognition" / "knn_examples"


@pytest.fixture(scope="module")
def enrolled(knn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery with the 5 people of knn_examples/train, enrolled through the CLI."""
    g = tmp_path_factory.mktemp("g") / "gallery.db"
    for person in sorted((knn / "train").iterdir()):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "facelens",
                "enroll",
                person.name,
                str(person),
                "--consent",
                "evaluation",
                "--gallery",
                str(g),
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["created"] and doc["added"] == len(list(person.iterdir()))
    return g


def faces_of(res: object) -> list[dict[str, Any]]:
    """The faces of an identify --json answer (one object per image), each with its image."""
    return [{"image": r["image"], **f} for r in res for f in r["faces"]]  # type: ignore[attr-defined]


def test_identify_names_every_enrolled_person(capsys, enrolled: Path, knn: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_json(capsys, "identify", knn / "test", "--gallery", enrolled)
    by_image: dict[str, list[str | None]] = {}
    for r in res:  # type: ignore[attr-defined]
        assert set(r) == {
            "image",
            "width",
            "height",
            "model",
            "notice",
            "threshold",
            "rule",
            "faces",
        }
    for f in faces_of(res):
        assert set(f) == {"image", "box", "identity", "candidates", "decision_score"}
        assert len(f["box"]) == 4 and f["box"][0] < f["box"][2] and f["box"][1] < f["box"][3]
        name = f["identity"]["name"] if f["identity"] else None
        by_image.setdefault(Path(f["image"]).name, []).append(name)
    assert by_image["alex_lacamoire1.jpg"] == ["alex_lacamoire"]
    assert by_image["johnsnow_test1.jpg"] == ["kit_harington"]
    assert by_image["obama1.jpg"] == ["obama"]
    assert sorted(filter(None, by_image["kit_with_rose.jpg"])) == ["kit_harington", "rose_leslie"]
    # Both people in obama_and_biden.jpg; the third, small face in it is someone else.
    named = [n for n in by_image["obama_and_biden.jpg"] if n]
    assert sorted(named) == ["biden", "obama"]


def test_people_not_enrolled_are_unknown(capsys, enrolled: Path, data: Path) -> None:  # type: ignore[no-untyped-def]
    bbt = data / "faces" / "bbt"
    photos = [bbt / f"bbt{i}.jpg" for i in range(1, 6)]
    res = run_json(capsys, "identify", *photos, "--gallery", enrolled)
    faces = faces_of(res)
    assert len(faces) >= 10
    assert all(f["identity"] is None for f in faces)
    # a stranger is not "like" anyone unless candidates are asked for
    assert all(f["candidates"] == [] for f in faces)
    asked = run_json(capsys, "identify", *photos, "--gallery", enrolled, "--candidates")
    threshold = {r["image"]: r["threshold"] for r in asked}  # type: ignore[attr-defined]
    assert all(
        f["candidates"] and f["decision_score"] < threshold[f["image"]] for f in faces_of(asked)
    )


def test_identify_prints_a_table_and_writes_annotated_images(
    capsys,
    enrolled: Path,
    knn: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    code, out, _ = run(
        capsys,
        "identify",
        knn / "test" / "obama_and_biden.jpg",
        "--gallery",
        enrolled,
        "--annotate",
        tmp_path,
    )
    assert code == 0
    assert out.splitlines()[0].split() == ["image", "box", "identity", "score"]
    assert "obama" in out and "biden" in out and "unknown" in out
    annotated = Image.open(tmp_path / "obama_and_biden.jpg")
    original = Image.open(knn / "test" / "obama_and_biden.jpg")
    assert annotated.size == original.size
    assert not np.array_equal(np.asarray(annotated), np.asarray(original.convert("RGB")))


def test_verify_on_a_sample_of_lfw_pairs(capsys, data: Path) -> None:  # type: ignore[no-untyped-def]
    pairs = read_pairs(data / "lfw" / "pairs.txt")
    rng = random.Random(7)
    same = rng.sample([p for p in pairs if p.same], 20)
    diff = rng.sample([p for p in pairs if not p.same], 20)
    correct = 0
    for p in same + diff:
        code, out, err = run(
            capsys,
            "verify",
            lfw_image(data / "lfw", p.name_a, p.index_a),
            lfw_image(data / "lfw", p.name_b, p.index_b),
            "--json",
        )
        if code == EXIT_NO_FACE:  # the detector missed a face: no "same" answer
            assert "no_face" in err
            correct += not p.same
            continue
        assert code == 0, err
        correct += json.loads(out)["same"] == p.same
    # Held-out accuracy of this pipeline at this threshold is 0.963 (docs/accuracy.md);
    # on 40 pairs allow three errors.
    assert correct >= 37, correct


def test_verify_prints_a_verdict(capsys, data: Path) -> None:  # type: ignore[no-untyped-def]
    photos = data / "faces" / "face_recognition"
    code, out, _ = run(capsys, "verify", photos / "obama.jpg", photos / "obama2.jpg")
    assert code == 0 and out.startswith("same person (similarity")
    code, out, _ = run(capsys, "verify", photos / "obama.jpg", photos / "biden.jpg")
    assert code == 0 and out.startswith("different people")


def _bad_inputs(tmp: Path, photos: Path) -> dict[str, Path]:
    data = (photos / "obama.jpg").read_bytes()
    files = {
        "truncated.jpg": data[: len(data) // 3],
        "empty.jpg": b"",
        "text.jpg": b"hello, I am a text file\n",
    }
    out = {}
    for name, content in files.items():
        (tmp / name).write_bytes(content)
        out[name] = tmp / name

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    huge = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    (tmp / "huge.png").write_bytes(huge)
    out["huge.png"] = tmp / "huge.png"
    return out


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.jpg", "truncated image data"),
        ("empty.jpg", "empty file"),
        ("text.jpg", "not a supported image"),
        ("huge.png", "over the limit of 40000000"),
    ],
)
def test_bad_inputs_give_the_documented_error_never_a_traceback(  # type: ignore[no-untyped-def]
    capsys, tmp_path: Path, data: Path, name: str, reason: str
) -> None:
    photos = data / "faces" / "face_recognition"
    bad = _bad_inputs(tmp_path, photos)[name]
    for cmd in (["detect"], ["identify", "--gallery", tmp_path / "none.db"]):
        code, _, err = run(capsys, *cmd, bad, photos / "obama.jpg", "--json")
        assert code == EXIT_INPUT
        assert f"{bad}: " in err and reason in err and "Traceback" not in err
    code, _, err = run(capsys, "verify", bad, photos / "obama.jpg")
    assert code == EXIT_INPUT and reason in err


def test_unusual_but_valid_images_give_the_right_result(
    capsys,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    data: Path,
) -> None:
    photo = Image.open(data / "faces" / "face_recognition" / "obama.jpg").convert("RGB")
    grey16 = np.asarray(photo.convert("L"), np.uint16) * 257
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned: "rotate 90" needed to display upright
    photo.transpose(Image.Transpose.ROTATE_270).save(
        tmp_path / "exif_rot.jpg", exif=exif.tobytes(), quality=95
    )
    for name in ("grey16.png", "cmyk.jpg", "exif_rot.jpg"):
        doc = run_json(
            capsys, "verify", tmp_path / name, data / "faces" / "face_recognition" / "obama2.jpg"
        )
        assert doc["same"], name  # type: ignore[index]


def test_enrol_needs_consent_and_a_usable_face(capsys, tmp_path: Path, data: Path) -> None:  # type: ignore[no-untyped-def]
    g = tmp_path / "g.db"
    photos = data / "faces" / "face_recognition"
    code, _, err = run(capsys, "enroll", "obama", photos / "obama.jpg", "--gallery", g)
    assert code == EXIT_POLICY and "no consent record" in err
    code, _, err = run(
        capsys, "enroll", "dog", data / "detection" / "dogs.jpg", "--consent", "x", "--gallery", g
    )
    assert code == EXIT_NO_FACE and "no_face" in err
    code, _, err = run(
        capsys, "enroll", "pair", photos / "two_people.jpg", "--consent", "x", "--gallery", g
    )
    assert code == EXIT_NO_FACE and "ambiguous_face" in err
    # an explicit box picks one of the two
    doc = run_json(
        capsys,
        "enroll",
        "left one",
        photos / "two_people.jpg",
        "--consent",
        "x",
        "--face",
        "253,47,409,203",
        "--gallery",
        g,
    )
    assert doc["created"] and doc["added"] == 1  # type: ignore[index]
    small = tmp_path / "small.jpg"
    Image.open(photos / "obama.jpg").reduce(8).save(small)  # eyes ~13 px apart
    # --upsample 2 so the detector finds the small face and the gate, not detection, refuses it
    doc = run_json(
        capsys,
        "enroll",
        "obama",
        photos / "obama.jpg",
        small,
        "--consent",
        "x",
        "--upsample",
        "2",
        "--gallery",
        g,
    )
    assert doc["added"] == 1  # type: ignore[index]
    assert doc["rejected"] == [{"image": str(small), "reasons": ["too_small"]}]  # type: ignore[index]
    code, _, err = run(
        capsys,
        "enroll",
        "x",
        photos / "obama.jpg",
        "--consent",
        "x",
        "--consent-expires",
        "2001-01-01",
        "--gallery",
        g,
    )
    assert code == EXIT_USAGE and "not after" in err


def test_gallery_commands(capsys, tmp_path: Path, enrolled: Path) -> None:  # type: ignore[no-untyped-def]
    g = tmp_path / "copy.db"
    export = tmp_path / "export.json"
    assert run_json(capsys, "gallery", "export", export, "--gallery", enrolled)["identities"] == 5  # type: ignore[index]
    assert b"JFIF" not in export.read_bytes()
    assert run_json(capsys, "gallery", "import", export, "--gallery", g) == {
        "imported": 5,
        "skipped": 0,
    }
    people = run_json(capsys, "gallery", "list", "--gallery", g)
    assert [p["name"] for p in people] == [
        "alex_lacamoire",
        "biden",
        "kit_harington",  # type: ignore[attr-defined]
        "obama",
        "rose_leslie",
    ]
    shown = run_json(capsys, "gallery", "show", "biden", "--gallery", g)
    # two images, each with a template per model of the default (a fusion: three)
    images = {x["image_sha256"] for x in shown["samples"]}  # type: ignore[index]
    assert len(images) == 2 and shown["consents"][0]["purpose"] == "evaluation"  # type: ignore[index]
    per_image = len(shown["samples"]) // 2  # type: ignore[index,arg-type]
    assert "embedding" not in json.dumps(shown)
    assert (
        run_json(capsys, "gallery", "rename", "biden", "Joe Biden", "--gallery", g)["name"]
        == "Joe Biden"
    )  # type: ignore[index]
    code, _, err = run(capsys, "gallery", "rename", "obama", "Joe Biden", "--gallery", g)
    assert code == EXIT_GALLERY and "already exists" in err
    code, _, err = run(capsys, "gallery", "delete", "obama", "--gallery", g)
    assert code == EXIT_USAGE and "--yes" in err
    receipt = run_json(capsys, "gallery", "delete", "obama", "--yes", "--gallery", g)
    assert receipt["samples_deleted"] == 2 * per_image  # type: ignore[index]  # every template
    code, _, err = run(capsys, "gallery", "show", "obama", "--gallery", g)
    assert code == EXIT_GALLERY and "no identity named 'obama'" in err
    code, out, _ = run(capsys, "gallery", "list", "--gallery", g)
    assert code == 0 and "Joe Biden" in out and "obama" not in out


def test_detect_json_and_quality(capsys, data: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_json(
        capsys, "detect", data / "faces" / "face_recognition" / "two_people.jpg", "--quality"
    )
    ((image,),) = [[r] for r in res]  # type: ignore[attr-defined]
    assert set(image) == {"image", "width", "height", "faces"} and len(image["faces"]) == 2
    for f in image["faces"]:
        assert set(f) == {"box", "score", "quality", "gate"}
        assert f["gate"] == []
    # the table shows the quality figures, not only the gate's verdict
    code, out, _ = run(
        capsys, "detect", data / "faces" / "face_recognition" / "two_people.jpg", "--quality"
    )
    head, _, *rows = out.splitlines()
    assert code == 0 and head.split()[3:] == [
        "eyes", "px", "sharpness", "yaw", "pitch", "bright", "clipped", "gate"
    ]  # fmt: skip
    eyes = round(image["faces"][0]["quality"]["inter_eye_px"])
    assert len(rows) == 2 and rows[0].split()[-1] == "ok" and f" {eyes} " in rows[0]


def test_info_reports_models_and_checksums(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(capsys, "info", "--gallery", tmp_path / "none.db")
    assert doc["inference"]["detector"] == "cpu"  # type: ignore[index]
    assert doc["inference"]["embedder"] == "cpu"  # type: ignore[index]
    assert doc["pipeline"]["detector"] == "yunet"  # type: ignore[index]
    names = {m["name"]: m for m in doc["models"]}  # type: ignore[index]
    assert names["dlib_resnet_v1"]["status"] == "ok"
    assert names["yunet_2023mar"]["status"] == "ok"
    assert names["dlib_resnet_v1"]["sha256"].startswith("55533b28")
    assert names["dlib_landmarks68_v1"]["status"].startswith("restricted")
    assert doc["pipeline"]["model"] == Pipeline().model  # type: ignore[index]


def test_converted_models_are_cached_in_facelens_home(
    capsys,
    facelens_home: Path,  # type: ignore[no-untyped-def]
    data: Path,
) -> None:
    run_json(capsys, "detect", data / "faces" / "face_recognition" / "obama.jpg")
    cached = sorted(p.name for p in (facelens_home / "cache").glob("*.onnx"))
    assert any(n.startswith("yunet_2023mar-") for n in cached)
    assert all(
        n.startswith(
            (
                "yunet_2023mar-",
                "dlib_mmod_v1-",
                "dlib_resnet_v1-",
                "dlib_resnet_v1_int8-",  # the default's dlib part (issue 26)
                "sface_2021dec-",
            )
        )
        for n in cached
    )


def test_asking_for_an_unavailable_provider_fails_clearly(capsys, data: Path) -> None:  # type: ignore[no-untyped-def]
    from facelens.runtime import available_providers

    if "cuda" in available_providers():
        pytest.skip("this machine has CUDA")
    photo = data / "faces" / "face_recognition" / "obama.jpg"
    code, _, err = run(capsys, "detect", photo, "--provider", "cuda")
    assert code == EXIT_MODEL and "'cuda' is not available" in err and "onnxruntime-gpu" in err


def test_the_installed_command_and_its_usage_errors(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("facelens")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Exit codes" in proc.stdout
    proc = subprocess.run([str(exe), "identify"], capture_output=True, text=True)
    assert proc.returncode == EXIT_USAGE and "Missing argument" in proc.stderr
    proc = subprocess.run(
        [str(exe), "gallery", "list", "--gallery", str(tmp_path / "no.db")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_GALLERY and "no gallery at" in proc.stderr
