"""``facelens watch`` and ``facelens redact``."""

from __future__ import annotations

import hashlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from facelens import environment as settings
from facelens.cli import output
from facelens.cli.common import GALLERY, PipelineOptions, pipeline_options, tenant_options
from facelens.detect import DETECTORS
from facelens.errors import InputError
from facelens.redact import RedactConfig

if TYPE_CHECKING:
    from facelens.stream import FrameView

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


class AutoOrInt(click.ParamType):  # type: ignore[type-arg]
    """``auto`` or an integer in [lo, hi]."""

    name = "auto|N"

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) or value == "auto":
            return value  # type: ignore[no-any-return]
        try:
            n = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither 'auto' nor a whole number", param, ctx)
        if not self.lo <= n <= self.hi:
            self.fail(f"{n} is not in {self.lo}..{self.hi}", param, ctx)
        return n


def _draw(view: FrameView) -> np.ndarray:
    """The frame with each face's box, track and name (green: confirmed by the track's own
    recent evidence; amber with a question mark: named, awaiting its recheck; red: unknown)."""
    import cv2

    out: np.ndarray = cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR)
    for f in view.faces:
        x1, y1, x2, y2 = (round(v) for v in f.box)
        if f.name and f.confirmed:
            colour, label = (113, 204, 46), f.name
        elif f.name:
            colour, label = (15, 196, 241), f"{f.name}?"
        else:
            colour, label = (60, 76, 231), "to confirm" if f.held else "unknown"
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        cv2.putText(
            out,
            f"#{f.track_id} {label}",
            (x1, max(12, y1 - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colour,
            1,
            cv2.LINE_AA,
        )
    return out


@click.command()
@click.argument("source")
@click.option(
    "--events",
    "sinks",
    multiple=True,
    metavar="SINK",
    help="Where events go (repeatable): jsonl:FILE, webhook:URL, "
    "mqtt://HOST:PORT/TOPIC. Default: JSON lines on stdout.",
)
@click.option(
    "--webhook-secret",
    default=None,
    metavar="SECRET",
    help="HMAC secret for webhook signatures (default $FACELENS_WEBHOOK_SECRET).",
)
@click.option(
    "--annotate",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="OUT.mp4",
    help="Also write the video with tracks and names drawn.",
)
@click.option(
    "--detect-every",
    type=AutoOrInt(1, 30),
    default="auto",
    show_default=True,
    help="Run the detector on every n-th frame (tracks carry faces in between), or auto: as "
    "often as this machine keeps up with the source's frame rate.",
)
@click.option(
    "--detect-max-side",
    type=AutoOrInt(64, 8192),
    default="auto",
    show_default=True,
    help="Shrink frames to this longer side for detection, or auto: full size unless keeping "
    "up needs less.",
)
@click.option(
    "--threshold",
    default=None,
    metavar="NAME|VALUE",
    help="Identification operating point (default open_set: FPIR 1%).",
)
@click.option("--max-frames", type=click.IntRange(1), default=None)
@click.option(
    "--reconnect/--no-reconnect",
    default=True,
    help="Reopen a live source that drops (with backoff).",
)
@click.option(
    "--rtsp-transport",
    type=click.Choice(["tcp", "udp"]),
    default="tcp",
    show_default=True,
    help="How RTSP sources send video: interleaved in the TCP connection, or over UDP.",
)
@click.option("--quiet", is_flag=True, help="No live summary line on stderr.")
@pipeline_options
@click.option(
    "--gallery",
    "gallery_path",
    type=GALLERY,
    default=None,
    metavar="PATH|URL",
    help="Gallery file or postgresql:// URL.",
)
@tenant_options
@click.option("--json", "as_json", is_flag=True, help="Print the final statistics as JSON.")
def watch(
    source: str,
    sinks: tuple[str, ...],
    webhook_secret: str | None,
    annotate: Path | None,
    detect_every: int | str,
    detect_max_side: int | str,
    threshold: str | None,
    max_frames: int | None,
    reconnect: bool,
    rtsp_transport: str,
    quiet: bool,
    pipeline: PipelineOptions,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Watch SOURCE (a video file, rtsp:// or http(s):// URL, or a webcam number), follow
    every face, say who it is once per track, and raise events.

    Events: track_started, identified, unknown_face, track_ended, source_lost,
    source_restored (docs/events.md).
    """
    from facelens.cli.common import open_gallery, parse_threshold, searching
    from facelens.decode.video import VideoConfig, VideoSource
    from facelens.events import EventBus, JsonlSink, parse_sink
    from facelens.stream import FollowConfig, WatchConfig, WatchSession

    secret = webhook_secret.encode() if webhook_secret else settings.webhook_secret()
    bus = EventBus([parse_sink(s, secret or None) for s in sinks] or [JsonlSink("/dev/stdout")])
    gallery = open_gallery(gallery_path, create=False)
    try:  # the default's templates, else those the gallery holds (with a notice)
        pipe = searching(pipeline.make(), gallery, pipeline.model)
    except BaseException:
        if gallery is not None:
            gallery.close()
        raise
    if gallery is None:
        output.warn("no gallery: every face will be unknown")
    cfg = WatchConfig(
        detect_every=detect_every,
        detect_max_side=detect_max_side,
        follow=FollowConfig(identify_threshold=parse_threshold(threshold) or "open_set"),
    )
    src = VideoSource(source, VideoConfig(reconnect=reconnect, rtsp_transport=rtsp_transport))
    # a gallery set to confirm=2: identifications wait as alerts for two people (the service
    # that confirms them delivers them to its sinks); this watch names no one
    session = WatchSession(pipe, gallery, bus, cfg)
    writer = _annotation_writer(annotate, src)

    def on_frame(view: FrameView) -> None:
        if writer is not None:
            writer.write(_draw(view))

    previous = signal.signal(signal.SIGTERM, lambda *_: session.stop())
    try:
        session.run(src, max_frames=max_frames, on_frame=on_frame, on_progress=_live_line(quiet))
    except KeyboardInterrupt:
        pass  # the statistics so far are still printed
    finally:
        signal.signal(signal.SIGTERM, previous)
        src.close()
        bus.close()
        if writer is not None:
            writer.release()
        if gallery is not None:
            gallery.close()
    doc = _summary(src, session)
    if not quiet:
        output.echo("", err=True)
    if as_json:
        output.echo(__import__("json").dumps(doc), err=False)
    elif not quiet:
        output.echo(" ".join(f"{k}={v}" for k, v in doc.items()), err=True)


def _live_line(quiet: bool) -> Any:
    """The watch's progress callback: one line on stderr, redrawn (counts only, no names)."""

    def show(st: Any) -> None:
        if quiet or (not sys.stderr.isatty() and not settings.progress_forced()):
            return
        fps = st.frames / st.processing_seconds if st.processing_seconds else 0.0
        ident = st.events.get("identified", 0)
        click.echo(  # the carriage return redraws the line
            f"\rframes {st.frames} ({st.skipped} skipped)  {fps:.1f} fps  "
            f"tracks {st.tracks}  identified {ident}  unknown "
            f"{st.events.get('unknown_face', 0)}   ",
            err=True,
            nl=False,
        )

    return show


def _summary(src: Any, session: Any) -> dict[str, Any]:
    """The watch's final statistics (its counts are those of the events written)."""
    stats = session.stats
    lat = sorted(stats.latencies)
    return {
        "source": src.name,  # without credentials
        "frames": stats.frames,
        "detected_frames": stats.detected_frames,
        "detect_every": stats.detect_every,
        "detect_max_side": stats.detect_max_side,
        "skipped_frames": stats.skipped,
        "tracks": stats.tracks,
        "cuts": stats.cuts,
        "embeddings": stats.embeddings,
        "events": stats.events,
        "alerts_held": stats.alerts_held,
        "media_seconds": round(stats.media_seconds, 3),
        "processing_seconds": round(stats.processing_seconds, 3),
        "realtime_factor": round(stats.realtime_factor, 3),
        "latency_p50": round(lat[len(lat) // 2], 4) if lat else None,
        "latency_max": round(lat[-1], 4) if lat else None,
        "reconnects": src.reconnects,
        "ended": session.outcome,
    }


def _annotation_writer(path: Path | None, src: Any) -> Any:
    """An OpenCV writer of the annotated video at ``path`` (None: none)."""
    if path is None:
        return None
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    return cv2.VideoWriter(
        str(path), cv2.VideoWriter.fourcc(*"mp4v"), src.fps, (src.width, src.height)
    )


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--style", type=click.Choice(["blur", "pixelate", "box"]), default="blur", show_default=True
)
@click.option(
    "--mode",
    type=click.Choice(["all", "except"]),
    default="all",
    show_default=True,
    help="all: cover every face. except: leave enrolled people with valid consent "
    "visible (needs --gallery).",
)
@click.option(
    "--spare-threshold",
    default=RedactConfig().spare_threshold,
    show_default=True,
    metavar="NAME|VALUE",
    help="With --mode except: the bar a face must pass to be left visible (an operating "
    "point: fpir=X, fmr=X, strict, ... or a similarity).",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 2),
    default=0.25,
    show_default=True,
    help="Grow each face box by this fraction on every side.",
)
@click.option(
    "--detector",
    type=click.Choice(sorted(DETECTORS)),
    default=RedactConfig().detector,
    show_default=True,
    help="Detector finding what to cover (CenterFace at a low threshold misses the fewest).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help=f"Detector score threshold (default {RedactConfig().threshold} for centerface, the "
    "detector's own otherwise).",
)
@click.option(
    "--upsample",
    type=click.IntRange(0, 3),
    default=RedactConfig().upsample,
    show_default=True,
    help="Detector upsampling (each step finds faces half as small at 4x the cost).",
)
@click.option(
    "--gallery",
    "gallery_path",
    type=GALLERY,
    default=None,
    metavar="PATH|URL",
)
@tenant_options
@click.option(
    "--progress",
    is_flag=True,
    help="Print progress lines even when stderr is not a terminal (a terminal gets a "
    "redrawn line anyway).",
)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--json", "as_json", is_flag=True)
def redact(
    src: Path,
    dst: Path,
    style: str,
    mode: str,
    spare_threshold: str,
    margin: float,
    detector: str,
    threshold: float | None,
    upsample: int,
    gallery_path: Path | str | None,
    progress: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write SRC (image or video) to DST with faces blurred, pixelated or boxed.

    Videos keep their resolution, frame count, frame rate and audio. Images are written
    upright without their metadata (EXIF, GPS).
    """
    from facelens.cli.common import make_pipeline, open_gallery, parse_threshold, searching
    from facelens.redact import RedactConfig, redact_image, redact_video

    if not src.exists():
        raise InputError(str(src), "no such file")
    if threshold is None and detector == RedactConfig().detector:
        threshold = RedactConfig().threshold
    cfg = RedactConfig(
        style=style,
        mode=mode,
        spare_threshold=parse_threshold(spare_threshold) or RedactConfig().spare_threshold,
        margin=margin,
        detector=detector,
        threshold=threshold,
        upsample=upsample,
    )
    gallery = open_gallery(gallery_path, create=False) if mode == "except" else None
    if mode == "except" and gallery is None:
        raise click.UsageError("--mode except needs --gallery with enrolled people")
    pipe = make_pipeline(detector=detector, upsample=upsample, threshold=threshold)
    if gallery is not None:  # sparing enrolled people searches the gallery: audited
        try:
            pipe = searching(pipe, gallery, None)
            gallery.stream_started(str(src), pipe.model, kind="redact")
        except BaseException:
            gallery.close()
            raise
    doc: dict[str, Any] = {}
    try:
        if src.suffix.lower() in VIDEO_SUFFIXES:
            show = None if quiet else _redact_progress(progress)
            rep = redact_video(pipe, src, dst, cfg, gallery=gallery, progress=show)
            doc = {"src": str(src), "dst": str(dst), **rep.__dict__}
        else:
            spare = _spare_image(pipe, gallery, cfg) if gallery is not None else None
            faces = redact_image(pipe, src, dst, cfg, spare=spare)
            doc = {"src": str(src), "dst": str(dst), "covered": len(faces)}
    finally:
        if gallery is not None:
            gallery.stream_stopped(
                str(src), int(doc.get("frames", 1)), {}, why=str(dst), kind="redact"
            )
        if gallery is not None:
            gallery.close()
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(" ".join(f"{k}={v}" for k, v in doc.items()))


def _spare_image(pipe: Any, gallery: Any, cfg: RedactConfig) -> Any:
    """Which faces of an image are enrolled, consenting people to leave visible: one
    audited search within the redaction's period of use (``stream_search``), decided at the
    sparing bar (``cfg.spare_threshold``)."""
    from facelens.match.decide import decide_identity

    def spare(image: np.ndarray, faces: Any) -> list[bool]:
        emb = pipe.embed(image, faces)
        if not len(emb):
            return []
        rule = gallery.rule(emb.model, cfg.spare_threshold, pipe.calibrations)
        digest = hashlib.sha256(np.ascontiguousarray(image).data).hexdigest()
        found = gallery.stream_search(emb, rule.depth, probe_sha256=digest)
        return [decide_identity(c, rule, rule.depth).identity is not None for c in found]

    return spare


def _redact_progress(lines: bool) -> Any:
    """A progress callback: a line redrawn on a terminal, or (``--progress``) a line a
    second elsewhere: the phase, frames done and frames per second."""
    if not lines and not output.stderr_is_tty():
        return None
    began: dict[str, float] = {}
    last = [0.0]

    def show(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        began.setdefault(phase, now)
        if done != total and now - last[0] < (1.0 if lines else 0.2):
            return
        last[0] = now
        rate = done / max(now - began[phase], 1e-6)
        text = f"{phase} {done}/{total or '?'} frames ({rate:.1f} frames/s)"
        if lines:
            output.echo(text, err=True)
        else:  # the carriage return redraws the line
            click.echo(f"\r{text}   ", err=True, nl=done == total)

    return show
