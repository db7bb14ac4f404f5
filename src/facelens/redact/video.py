"""Covering faces in a video: analyse (detect + track every frame), fill gaps, render."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelens.decode.video import VideoConfig, VideoSource
from facelens.errors import InputError, ModelError
from facelens.faces import Faces
from facelens.redact.image import RedactConfig, apply_redaction
from facelens.track import Tracker, TrackerConfig

__all__ = ["RedactReport", "VideoInfo", "probe_video", "redact_video"]

log = logging.getLogger(__name__)

# Frames a track's boxes are kept before its first and after its last detection.
EDGE_FRAMES = 2


@dataclass
class RedactReport:
    """What a video redaction did."""

    frames: int = 0
    width: int = 0
    height: int = 0
    rate: str = ""
    tracks: int = 0
    spared_tracks: list[int] = field(default_factory=list)
    covered_boxes: int = 0
    filled_boxes: int = 0
    audio: bool = False
    embeddings: int = 0


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise ModelError(
            "ffmpeg", "video output needs ffmpeg.", "Install it: apt-get install ffmpeg"
        )
    return exe


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about a video."""

    rate: str  # exact frame rate as a fraction, e.g. "2997/100"
    width: int
    height: int
    frames: int
    audio: bool


def probe_video(path: Path) -> VideoInfo:
    """Frame rate (exact, as a fraction), size, frame count and whether there is audio."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise ModelError("ffprobe", "video needs ffprobe.", "Install it: apt-get install ffmpeg")
    out = subprocess.run(
        [
            exe,
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height,r_frame_rate,nb_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise InputError(str(path), f"not a readable video ({out.stderr.strip()[:200]})")
    streams = json.loads(out.stdout).get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise InputError(str(path), "no video stream")
    return VideoInfo(
        rate=str(video["r_frame_rate"]),
        width=int(video["width"]),
        height=int(video["height"]),
        frames=int(video.get("nb_frames") or 0),
        audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def _fill(
    tracks: dict[int, dict[int, NDArray[np.float32]]], n_frames: int, max_gap: int
) -> tuple[dict[int, list[tuple[int, NDArray[np.float32]]]], int]:
    """Per frame, (track, box) for every detected box plus boxes interpolated across gaps of
    up to ``max_gap`` frames and held ``EDGE_FRAMES`` beyond each end."""
    per_frame: dict[int, list[tuple[int, NDArray[np.float32]]]] = {}
    filled = 0
    for tid, boxes in tracks.items():
        frames = sorted(boxes)
        out = dict(boxes)
        for a, b in itertools.pairwise(frames):
            if 1 < b - a <= max_gap + 1:
                for f in range(a + 1, b):
                    t = (f - a) / (b - a)
                    out[f] = (1 - t) * boxes[a] + t * boxes[b]
                    filled += 1
        for f in range(max(0, frames[0] - EDGE_FRAMES), frames[0]):
            out[f] = boxes[frames[0]]
            filled += 1
        for f in range(frames[-1] + 1, min(n_frames, frames[-1] + EDGE_FRAMES + 1)):
            out[f] = boxes[frames[-1]]
            filled += 1
        for f, box in out.items():
            per_frame.setdefault(f, []).append((tid, box))
    return per_frame, filled


def redact_video(
    pipeline: object,
    src: str | Path,
    dst: str | Path,
    config: RedactConfig,
    identify: Callable[[NDArray[np.uint8], Faces, int], None] | None = None,
    spared: Callable[[], set[int]] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RedactReport:
    """Write ``src`` to ``dst`` with faces covered (same size, frame count and rate; audio
    copied).

    ``identify(image, tracked_faces, frame)`` is called on each analysed frame and
    ``spared()`` afterwards returns the track ids to leave visible (the ``except`` mode);
    without them no identity is ever computed.
    """
    from facelens.pipeline import Pipeline

    assert isinstance(pipeline, Pipeline)
    src, dst = Path(src), Path(dst)
    info = probe_video(src)
    report = RedactReport(width=info.width, height=info.height, rate=info.rate, audio=info.audio)

    # 1. analyse
    tracker = Tracker(TrackerConfig(max_missed=4))
    boxes: dict[int, dict[int, NDArray[np.float32]]] = {}
    n = 0
    with VideoSource(src, VideoConfig(live=False)) as source:
        for frame in source.frames():
            tracked = tracker.update(pipeline.detect(frame.image), frame.index).faces
            assert tracked.track_id is not None
            for tid, box in zip(tracked.track_id.tolist(), tracked.xyxy, strict=True):
                boxes.setdefault(tid, {})[frame.index] = box
            if identify is not None and len(tracked):
                identify(frame.image, tracked, frame.index)
            n += 1
            if progress:
                progress("analyse", n, info.frames)
    report.frames = n
    report.tracks = len(boxes)
    keep = spared() if spared is not None else set()
    report.spared_tracks = sorted(keep)
    per_frame, report.filled_boxes = _fill(boxes, n, tracker.config.max_missed)

    # 2. render
    w, h = report.width, report.height
    pix = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    cmd = [
        _ffmpeg(),
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-framerate",
        report.rate,
        "-i",
        "-",
        "-i",
        str(src),
        "-map",
        "0:v:0",
        "-map",
        "1:a?",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-pix_fmt",
        pix,
        "-c:a",
        "copy",
        str(dst),
    ]
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    finished = False
    try:
        with VideoSource(src, VideoConfig(live=False)) as source:
            for i, frame in enumerate(source.frames()):
                cover = [b for tid, b in per_frame.get(frame.index, []) if tid not in keep]
                faces = Faces(
                    xyxy=np.array(cover, np.float32).reshape(-1, 4),
                    score=np.ones(len(cover), np.float32),
                )
                report.covered_boxes += len(cover)
                proc.stdin.write(apply_redaction(frame.image, faces, config).tobytes())
                if progress:
                    progress("render", i + 1, n)
        finished = True
    except BrokenPipeError:
        finished = True  # ffmpeg stopped reading: its exit status and message say why
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        if not finished:  # interrupted: no half-written output process left behind
            proc.kill()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise InputError(str(dst), f"ffmpeg could not write the video ({err.strip()[:300]})")
    return report
