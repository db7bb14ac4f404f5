"""``facelens models``: listing, a user's own model through the generic path, refusals.

The custom model is SFace's own file, registered as a user would register a licensed ArcFace:
add, calibrate, enrol, identify."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from facelens.cli.main import EXIT_MODEL, EXIT_USAGE, main
from facelens.models import ModelStore


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A $FACELENS_HOME of its own: registered models do not leak into other tests."""
    h = tmp_path / "home"
    monkeypatch.setenv("FACELENS_HOME", str(h))
    return h


def small_lfw(data: Path, dest: Path, people: int = 24, per_fold: int = 12) -> Path:
    """An LFW-format folder (links to real LFW images): 2 folds of same and different pairs."""
    src = data / "lfw" / "images"
    names = sorted(p.name for p in src.iterdir() if len(list(p.iterdir())) >= 3)[:people]
    lines: list[str] = []
    for fold in range(2):
        group = names[fold::2]
        same = [f"{n}\t1\t{2 + (i % 2)}" for i, n in enumerate(group[:per_fold])]
        diff = [f"{a}\t1\t{b}\t2" for a, b in zip(group, group[1:] + group[:1], strict=True)]
        lines += same[:per_fold] + diff[:per_fold]
    (dest / "images").mkdir(parents=True)
    for n in names:
        (dest / "images" / n).symlink_to(src / n)
    (dest / "pairs.txt").write_text(f"2\t{per_fold}\n" + "\n".join(lines) + "\n")
    return dest


def test_models_list_shows_every_detector_and_recognizer(capsys, home: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    for name, kind in (
        ("yunet_2023mar", "detector"),
        ("centerface", "detector"),
        ("dlib_mmod_v1", "detector"),
        ("dlib_resnet_v1", "recognizer"),
        ("sface_2021dec", "recognizer"),
    ):
        r = rows[name]
        assert r["kind"] == kind and r["status"] == "ok" and len(r["sha256"]) == 64
        assert r["licence"]
    assert rows["sface_2021dec"]["declaration"]["alignment"] == "arcface"
    assert "dlib_resnet_v1+flip" in rows["dlib_resnet_v1"]["calibrated"]
    assert rows["dlib_landmarks68_v1"]["status"].startswith("restricted")
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and "yunet_2023mar" in out and "MIT" in out


def test_a_custom_model_round_trip(capsys, home: Path, data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sface = ModelStore().path("sface_2021dec")
    mine = tmp_path / "my_arcface.onnx"
    shutil.copy(sface, mine)
    # SFace normalises inside its graph: declared with mean 0, std 1
    code, out, err = run(
        capsys, "models", "add", mine, "--name", "myface", "--family", "arcface",
        "--mean", "0", "--std", "1", "--licence", "Apache-2.0 (test)", "--json",
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added["tag"].startswith("myface@") and added["declaration"]["dim"] == 128
    # thresholds needed before use
    knn = data / "faces" / "face_recognition" / "knn_examples"
    g = tmp_path / "g.db"
    code, _, err = run(capsys, "identify", knn / "test", "--model", "myface", "--gallery", g)
    assert code == EXIT_MODEL and "calibrate" in err
    lfw = small_lfw(data, tmp_path / "lfw")
    code, out, err = run(capsys, "models", "calibrate", "myface", "--lfw", lfw, "--json")
    assert code == 0, err
    cal = json.loads(out)
    assert cal["tag"] == added["tag"] + "+flip" and cal["impostor_pairs"] > 1000
    assert -1 < cal["balanced"] < 1 and "facelens models calibrate myface" in cal["measured_by"]
    # the calibration is stored: a new process finds it
    reg = json.loads((home / "models" / "registry.json").read_text())
    assert cal["tag"] in reg["models"]["myface"]["calibrations"]
    for person in sorted((knn / "train").iterdir()):
        code, _, err = run(
            capsys, "enroll", person.name, person, "--consent", "test", "--model", "myface",
            "--gallery", g,
        )  # fmt: skip
        assert code == 0, err
    code, out, err = run(
        capsys, "identify", knn / "test" / "obama1.jpg", "--model", "myface", "--gallery", g,
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert [f["identity"]["name"] for r in json.loads(out) for f in r["faces"]] == ["obama"]
    # without --model the gallery, which holds none of the default's templates, answers
    # with the model it holds and says so (issue 26); never an empty search
    code, out, err = run(capsys, "identify", knn / "test" / "obama1.jpg", "--gallery", g, "--json")
    assert code == 0 and [f["identity"]["name"] for r in json.loads(out) for f in r["faces"]] == [
        "obama"
    ]
    assert "holds no templates of the default recognizer" in err and "retemplate" in err
    code, out, _ = run(capsys, "models", "list", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "myface")
    assert (
        row["user"] and row["calibrated"] == [cal["tag"]] and row["licence"] == "Apache-2.0 (test)"
    )
    # an altered copy is refused
    copy = home / "models" / reg["models"]["myface"]["file"]
    with copy.open("r+b") as f:
        f.seek(4096)
        f.write(b"\x00\x01\x02\x03")
    os.utime(copy, None)
    code, _, err = run(
        capsys, "identify", knn / "test" / "obama1.jpg", "--model", "myface", "--gallery", g
    )
    assert code == EXIT_MODEL and "altered" in err


def test_files_that_do_not_match_their_declaration_are_refused(
    capsys, home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sface = ModelStore().path("sface_2021dec")
    base = ["models", "add"]
    opts = ["--family", "arcface", "--licence", "test"]
    code, _, err = run(capsys, *base, sface, "--name", "wrongsize", "--input-size", "160", *opts)
    assert code == EXIT_MODEL and "declaration says 3 x 160 x 160" in err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + os.urandom(4000))
    code, _, err = run(capsys, *base, junk, "--name", "junk", *opts)
    assert code == EXIT_MODEL and "not an ONNX file" in err
    yunet = ModelStore().path("yunet_2023mar")  # a detector is not a recognizer
    code, _, err = run(capsys, *base, yunet, "--name", "detector", *opts)
    assert code == EXIT_MODEL
    code, _, err = run(capsys, *base, sface, "--name", "sface_2021dec", *opts)
    assert code != 0 and "shipped model" in err
    code, _, err = run(capsys, *base, sface, "--name", "Bad Name", *opts)
    assert code != 0 and "not a model name" in err
    code, _, err = run(capsys, *base, sface, "--name", "x", "--family", "vgg", "--licence", "t")
    assert code == EXIT_USAGE
    assert not (home / "models" / "registry.json").exists()  # nothing was registered


def _recognizer(path: Path, *, constant: int = 0, initializer: Any = None) -> Path:
    """A tiny "recognizer" (a 1x3x112x112 chip -> 32 averages of its rows): optionally a
    graph that makes a constant of ``constant`` floats when it runs, or with ``initializer``
    (a TensorProto) among its weights."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
        helper.make_node("Slice", ["m", "start", "end", "axis"], ["y0"]),
    ]
    inits = [
        helper.make_tensor("axes", TensorProto.INT64, [2], [1, 3]),
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [32]),
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
    ]
    if constant:
        nodes += [
            helper.make_node("ConstantOfShape", ["shape"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
            helper.make_node("Add", ["y0", "s"], ["y"]),
        ]
        inits.append(helper.make_tensor("shape", TensorProto.INT64, [1], [constant]))
    else:
        nodes.append(helper.make_node("Identity", ["y0"], ["y"]))
    if initializer is not None:
        inits.append(initializer)
        nodes.append(helper.make_node("Identity", [initializer.name], ["extra"]))
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path.write_bytes(model.SerializeToString())
    return path


def test_a_model_that_builds_a_huge_constant_is_refused_within_its_memory_limit(
    capsys, home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import resource
    import time

    opts = ["--family", "arcface", "--licence", "test", "--mean", "0,0,0", "--std", "1"]
    ok = _recognizer(tmp_path / "ok.onnx")
    code, _, err = run(capsys, "models", "add", ok, "--name", "tiny", *opts)
    assert code == 0, err  # the same graph without the constant is a (poor) recognizer
    bomb = _recognizer(tmp_path / "bomb.onnx", constant=10 * 2**30 // 4)  # 10 GB of floats
    assert bomb.stat().st_size < 2000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    code, _, err = run(capsys, "models", "add", bomb, "--name", "bomb", *opts)
    assert code == EXIT_MODEL and ("MiB" in err or "failed" in err), err
    assert time.perf_counter() - t0 < 60
    # the caller's own peak did not grow by the constant (it was made, or refused, elsewhere)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024
    assert "bomb" not in json.loads((home / "models" / "registry.json").read_text())["models"]


def test_models_with_external_or_missing_weights_are_model_errors(
    capsys, home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from onnx import TensorProto, helper

    opts = ["--family", "arcface", "--licence", "test", "--mean", "0,0,0", "--std", "1"]
    for where in ("/etc/passwd", "../../secret.bin", "/proc/self/environ"):
        t = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=where)
        m = _recognizer(tmp_path / "ext.onnx", initializer=t)
        code, _, err = run(capsys, "models", "add", m, "--name", "ext", *opts)
        assert code == EXIT_MODEL and "keeps its data in another file" in err, err
    empty = helper.make_tensor("w", TensorProto.FLOAT, [1000], [0.0] * 1000)
    empty.ClearField("float_data")  # declares 1,000 floats, holds none
    m = _recognizer(tmp_path / "empty.onnx", initializer=empty)
    code, _, err = run(capsys, "models", "add", m, "--name", "empty", *opts)
    assert code == EXIT_MODEL and "malformed" in err, err
