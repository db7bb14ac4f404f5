"""``facelens watch``: identities, tracks and events on the Hamilton clip, from a file and over
RTSP, with a source that drops and comes back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from facelens import Gallery, Pipeline
from facelens.decode.video import VideoConfig, VideoSource
from facelens.events import EventBus, MemorySink
from facelens.stream import WatchConfig, Watcher


def read_events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_watch_events_and_summary_agree(tmp_path: Path, clip: Path, hamilton_gallery: Path) -> None:
    out = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "watch",
            str(clip),
            "--gallery",
            str(hamilton_gallery),
            "--events",
            f"jsonl:{out}",
            "--json",
            "--annotate",
            str(tmp_path / "annotated.mp4"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    # default options: the stride and the detection size follow the measured cost
    assert 1 <= stats["detect_every"] <= 6 and stats["detected_frames"] >= stats["frames"] / 6
    events = read_events(out)
    # the summary counts exactly what was written
    assert stats["events"] == dict(Counter(str(e["type"]) for e in events))
    assert stats["tracks"] == sum(1 for e in events if e["type"] == "track_started")
    assert stats["cuts"] == 3 and stats["ended"] == "finished"
    for e in events:  # every event says where in the video it happened
        assert {"type", "time", "frame", "track_id", "identity", "media_time"} <= set(e)
        assert e["frame"] is not None and e["media_time"] is not None, e
    # Lin-Manuel Miranda sings from the first frame, his face about 45 px wide
    first = next(e for e in events if e["type"] == "identified")
    assert first["identity"] == "Lin-Manuel Miranda" and first["frame"] <= 12  # type: ignore[operator]
    started = [e["track_id"] for e in events if e["type"] == "track_started"]
    ended = [e["track_id"] for e in events if e["type"] == "track_ended"]
    assert sorted(started) == sorted(ended) and len(set(started)) == len(started)
    for e in (e for e in events if e["type"] == "track_ended"):
        assert e["dwell"] >= 0 and e["best_shot"]["size"] == [150, 150]  # type: ignore[index]
        assert e["reason"] in ("cut", "unseen", "displaced", "split", "closed")
    # the last tracks end with the clip: on its last frame, not on no frame at all
    assert max(e["frame"] for e in events if e["type"] == "track_ended") == stats["frames"] - 1  # type: ignore[type-var]
    assert (tmp_path / "annotated.mp4").stat().st_size > 10_000


def test_rtsp_stream_drop_and_restore(rtsp, hamilton_gallery: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    sink = MemorySink()
    # a camera URL with credentials, as most are: they are used to connect, never shown
    url = rtsp.url.replace("rtsp://", "rtsp://admin:s3cret@")
    source = VideoSource(
        url,
        VideoConfig(
            backoff_initial=0.3,
            backoff_max=1.0,
            read_timeout=2.0,
            open_timeout=3.0,
        ),
    )
    gallery = Gallery.open(hamilton_gallery)
    pipe = Pipeline()
    watcher = Watcher(pipe, gallery, EventBus([sink]), WatchConfig(detect_every=2))
    gallery.stream_started(source.name, pipe.model)  # the period of use its searches need

    def chaos() -> None:
        time.sleep(12)
        rtsp.kill()  # the camera goes away...
        time.sleep(3)
        rtsp.start()  # ...and comes back
        time.sleep(12)
        watcher.stop()

    threading.Thread(target=chaos, daemon=True).start()
    stats = watcher.run(source)
    source.close()
    gallery.stream_stopped(source.name, stats.frames, stats.events)
    gallery.close()
    kinds = [e.type for e in sink.events]
    assert "source_lost" in kinds and "source_restored" in kinds
    lost, restored = kinds.index("source_lost"), kinds.index("source_restored")
    assert lost < restored
    assert any(e.frame is not None for e in sink.events[restored:])  # processing resumed
    assert source.reconnects >= 1
    names = {e.identity for e in sink.events if e.type == "identified"}
    assert "Lin-Manuel Miranda" in names
    # live: frames it cannot keep up with are skipped, never queued; it read the stream in
    # real time (about 24 s of 30 fps video around the outage) and processed a share of it
    assert stats.frames >= 30 and stats.frames + stats.skipped > 400
    assert source.name == rtsp.url.replace("rtsp://", "rtsp://***@")
    assert all("s3cret" not in json.dumps(e.to_dict()) for e in sink.events)
    assert all(e.source == source.name for e in sink.events)
    assert "s3cret" not in caplog.text
