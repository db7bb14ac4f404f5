"""Who a video's tracks name, before and after the stream stage (issue 27), in one run.

    .venv/bin/python benchmarks/video_identity.py [--write docs/video.md] [--before REV]

*Before* is the tracker as it was at ``--before`` (default: main before issue 27): its
``src`` is taken from git into a temporary folder and run in a subprocess
(``benchmarks/_video_before.py``). *After* is this checkout. Both use the default pipeline
and the same galleries, clips and labels:

- the Hamilton clip, labelled by hand (``tests/video/labels/hamilton_clip.json``), watched
  with Lin-Manuel Miranda, Alex Lacamoire and Barack Obama enrolled, and redacted in the
  ``except`` mode with only Lin-Manuel enrolled and with Lin-Manuel and Alex;
- the synthetic clips (``facelens.eval.clips``: a hard cut, a face swapped in place, two
  people crossing, a face leaving and coming back, a slow pan), built from LFW photos and
  watched with their three people enrolled.

Metrics (``facelens.eval.tracking``): face-frames shown with a wrong name, identity switches,
tracks that went from one person to another, IDF1; for redaction, the share of labelled
face-frames of people not spared that were covered, and of the spared people's face-frames
that stayed visible. ``--shots`` prints the cut measures of every frame pair (what
``facelens.stream.shots`` was set from); ``--appearance`` the template similarities within
and across people on the labelled frames (what the appearance gate was set from).
``--close-up`` prints the default recognizer's scores of Alex Lacamoire's labelled faces
against each enrolment photo (why his profile close-up is not spared, docs/video.md).
``--speed`` watches the Hamilton clip and its 1280x720 re-encoding with the defaults, before
and after in turn, three times each, and writes the real-time factors (section
``identity-speed``): on a machine shared with other work, the ratio of the two is what
holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens import Consent, Pipeline
from facelens.decode.video import VideoSource
from facelens.eval.clips import CLIPS, build_clip
from facelens.eval.tracking import (
    ClipLabels,
    FaceOut,
    read_clip_labels,
    score_redaction,
    score_tracking,
)
from facelens.events import EventBus, MemorySink
from facelens.govern import GovernedGallery
from facelens.redact import RedactConfig, redact_video
from facelens.stream import ShotDetector, WatchConfig, WatchSession

# main before issue 27 (the stream stage)
BEFORE = "29e8f61"
LABELS = ROOT / "tests" / "video" / "labels" / "hamilton_clip.json"
MARGIN = RedactConfig().margin


def people(data: Path) -> dict[str, tuple[str, list[Path]]]:
    fr = data / "faces" / "face_recognition"
    return {
        "lin-manuel-miranda": ("Lin-Manuel Miranda", [data / "video" / "lin-manuel-miranda.png"]),
        "alex-lacamoire": ("Alex Lacamoire", [data / "video" / "alex-lacamoire.png"]),
        "obama": ("Barack Obama", [fr / "obama.jpg", fr / "obama2.jpg"]),
    }


# -- runs ---------------------------------------------------------------------------------


def governed(enrol: dict[str, list[Path]], pipe: Pipeline) -> GovernedGallery:
    g = GovernedGallery.open(Path(tempfile.mkdtemp()) / "g.db", actor="benchmark")
    consent = Consent(
        purpose="benchmark", granted_by="benchmark", granted_at="2026-01-01T00:00:00Z"
    )
    for name, photos in enrol.items():
        g.enroll(pipe, name, photos, consent)
    return g


def after_watch(clip: Path, enrol: dict[str, list[Path]]) -> dict[str, Any]:
    pipe = Pipeline()
    g = governed(enrol, pipe)
    shown: dict[int, list[FaceOut]] = {}
    sink = MemorySink()
    source = VideoSource(clip)
    stats = WatchSession(pipe, g, EventBus([sink]), WatchConfig()).run(
        source,
        on_frame=lambda v: shown.__setitem__(
            v.index, [FaceOut(f.box, f.track_id, f.name) for f in v.faces]
        ),
    )
    source.close()
    g.close()
    return {"shown": shown, "tracks": stats.tracks, "seconds": stats.processing_seconds}


def after_redact(clip: Path, enrol: dict[str, list[Path]]) -> dict[str, Any]:
    from facelens.environment import make_pipeline

    cfg = RedactConfig(mode="except")
    pipe = make_pipeline(detector=cfg.detector, upsample=cfg.upsample, threshold=cfg.threshold)
    g = governed(enrol, make_pipeline())
    covers: dict[int, list[list[float]]] = {}
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    t = time.perf_counter()
    g.stream_started(str(clip), pipe.model, kind="redact")  # the period its searches need
    rep = redact_video(
        pipe, clip, out, cfg, gallery=g, on_cover=lambda f, b: covers.__setitem__(f, b.tolist())
    )
    g.stream_stopped(str(clip), rep.frames, {}, kind="redact")
    seconds = time.perf_counter() - t
    g.close()
    return {"covers": covers, "seconds": seconds}


def old_source(rev: str) -> Path:
    """The ``src`` folder of ``rev``, extracted from git."""
    folder = Path(tempfile.mkdtemp(prefix="facelens-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    tar = folder / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(folder, filter="data")
    return folder / "src"


def before(src: Path, kind: str, clip: Path, enrol: dict[str, list[Path]]) -> dict[str, Any]:
    job = Path(tempfile.mkdtemp()) / "job.json"
    job.write_text(
        json.dumps(
            {
                "kind": kind,
                "clip": str(clip),
                "enrol": {k: [str(p) for p in v] for k, v in enrol.items()},
            }
        )
    )
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "_video_before.py"), str(job)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    doc = json.loads(out)
    if kind == "watch":
        doc["shown"] = {
            int(f): [FaceOut((r[0], r[1], r[2], r[3]), int(r[4]), r[5]) for r in rows]
            for f, rows in doc["shown"].items()
        }
    else:
        doc["covers"] = {int(f): b for f, b in doc["covers"].items()}
    return doc


# -- scoring ------------------------------------------------------------------------------


def grown(boxes: list[list[float]]) -> list[list[float]]:
    out = []
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
        out.append([x1 - mx, y1 - my, x2 + mx, y2 + my])
    return out


def tracking_row(name: str, labels: ClipLabels, names: dict[str, str], b: Any, a: Any) -> list[Any]:
    sb, sa = score_tracking(labels, b["shown"], names), score_tracking(labels, a["shown"], names)
    print(name, "before", sb, "\nafter", sa, flush=True)
    return [
        name,
        f"{sb.wrong_names} / {sa.wrong_names}",
        f"{sb.named_right} / {sa.named_right} of {sa.enrolled}",
        f"{sb.switches} / {sa.switches}",
        f"{sb.mixed_tracks} / {sa.mixed_tracks}",
        f"{sb.idf1:.3f} / {sa.idf1:.3f}",
        f"{b['seconds']:.1f} / {a['seconds']:.1f}",
    ]


def redaction_row(name: str, labels: ClipLabels, spared: set[str], b: Any, a: Any) -> list[Any]:
    def score(run: Any) -> Any:
        return score_redaction(labels, {f: grown(x) for f, x in run["covers"].items()}, spared)

    sb, sa = score(b), score(a)
    print(name, "before", sb, "\nafter", sa, flush=True)
    missed = sorted({w for _, w in sa.uncovered})
    return [
        name,
        f"{sb.covered_share:.1%} / {sa.covered_share:.1%} of {sa.others}",
        f"{sb.visible_share:.1%} / {sa.visible_share:.1%} of {sa.spared}",
        ", ".join(f"{w} ({sum(1 for _, x in sa.uncovered if x == w)})" for w in missed) or "none",
        f"{b['seconds']:.0f} / {a['seconds']:.0f}",
    ]


# -- measures the settings came from ------------------------------------------------------


def shot_measures(clip: Path) -> None:
    d = ShotDetector()
    with VideoSource(clip) as src:
        rows = [(f.index, *d.measure(f.image)) for f in src.frames()]
    rows = rows[1:]
    for i, h, p in sorted(rows, key=lambda r: -r[1])[:8]:
        print(f"frame {i}: histogram distance {h:.3f}, pixel change {p:.3f}")


def appearance(data: Path) -> None:
    from facelens.eval.boxes import pair_boxes
    from facelens.match.thresholds import threshold_for_fmr

    pipe = Pipeline()
    labels = read_clip_labels(LABELS)
    shots = labels.shots
    samples = []
    with VideoSource(data / "video" / "hamilton_clip.mp4") as src:
        for f in src.frames():
            if f.index not in labels.frames:
                continue
            faces = pipe.align(f.image, pipe.detect(f.image))
            if not len(faces):
                continue
            emb = pipe.embed(f.image, faces).vectors
            truth = labels.frames[f.index]
            for i, j in pair_boxes(faces.xyxy, [x.box for x in truth], 0.3):
                if not truth[j].hard:
                    shot = next(k for k, (a, b) in enumerate(shots) if a <= f.index <= b)
                    samples.append((shot, f.index, truth[j].who, emb[i]))
    same = [
        float(e1 @ e2)
        for k, (s1, f1, w1, e1) in enumerate(samples)
        for s2, f2, w2, e2 in samples[k + 1 :]
        if s1 == s2 and w1 == w2 and abs(f1 - f2) <= 15
    ]
    print(f"model {pipe.model}: gate fmr=1e-2 -> {threshold_for_fmr(pipe.model, 1e-2):.4f}")
    print(f"same person, same shot, <= 15 frames apart: n={len(same)} min={min(same):.4f}")


def close_up(data: Path, who: str = "alex-lacamoire", last_frame: int = 90) -> None:
    """Each labelled face of ``who`` in the clip's first ``last_frame`` frames (Alex
    Lacamoire's small frontal face, then his profile close-up) scored by the default
    recognizer against every cast member's enrolment photo: whether a recognizer can tell
    the close-up from another person's face, which decides whether redaction may spare it."""
    from facelens.decode import decode_image
    from facelens.eval.boxes import pair_boxes
    from facelens.match.thresholds import threshold_for_fmr

    pipe = Pipeline()
    refs = {}
    for key, (_, photos) in people(data).items():
        vs = []
        for photo in photos:
            img = decode_image(photo)[0]
            faces = pipe.align(img, pipe.detect_single(img))
            if len(faces):
                vs.append(pipe.embed(img, faces).vectors[int(np.argmax(faces.width))])
        refs[key] = vs
    print(f"model {pipe.model}: FMR 1% threshold {threshold_for_fmr(pipe.model, 1e-2):.4f}")
    labels = read_clip_labels(LABELS)
    with VideoSource(data / "video" / "hamilton_clip.mp4") as src:
        for f in src.frames():
            if f.index > last_frame:
                break
            truth = labels.frames.get(f.index)
            if not truth:
                continue
            faces = pipe.align(f.image, pipe.detect(f.image))
            if not len(faces):
                continue
            emb = pipe.embed(f.image, faces).vectors
            for i, j in pair_boxes(faces.xyxy, [x.box for x in truth], 0.3):
                if truth[j].who == who:
                    scores = {
                        k: round(max(float(emb[i] @ r) for r in v), 3) for k, v in refs.items()
                    }
                    print(f"frame {f.index}: face {faces.width[i]:.0f} px wide, scores {scores}")


def speed(old: Path, data: Path, write: Path | None) -> None:
    from video import reencode_720p

    cast = people(data)
    two = {cast[k][0]: cast[k][1] for k in ("lin-manuel-miranda", "alex-lacamoire")}
    clips = (("640x360", data / "video" / "hamilton_clip.mp4"),)
    clips += (("1280x720", reencode_720p(data / "video" / "hamilton_clip.mp4")),)
    rows = []
    for label, clip in clips:
        with VideoSource(clip) as src:
            fps = src.fps
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(3):
            runs["before"].append(before(old, "watch", clip, two)["seconds"])
            runs["after"].append(after_watch(clip, two)["seconds"])
        with VideoSource(clip) as src:
            media = sum(1 for _ in src.frames()) / fps
        b, a = (float(np.median(runs[k])) for k in ("before", "after"))
        print(label, runs, flush=True)
        rows.append([label, f"{media / b:.2f}", f"{media / a:.2f}", f"{b / a:.2f}"])
    body = (
        "Command: `.venv/bin/python benchmarks/video_identity.py --speed --write docs/video.md` "
        f"({machine()}, default pipeline, a machine shared with other work). `facelens watch` "
        "with its defaults, two people enrolled, the whole clip as a file; before and after "
        "in turn, median of three each:\n\n"
        + md_table(["clip", "RTF before", "RTF after", "after / before speed"], rows)
    )
    print(body)
    if write:
        write_section(write, "identity-speed", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path)
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' tracker")
    ap.add_argument("--shots", action="store_true")
    ap.add_argument("--appearance", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--close-up", action="store_true", help="Alex Lacamoire's scores per frame")
    args = ap.parse_args()
    data = data_root()
    hamilton = data / "video" / "hamilton_clip.mp4"
    if args.shots:
        shot_measures(hamilton)
        return
    if args.appearance:
        appearance(data)
        return
    if args.close_up:
        close_up(data)
        return
    old = old_source(args.before)
    if args.speed:
        speed(old, data, args.write)
        return
    cast = people(data)
    labels = read_clip_labels(LABELS)
    three = {cast[k][0]: cast[k][1] for k in ("lin-manuel-miranda", "alex-lacamoire", "obama")}
    names = {k: cast[k][0] for k in cast}
    watch_rows = [
        tracking_row(
            "Hamilton (3 enrolled)",
            labels,
            names,
            before(old, "watch", hamilton, three),
            after_watch(hamilton, three),
        )
    ]
    work = Path(tempfile.mkdtemp())
    pipe = Pipeline()
    for name in CLIPS:
        clip = build_clip(name, data, work / f"{name}.mp4", pipe.detect)
        watch_rows.append(
            tracking_row(
                f"synthetic: {name}",
                clip.labels,
                clip.names,
                before(old, "watch", clip.path, clip.enrol),
                after_watch(clip.path, clip.enrol),
            )
        )
    redact_rows = []
    for spared in (("lin-manuel-miranda",), ("lin-manuel-miranda", "alex-lacamoire")):
        enrol = {cast[k][0]: cast[k][1] for k in spared}
        label = "Hamilton, spare " + " and ".join(cast[k][0] for k in spared)
        redact_rows.append(
            redaction_row(
                label,
                labels,
                set(spared),
                before(old, "redact", hamilton, enrol),
                after_redact(hamilton, enrol),
            )
        )
    body = (
        f"Command: `.venv/bin/python benchmarks/video_identity.py --write docs/video.md` "
        f"({machine()}, default pipeline `{pipe.model}`, a machine shared with other work: "
        f"seconds are only comparable within a row). Each cell: before (`{args.before}`, main "
        "before the stream stage) / after (this release).\n\n"
        + md_table(
            [
                "clip (watch)",
                "face-frames with a wrong name",
                "enrolled people's face-frames named right",
                "identity switches",
                "tracks carried to another person",
                "IDF1",
                "seconds",
            ],
            watch_rows,
        )
        + "\n\n"
        + md_table(
            [
                "redact --mode except",
                "others covered",
                "spared people visible",
                "left uncovered after (face-frames)",
                "seconds",
            ],
            redact_rows,
        )
    )
    print(body)
    if args.write:
        write_section(args.write, "identity", body)


if __name__ == "__main__":
    main()
