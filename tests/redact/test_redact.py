"""``facelens redact``: no face survives, the video keeps its shape, rate and audio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facelens import DetectConfig, Faces, Pipeline, PipelineConfig, load_image
from facelens.decode.video import VideoSource
from facelens.detect import make_detector
from facelens.redact import RedactConfig, apply_redaction, redact_image, redact_video
from facelens.redact.video import probe_video


def faces_per_frame(path: Path, backend: str, upsample: int) -> list[int]:
    det = make_detector(DetectConfig(backend=backend, upsample=upsample))
    with VideoSource(path) as src:
        return [len(det.detect(f.image)) for f in src.frames()]


# bbt_5frames.mp4: its people are small (faces of 15-20 px) and turned away; dlib's detectors
# find none of them. hamilton_clip.mp4 has a close-up of a face in profile (frames 20-35)
# that YuNet at its recognition threshold misses and dlib's CNN finds (docs/video.md).
@pytest.mark.parametrize("name", ["hamilton_clip.mp4", "bbt_5frames.mp4"])
def test_redacted_video_has_no_detectable_face_and_keeps_its_shape(
    data: Path, tmp_path: Path, name: str
) -> None:
    src = data / "video" / name
    dst = tmp_path / f"redacted-{name}"
    proc = subprocess.run(
        [sys.executable, "-m", "facelens", "redact", str(src), str(dst), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["covered_boxes"] > 0
    a, b = probe_video(src), probe_video(dst)
    assert (b.width, b.height, b.rate, b.frames) == (a.width, a.height, a.rate, a.frames)
    assert b.audio == a.audio
    # two other detectors find faces before and none after: YuNet at its recognition
    # threshold finding faces from 12 px, and dlib's CNN, which finds the profile. (A
    # detector at a low threshold fires on the blurred blobs themselves: CenterFace at 0.5
    # scores the edge of a blurred box 0.55 in one frame; nothing identifiable is there.)
    for backend, up in (("yunet", 1), ("onnx_mmod", 0)):
        before = faces_per_frame(src, backend, up)
        assert (backend == "onnx_mmod" and name == "bbt_5frames.mp4") or sum(before) > 0
        assert faces_per_frame(dst, backend, up) == [0] * len(before), backend


def test_every_face_mode_never_embeds(data: Path, tmp_path: Path) -> None:
    class NoEmbedding:
        name = "forbidden"
        model = "none"
        alignment = "dlib"
        chip_size = 150

        def load(self) -> None:
            pass

        def embed(self, chips: np.ndarray) -> None:
            raise AssertionError("the 'all' mode computed an embedding")

    pipe = Pipeline(PipelineConfig(detect=DetectConfig(upsample=1)), embedder=NoEmbedding())  # type: ignore[arg-type]
    clip = tmp_path / "one-second.mp4"  # the clip's first second, with its audio
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(data / "video" / "hamilton_clip.mp4"),
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            str(clip),
        ],
        check=True,
    )
    report = redact_video(pipe, clip, tmp_path / "o.mp4", RedactConfig())
    assert report.frames >= 29 and report.covered_boxes > 0
    img_out = tmp_path / "o.jpg"
    faces = redact_image(pipe, data / "faces" / "bbt" / "bbt1.jpg", img_out, RedactConfig())
    assert len(faces) >= 4 and len(pipe.detect(load_image(img_out))) == 0


def test_except_mode_leaves_consenting_enrolled_people_visible(
    data: Path, tmp_path: Path, hamilton_gallery: Path
) -> None:
    out = tmp_path / "spared.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "redact",
            str(data / "video" / "hamilton_clip.mp4"),
            str(out),
            "--mode",
            "except",
            "--gallery",
            str(hamilton_gallery),
            "--upsample",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["spared_tracks"]  # the two enrolled people
    assert report["tracks"] > len(report["spared_tracks"])  # strangers still covered
    # sparing enrolled people searched the gallery: the redaction is in its audit trail
    trail = subprocess.run(
        [
            *(sys.executable, "-m", "facelens", "audit", "list"),
            *("--gallery", str(hamilton_gallery), "--limit", "1000", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    clip = str(data / "video" / "hamilton_clip.mp4")
    period = [r["action"] for r in json.loads(trail.stdout) if r["decision"].get("source") == clip]
    assert period[-2:] == ["redact_start", "redact_stop"]


def test_styles_cover_the_box() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    faces = Faces(xyxy=[[30, 30, 70, 70]], score=[1])
    for style in ("blur", "pixelate", "box"):
        out = apply_redaction(img, faces, RedactConfig(style=style, margin=0))
        inside, outside = out[30:70, 30:70], out[:25]
        assert np.array_equal(outside, img[:25])  # nothing else touched
        assert inside.std() < img[30:70, 30:70].std() / 2  # detail destroyed
    with pytest.raises(ValueError, match="style must be one of"):
        RedactConfig(style="emoji")
