"""Every command that enrols, searches, renames or erases leaves exactly one audit record,
through the governed gallery (``facelens.govern.GovernedGallery``), in the same hash chain
the service writes."""

from __future__ import annotations

import getpass
import hashlib
import json
from pathlib import Path

import pytest

from facelens.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> object:
    code = main([*map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_each_command_is_audited_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    g = tmp_path / "g.db"
    knn = data / "faces" / "face_recognition" / "knn_examples"
    train = sorted((knn / "train" / "obama").iterdir())
    probes = [knn / "test" / "obama1.jpg", data / "faces" / "face_recognition" / "biden.jpg"]
    run(capsys, "enroll", "Barack Obama", *train, "--consent", "door", "--gallery", g)
    found = run(capsys, "identify", *probes, "--gallery", g)
    run(capsys, "gallery", "rename", "Barack Obama", "B. Obama", "--gallery", g)
    run(capsys, "gallery", "delete", "B. Obama", "--yes", "--gallery", g)
    trail = run(capsys, "audit", "list", "--gallery", g)
    assert [r["action"] for r in trail] == ["enroll", "identify", "identify", "rename", "delete"]  # type: ignore[index]
    assert {r["key_id"] for r in trail} == {f"cli:{getpass.getuser()}"}  # type: ignore[attr-defined]
    enrol, first, second, _, erase = trail  # type: ignore[misc]
    assert enrol["probe_sha256"] == ",".join(  # the images' hashes, never the images
        hashlib.sha256(p.read_bytes()).hexdigest() for p in train
    )
    # each search: the input's hash, the reference database (gallery and its generation)
    assert first["probe_sha256"] == hashlib.sha256(probes[0].read_bytes()).hexdigest()
    assert first["gallery"] == "default" and first["decision"]["generation"] >= 1
    assert first["decision"]["identified"] == [enrol["candidates"][0]]
    assert second["decision"]["identified"] == []
    names = [f["identity"] and f["identity"]["name"] for r in found for f in r["faces"]]  # type: ignore[attr-defined]
    assert names == ["Barack Obama", None]
    assert erase["decision"]["receipt"]["name"] == "B. Obama"
    assert run(capsys, "audit", "verify", "--gallery", g)["ok"] is True  # type: ignore[index]


def test_a_watch_records_its_period_of_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    g = tmp_path / "g.db"
    knn = data / "faces" / "face_recognition" / "knn_examples"
    run(
        capsys,
        "enroll",
        "Barack Obama",
        *sorted((knn / "train" / "obama").iterdir()),
        "--consent",
        "door",
        "--gallery",
        g,
    )
    clip = data / "video" / "bbt_5frames.mp4"
    code = main(
        [
            "watch",
            str(clip),
            "--gallery",
            str(g),
            "--quiet",
            "--events",
            f"jsonl:{tmp_path / 'e.jsonl'}",
        ]
    )
    capsys.readouterr()
    assert code == 0
    trail = run(capsys, "audit", "list", "--gallery", g)
    period = ("stream_start", "stream_stop")  # between them, each frame's stream_search
    start, stop = [r for r in trail if r["action"] in period]  # type: ignore[index]
    assert (start["action"], stop["action"]) == ("stream_start", "stream_stop")
    assert start["decision"]["source"] == stop["decision"]["source"] == str(clip)
    assert stop["decision"]["frames"] == 5 and start["time"] <= stop["time"]


def test_a_watch_starts_by_purging_who_is_due(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    import time

    g = tmp_path / "g.db"
    knn = data / "faces" / "face_recognition" / "knn_examples"
    obama = sorted((knn / "train" / "obama").iterdir())
    run(capsys, "enroll", "Barack Obama", *obama, "--consent", "door", "--gallery", g)
    run(capsys, "gallery", "withdraw", "Barack Obama", "--gallery", g)
    time.sleep(1.1)  # the consent has ended; the grace period is 0 days
    clip = data / "video" / "bbt_5frames.mp4"
    assert main(["watch", str(clip), "--gallery", str(g), "--quiet"]) == 0
    capsys.readouterr()
    trail = run(capsys, "audit", "list", "--gallery", g)
    actions = [r["action"] for r in trail]  # type: ignore[attr-defined]
    assert actions[-4:] == ["consent_withdrawn", "purge", "stream_start", "stream_stop"]
    assert run(capsys, "gallery", "list", "--gallery", g) == []


def code_of(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = main([*map(str, argv)])
    _, err = capsys.readouterr()
    return code, err


def test_the_stop_control_holds_for_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    g = tmp_path / "g.db"
    knn = data / "faces" / "face_recognition" / "knn_examples"
    probe = knn / "test" / "obama1.jpg"
    run(capsys, "enroll", "obama", *sorted((knn / "train" / "obama").iterdir()), "--consent",
        "door", "--gallery", g)  # fmt: skip
    run(capsys, "govern", "stop", "--reason", "drill", "--gallery", g)
    clip = data / "video" / "bbt_5frames.mp4"
    for argv in (
        ["identify", probe],
        ["watch", clip, "--quiet"],
        ["redact", probe, tmp_path / "out.jpg", "--mode", "except"],
    ):
        code, err = code_of(capsys, *argv, "--gallery", g)
        assert code == 6 and "stopped" in err and "drill" in err, argv
    assert not (tmp_path / "out.jpg").exists()  # refused before anything was written
    trail = run(capsys, "audit", "list", "--gallery", g)
    assert [r["action"] for r in trail][-4:] == [  # type: ignore[index]
        "stop",
        "identify_refused",
        "stream_start_refused",
        "redact_start_refused",
    ]
    run(capsys, "govern", "resume", "--gallery", g)
    ((face,),) = [r["faces"] for r in run(capsys, "identify", probe, "--gallery", g)]  # type: ignore[attr-defined]
    assert face["identity"]["name"] == "obama"


def test_enrolment_refusals_and_names_through_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    g = tmp_path / "g.db"
    knn = data / "faces" / "face_recognition" / "knn_examples"
    obama = run(capsys, "enroll", "obama", *sorted((knn / "train" / "obama").iterdir()),
                "--consent", "door", "--gallery", g)["identity"]  # type: ignore[index]  # fmt: skip
    biden = sorted((knn / "train" / "biden").iterdir())
    code, err = code_of(capsys, "enroll", "obama", *biden, "--gallery", g)
    assert code == 6 and "do not match the templates of 'obama'" in err
    shown = run(capsys, "gallery", "show", "obama", "--gallery", g)["samples"]  # type: ignore[index]
    assert len({s["image_sha256"] for s in shown}) == 2  # type: ignore[union-attr,index]
    code, err = code_of(capsys, "enroll", "\u041ebama", *biden, "--consent", "x", "--gallery", g)
    assert code == 5 and "looks the same as 'obama'" in err
    code, err = code_of(capsys, "enroll", "oba\u200bma", *biden, "--consent", "x", "--gallery", g)
    assert code == 3 and "U+200B" in err
    run(capsys, "enroll", "biden", *biden, "--consent", "door", "--gallery", g)
    code, err = code_of(capsys, "gallery", "rename", "biden", obama["id"], "--gallery", g)
    assert code == 3 and "that is an id" in err
    code, err = code_of(capsys, "gallery", "delete", obama["id"], "--yes", "--gallery", g)
    assert code == 2 and "add --id" in err  # an id given as a name erases no one
    receipt = run(capsys, "gallery", "delete", "--id", obama["id"], "--yes", "--gallery", g)
    assert receipt["name"] == "obama"  # type: ignore[index]
    trail = [r["action"] for r in run(capsys, "audit", "list", "--gallery", g)]  # type: ignore[attr-defined]
    assert trail == [
        "enroll",
        "enroll_refused",  # Biden's photos for Obama
        "enroll_refused",  # the look-alike name
        "enroll",
        "rename_refused",
        "delete",
    ]
