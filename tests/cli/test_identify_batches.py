"""``facelens identify`` over a folder prepares the next batch of photos (decode, detect,
align) in a second thread while this batch's faces are embedded and searched: the answers,
and their order, are those of each photo searched on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facelens.cli import faces_cmd
from facelens.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _answers(doc: list[dict]) -> list[tuple[str, list[float], str | None, float | None]]:  # type: ignore[type-arg]
    return [
        (
            Path(r["image"]).name,
            f["box"],
            f["identity"]["name"] if f["identity"] else None,
            f["decision_score"],
        )
        for r in doc
        for f in r["faces"]
    ]


def test_batches_prepared_ahead_answer_as_each_photo_alone(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    data: Path,
) -> None:
    knn = data / "faces" / "face_recognition" / "knn_examples"
    g = tmp_path / "g.db"
    for person in ("obama", "biden", "alex_lacamoire"):
        code, _, err = run(
            capsys, "enroll", person, knn / "train" / person, "--consent", "test", "--gallery", g
        )
        assert code == 0, err
    # photos, one unreadable among them: batches of two, so three batches are prepared
    # ahead, and the unreadable one is reported where it stands
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted((knn / "test").iterdir())
    for p in photos[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "c_broken.jpg").write_bytes(b"not an image")
    for p in photos[3:]:
        (folder / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(faces_cmd, "BATCH_IMAGES", 2)
    code, out, err = run(capsys, "identify", folder, "--gallery", g, "--json", "--progress")
    assert code != 0 and "c_broken.jpg" in err  # a partial failure, named
    together = json.loads(out)
    assert [Path(r["image"]).name for r in together] == sorted(p.name for p in photos)
    # progress counts every file, the unreadable one too, in order
    counts = [line.split()[1] for line in err.splitlines() if line.startswith("identify: ")]
    assert counts and counts[-1] == f"{len(photos) + 1}/{len(photos) + 1}"

    alone = []
    for p in photos:
        code, out, err = run(capsys, "identify", folder / p.name, "--gallery", g, "--json")
        assert code == 0, err
        alone += json.loads(out)
    a, b = _answers(together), _answers(alone)
    assert [x[:3] for x in a] == [x[:3] for x in b]
    assert all(
        (s is None and t is None) or abs(s - t) < 1e-3  # type: ignore[operator]
        for (*_, s), (*_, t) in zip(a, b, strict=True)
    )
    names = {x[2] for x in a}
    assert {"obama", "biden", "alex_lacamoire"} <= names
