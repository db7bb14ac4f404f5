"""``facelens thermal decode|screen`` on a real FLIR photo: readings, refusals, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelens.cli.main import EXIT_INPUT, EXIT_POLICY, main


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def lab_npy(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The lab photo decoded to degrees C, with an 8x8 px 35 C reference painted in a corner
    (the photo has no blackbody)."""
    src = next((data / "thermal" / "flir_radiometric").glob("09 - *.jpg"))
    out = tmp_path / "lab.npy"
    code, stdout, err = run(capsys, "thermal", "decode", src, "--out", out, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["shape"] == [180, 180] and 15 < doc["min_c"] < doc["max_c"] < 40
    c = np.load(out)
    c[2:10, 2:10] = 35.0
    np.save(out, c)
    return out


SCREEN = (
    "--blackbody",
    "2,2,10,10",
    "--blackbody-temp",
    "35",
    "--ambient",
    "21",
    "--humidity",
    "45",
)


def test_one_person_in_the_region_gets_a_reading(
    lab_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "screening.jsonl"
    code, out, err = run(
        capsys,
        "thermal",
        "screen",
        lab_npy,
        *SCREEN,
        "--region",
        "138,20,172,70",
        "--events",
        f"jsonl:{events}",
        "--json",
    )
    assert code == 0, err
    [r] = json.loads(out)
    assert r["outcome"] == "clear" and 30 < r["estimate_c"] < 38
    assert r["site"] == "face_hottest_region" and r["notes"]
    [ev] = [json.loads(line) for line in events.read_text().splitlines()]
    assert ev["type"] == "screening" and ev["identity"] is None
    assert ev["outcome"] == "clear" and ev["estimate_c"] == r["estimate_c"]


def test_the_whole_room_is_refused_with_exit_6(
    lab_npy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "thermal", "screen", lab_npy, *SCREEN)
    assert code == EXIT_POLICY
    assert "REFUSED" in out and "one person at a time" in out
    assert "refused a reading" in err


def test_no_room_conditions_no_reading(lab_npy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "thermal",
        "screen",
        lab_npy,
        "--blackbody",
        "2,2,10,10",
        "--blackbody-temp",
        "35",
        "--region",
        "138,20,172,70",
        "--json",
    )
    assert code == EXIT_POLICY
    assert "ambient_not_reported" in json.loads(out)[0]["refused"]


def test_a_file_that_does_not_decode_is_an_input_error(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = next((data / "thermal" / "flir_radiometric").glob("07 - *.jpg"))
    code, _, err = run(capsys, "thermal", "screen", bad, *SCREEN)
    assert code == EXIT_INPUT and "07 - " in err


def test_a_registered_visible_camera_gives_the_eyes(
    lab_npy: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The visible photo's face, mapped into the thermal frame by the registration, is read at
    its inner canthi (the landmarks come across), and the registration's fit is reported."""
    photo = data / "lfw" / "images" / "George_W_Bush" / "George_W_Bush_0001.jpg"
    reg = tmp_path / "registration.json"
    corners = [[0, 0], [250, 0], [250, 250], [0, 250]]
    # the 250 px photo onto the person standing at x 120-175, y 0-90 of the thermal frame
    reg.write_text(
        json.dumps({"visible": corners, "thermal": [[120, 0], [175, 0], [175, 90], [120, 90]]})
    )
    args = ("thermal", "screen", lab_npy, *SCREEN, "--region", "120,0,180,90")
    code, out, err = run(capsys, *args, "--visible", photo, "--registration", reg, "--json")
    assert code == 0, err
    [r] = json.loads(out)
    assert r["site"] == "inner_canthus" and not r["notes"]
    assert r["registration_pairs"] == 4 and r["registration_rms_px"] < 0.01
    code, _, err = run(capsys, *args, "--visible", photo)
    assert code == 2 and "--visible and --registration go together" in err
