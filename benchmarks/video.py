"""Real-time factor and frame-to-event latency of ``facelens watch``, against the
face_recognition video loop, on the Hamilton clip and a 1280x720 re-encoding of it; and the
speed of ``facelens redact`` against the clips' own duration.

    .venv/bin/python benchmarks/video.py [--write docs/benchmarks.md] [--peer-frames 60]

With ``--write``, the table goes to that file's ``video`` section and the figures of the
defaults to ``docs/video.md`` (section ``speed``).

Lin-Manuel Miranda and Alex Lacamoire are enrolled from ``video/*.png``. Each configuration
watches the whole clip as a file (every frame decoded, none skipped) and reports:

- real-time factor (RTF): media seconds / processing seconds (>= 1.0: keeps up live);
- ms per frame; frame-to-event latency (wall time from the frame being decoded to its event
  being emitted), p50 / p95 / max;
- tracks and the people named.

The peer is face_recognition's own video example (``facerec_from_video_file.py``): HOG
detection (upsample 1), an encoding per face, ``compare_faces`` against the two known people,
on every frame; it runs on the first ``--peer-frames`` frames of the same file (it is slow).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens import Consent, Pipeline
from facelens.decode.video import VideoSource
from facelens.environment import make_pipeline
from facelens.events import EventBus, MemorySink
from facelens.govern import GovernedGallery
from facelens.redact import RedactConfig, redact_video
from facelens.stream import WatchConfig, WatchSession

CACHE = ROOT / "benchmarks" / ".cache"
PEOPLE = (
    ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
    ("Alex Lacamoire", "alex-lacamoire.png"),
)


def reencode_720p(src: Path) -> Path:
    out = CACHE / "hamilton_clip_1280x720.mp4"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(src),
                "-vf",
                "scale=1280:720:flags=lanczos",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "18",
                "-c:a",
                "copy",
                str(out),
            ],
            check=True,
        )
    return out


def watch(pipe: Pipeline, gallery: GovernedGallery, clip: Path, cfg: WatchConfig) -> dict[str, Any]:
    sink = MemorySink()
    bus = EventBus([sink])
    source = VideoSource(clip)
    stats = WatchSession(pipe, gallery, bus, cfg).run(source)  # the governed watch
    source.close()
    bus.close()
    lat = np.array(stats.latencies) * 1000 if stats.latencies else np.zeros(1)
    named = sorted({e.identity for e in sink.events if e.type == "identified" and e.identity})
    return {
        "rtf": stats.realtime_factor,
        "ms_frame": 1000 * stats.processing_seconds / max(1, stats.frames),
        "frames": stats.frames,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "max": float(lat.max()),
        "tracks": stats.tracks,
        "named": named,
        "stride": stats.detect_every,
        "side": stats.detect_max_side,
        "detected": stats.detected_frames,
    }


def redact(gallery: GovernedGallery, clip: Path, mode: str) -> dict[str, Any]:
    cfg = RedactConfig(mode=mode)
    pipe = make_pipeline(detector=cfg.detector, upsample=cfg.upsample, threshold=cfg.threshold)
    out = Path(tempfile.mkdtemp()) / "redacted.mp4"
    t = time.perf_counter()
    sparing = gallery if mode == "except" else None
    if sparing is not None:  # the period of use its searches need
        sparing.stream_started(str(clip), pipe.model, kind="redact")
    rep = redact_video(pipe, clip, out, cfg, gallery=sparing)
    if sparing is not None:
        sparing.stream_stopped(str(clip), rep.frames, {}, kind="redact")
    seconds = time.perf_counter() - t
    with VideoSource(clip) as src:
        fps = src.fps
    return {"seconds": seconds, "media": rep.frames / fps, "embeddings": rep.embeddings}


def peer(clip: Path, data: Path, frames: int) -> dict[str, Any]:
    import cv2
    import face_recognition as fr

    known = []
    for _, f in PEOPLE:
        img = fr.load_image_file(str(data / "video" / f))
        known.append(fr.face_encodings(img)[0])
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    n = 0
    t0 = time.perf_counter()
    while n < frames:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        locs = fr.face_locations(rgb)
        for enc in fr.face_encodings(rgb, locs):
            fr.compare_faces(known, enc, tolerance=0.6)
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return {"rtf": (n / fps) / dt, "ms_frame": 1000 * dt / max(1, n), "frames": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path)
    ap.add_argument("--peer-frames", type=int, default=60)
    args = ap.parse_args()
    data = data_root()
    clip = data / "video" / "hamilton_clip.mp4"
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed for the 1280x720 re-encoding (scripts/system-deps.sh)")
    hd = reencode_720p(clip)
    pipe = Pipeline()
    tmp = Path(tempfile.mkdtemp())
    gallery = GovernedGallery.open(tmp / "g.db", actor="benchmark")
    consent = Consent(
        purpose="benchmark", granted_by="benchmark", granted_at="2026-01-01T00:00:00Z"
    )
    for name, f in PEOPLE:
        gallery.enroll(pipe, name, [data / "video" / f], consent)
    # warm up the sessions (first-call allocation is not the stream's cost)
    watch(pipe, gallery, clip, WatchConfig(detect_every=10))

    configs: list[tuple[str, Path, int | str, int | str | None]] = [
        ("640x360", clip, "auto", "auto"),  # the defaults
        ("1280x720", hd, "auto", "auto"),
        ("640x360", clip, 1, None),
        ("640x360", clip, 2, None),
        ("1280x720", hd, 1, None),
        ("1280x720", hd, 2, None),
        ("1280x720", hd, 3, 640),
    ]
    rows = []
    for label, path, every, side in configs:
        r = watch(pipe, gallery, path, WatchConfig(detect_every=every, detect_max_side=side))
        print(label, every, side, r, flush=True)
        auto = every == "auto"
        rows.append(
            [
                label,
                f"auto (ended at {r['stride']}; {r['detected']} of {r['frames']} frames)"
                if auto
                else every,
                f"auto (ended at {r['side'] or 'full'})" if side == "auto" else side or "full",
                f"{r['rtf']:.2f}",
                f"{r['ms_frame']:.1f}",
                f"{r['p50']:.0f} / {r['p95']:.0f} / {r['max']:.0f}",
                r["tracks"],
                ", ".join(r["named"]) or "none",
            ]
        )
    redact_rows = []
    for label, path in (("640x360", clip), ("1280x720", hd)):
        for mode in ("all", "except"):
            r = redact(gallery, path, mode)
            print("redact", label, mode, r, flush=True)
            redact_rows.append(
                [
                    label,
                    mode,
                    f"{r['seconds']:.1f}",
                    f"{r['media']:.1f}",
                    f"{r['media'] / r['seconds']:.2f}",
                    r["embeddings"],
                ]
            )
    peer_rows = []
    for label, path in (("640x360", clip), ("1280x720", hd)):
        r = peer(path, data, args.peer_frames)
        print("face_recognition", label, r, flush=True)
        peer_rows.append([label, f"{r['rtf']:.3f}", f"{r['ms_frame']:.0f}", r["frames"]])
    gallery.close()

    body = (
        "Command: `.venv/bin/python benchmarks/video.py --write docs/benchmarks.md` "
        f"({machine()}, ONNX Runtime CPU). The whole 9.2 s clip "
        "(275 frames at 29.97 fps) is watched as a file: every frame decoded, tracked and drawn "
        "into the statistics, detection on every n-th frame (stride), optionally on a copy "
        "shrunk to 640 px on its longer side; `auto` (the default) is what `facelens watch` "
        "chooses from the measured cost. RTF = media seconds / processing seconds (at "
        "least 1.0 keeps up with a live camera at that frame rate). Latency: wall time from a "
        "frame's decoding to its event's emission.\n\n"
        + md_table(
            [
                "clip",
                "detect stride",
                "detect size",
                "RTF",
                "ms / frame",
                "latency ms p50 / p95 / max",
                "tracks",
                "named",
            ],
            rows,
        )
        + "\n\nface_recognition's video example (HOG upsample 1, encode every face, compare "
        f"with the two known people) on the first {args.peer_frames} frames of the same files:"
        "\n\n" + md_table(["clip", "RTF", "ms / frame", "frames"], peer_rows)
    )
    body += (
        "\n\n`facelens redact` (CenterFace at 0.3, every frame detected, then rendered with "
        "libx264; `except` spares the two enrolled people, embedding every face good enough "
        "to judge on every frame). Speed = media seconds / processing seconds:\n\n"
        + md_table(["clip", "mode", "seconds", "media seconds", "speed", "embeddings"], redact_rows)
    )
    print(body)
    if args.write:
        write_section(args.write, "video", body)
        defaults = [r for r in rows if str(r[1]).startswith("auto")]
        speed = (
            f"Measured by `.venv/bin/python benchmarks/video.py --write docs/benchmarks.md` "
            f"({machine()}; the default recognizer `{pipe.model}`):\n\n"
            + md_table(
                ["clip", "watch (defaults): real-time factor"], [[r[0], r[3]] for r in defaults]
            )
            + "\n\n"
            + md_table(
                ["clip", "redact mode", "speed against the clip's duration"],
                [[r[0], r[1], f"{r[4]}x ({r[2]} s for {r[3]} s)"] for r in redact_rows],
            )
        )
        write_section(args.write.parent / "video.md", "speed", speed)


if __name__ == "__main__":
    main()
