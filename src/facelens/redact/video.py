"""Covering faces in a video: analyse (detect and follow every frame), fill gaps, render.

In the ``except`` mode a face stays visible only on frames where it was detected and its own
track holds an enrolled, consenting identity that a sample of that very frame supports
(``facelens.stream.Follower`` with a recheck on every frame): a new track, the frames after a
cut, a sample that disagrees, and every box interpolated across a detector miss are covered.
"""

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
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from facelens.decode.video import VideoConfig, VideoSource
from facelens.errors import InputError, MissingDependencyError
from facelens.faces import Faces
from facelens.redact.image import RedactConfig, apply_redaction
from facelens.stream.follow import FollowConfig, Follower, GallerySearch
from facelens.track import TrackerConfig, TrackIdentityConfig

if TYPE_CHECKING:
    from facelens.govern import GovernedGallery
    from facelens.pipeline import Pipeline

__all__ = ["RedactReport", "VideoInfo", "probe_video", "redact_video"]

log = logging.getLogger(__name__)

FFMPEG_HINT = "apt-get install ffmpeg (Debian, Ubuntu), brew install ffmpeg (macOS)"

# Frames a track's boxes are kept before its first and after its last detection.
EDGE_FRAMES = 2

# Following for redaction: every frame is detected; a box is interpolated across at most
# ``max_missed`` frames without a detection; in the ``except`` mode every detected face good
# enough to judge is embedded on every frame, and a track's identity is confirmed only by
# that frame's own sample (a poorer face is never confirmed: it is covered).
REDACT_FOLLOW = FollowConfig(
    tracker=TrackerConfig(max_missed=4),
    identity=TrackIdentityConfig(recheck_seconds=0.0, fresh_seconds=0.0),
    min_hits=1,
    embed_poor=False,
)


@dataclass
class RedactReport:
    """What a video redaction did."""

    frames: int = 0
    width: int = 0
    height: int = 0
    rate: str = ""
    tracks: int = 0
    spared_tracks: list[int] = field(default_factory=list)
    visible_boxes: int = 0
    covered_boxes: int = 0
    filled_boxes: int = 0
    cuts: int = 0
    audio: bool = False
    embeddings: int = 0
    seconds: float = 0.0


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MissingDependencyError("ffmpeg", "writing video", FFMPEG_HINT)
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
        raise MissingDependencyError("ffprobe", "reading video", FFMPEG_HINT)
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
    pipeline: Pipeline,
    src: str | Path,
    dst: str | Path,
    config: RedactConfig,
    gallery: GovernedGallery | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    on_cover: Callable[[int, NDArray[np.float32]], None] | None = None,
) -> RedactReport:
    """Write ``src`` to ``dst`` with faces covered (same size, frame count and rate; audio
    copied).

    In the ``except`` mode (``config.mode``) ``gallery`` is searched, audited, for the
    enrolled people to spare; otherwise no identity is ever computed. ``progress(phase,
    done, total)`` is called per frame of each phase (``analyse``, ``render``);
    ``on_cover(frame, boxes)`` with the boxes covered on each frame, before the margin.

    Raises:
        MissingDependencyError: ffmpeg or ffprobe is not installed (checked first).
        InputError: ``src`` is not a readable video, or ffmpeg could not write ``dst``.
    """
    import time

    src, dst = Path(src), Path(dst)
    ffmpeg = _ffmpeg()
    info = probe_video(src)
    started = time.perf_counter()
    report = RedactReport(width=info.width, height=info.height, rate=info.rate, audio=info.audio)
    sparing = config.mode == "except" and gallery is not None
    search = None
    if sparing and gallery is not None:
        search = GallerySearch(
            gallery, pipeline.model, config.spare_threshold, pipeline.calibrations
        )
    follower = Follower(pipeline, search, REDACT_FOLLOW, best_shots=False)
    boxes, visible = _analyse(pipeline, follower, src, report, info.frames, progress)
    report.tracks = len(boxes)
    report.spared_tracks = sorted(t for t, frames in visible.items() if frames)
    per_frame, report.filled_boxes = _fill(boxes, report.frames, REDACT_FOLLOW.tracker.max_missed)
    _render(ffmpeg, src, dst, config, report, per_frame, visible, progress, on_cover)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _analyse(
    pipeline: Pipeline,
    follower: Follower,
    src: Path,
    report: RedactReport,
    total: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[dict[int, dict[int, NDArray[np.float32]]], dict[int, set[int]]]:
    """Detect and follow every frame: each track's detected boxes by frame, and the frames
    on which each track is left visible (detected, identity confirmed by that frame)."""
    boxes: dict[int, dict[int, NDArray[np.float32]]] = {}
    visible: dict[int, set[int]] = {}
    with VideoSource(src, VideoConfig(live=False)) as source:
        for n, frame in enumerate(source.frames(), start=1):
            step = follower.step(frame, pipeline.detect)
            report.embeddings += step.embedded
            report.cuts += step.cut
            assert step.faces.track_id is not None
            for i, tid in enumerate(step.faces.track_id.tolist()):
                boxes.setdefault(tid, {})[frame.index] = step.faces.xyxy[i]
                if step.confirmed[i]:
                    visible.setdefault(tid, set()).add(frame.index)
            report.frames = n
            if progress:
                progress("analyse", n, total)
    follower.close()
    return boxes, visible


def _render(
    ffmpeg: str,
    src: Path,
    dst: Path,
    config: RedactConfig,
    report: RedactReport,
    per_frame: dict[int, list[tuple[int, NDArray[np.float32]]]],
    visible: dict[int, set[int]],
    progress: Callable[[str, int, int], None] | None,
    on_cover: Callable[[int, NDArray[np.float32]], None] | None,
) -> None:
    """Decode ``src`` again and pipe each frame, its faces covered, into ffmpeg."""
    w, h = report.width, report.height
    pix = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    cmd = [
        ffmpeg,
        *("-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"),
        *("-s", f"{w}x{h}", "-framerate", report.rate, "-i", "-", "-i", str(src)),
        *("-map", "0:v:0", "-map", "1:a?", "-c:v", "libx264", "-preset", "veryfast"),
        *("-crf", "18", "-pix_fmt", pix, "-c:a", "copy", str(dst)),
    ]
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    finished = False
    try:
        with VideoSource(src, VideoConfig(live=False)) as source:
            for i, frame in enumerate(source.frames()):
                cover = []
                for tid, box in per_frame.get(frame.index, []):
                    if frame.index in visible.get(tid, ()):
                        report.visible_boxes += 1
                    else:
                        cover.append(box)
                faces = Faces(
                    xyxy=np.array(cover, np.float32).reshape(-1, 4),
                    score=np.ones(len(cover), np.float32),
                )
                report.covered_boxes += len(cover)
                if on_cover is not None:
                    on_cover(frame.index, faces.xyxy)
                proc.stdin.write(apply_redaction(frame.image, faces, config).tobytes())
                if progress:
                    progress("render", i + 1, report.frames)
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
