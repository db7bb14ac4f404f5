"""The governed watch session the command line and the service share: live views that never
hold the watch up, and the operator's stop control ending it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facelens import Consent, InputError, Pipeline
from facelens.decode.video import VideoSource
from facelens.errors import StoppedError
from facelens.eval.clips import build_clip
from facelens.events import EventBus, MemorySink
from facelens.govern import GovernedGallery, StopControl
from facelens.stream import (
    HALTED,
    FrameView,
    Observers,
    TrackEnd,
    WatchConfig,
    WatchSession,
)


def view(i: int) -> FrameView:
    return FrameView(i, i / 30, np.zeros((2, 2, 3), np.uint8), ())


def test_a_subscriber_gets_the_newest_frame_and_never_holds_the_watch_up() -> None:
    hub = Observers(limit=2)
    slow, fast = hub.subscribe(), hub.subscribe()
    with pytest.raises(InputError, match="at most 2 subscribers"):
        hub.subscribe()
    for i in range(5):
        hub.publish_frame(view(i))
        assert fast.latest() is not None  # one that keeps up misses nothing
    got = slow.latest()
    assert got is not None and got.index == 4 and slow.dropped_frames == 4
    assert fast.dropped_frames == 0 and slow.latest() is None
    for i in range(100):  # track ends are kept, the oldest dropped beyond the bound
        hub.publish_end(TrackEnd(i, None, None, i, i / 30, "unseen"))
    ends = slow.ended()
    assert len(ends) + slow.dropped_ends == 100 and ends[-1].track_id == 99
    fast.close()
    hub.subscribe().close()  # a place came free
    waiting = threading.Thread(target=lambda: slow.next_frame(timeout=30))
    waiting.start()
    hub.close()  # the watch ended: a waiting reader is released at once
    waiting.join(5)
    assert not waiting.is_alive() and slow.next_frame(timeout=0) is None


def test_a_live_view_sees_boxes_names_and_ended_tracks(
    data: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    clip = build_clip("pan", data, tmp_path / "pan.mp4", pipeline.detect)
    consent = Consent(purpose="test", granted_by="test", granted_at="2026-01-01T00:00:00Z")
    with GovernedGallery.open(tmp_path / "g.db") as g:
        for name, photos in clip.enrol.items():
            g.enroll(pipeline, name, photos, consent)
        source = VideoSource(clip.path)
        session = WatchSession(pipeline, g, EventBus([MemorySink()]), WatchConfig())
        sub = session.subscribe()
        views: list[FrameView] = []

        def read() -> None:  # a slow client: it takes a frame now and then
            while (v := sub.next_frame(timeout=10)) is not None:
                views.append(v)
                time.sleep(0.05)

        reader = threading.Thread(target=read)
        reader.start()
        stats = session.run(source)
        reader.join(10)
        source.close()
    assert session.outcome == "finished" and not reader.is_alive()
    assert len(views) > 0 and len(views) + sub.dropped_frames == stats.frames
    assert all(not v.image.flags.writeable and v.image.shape == (360, 640, 3) for v in views)
    names = {f.name for v in views for f in v.faces if f.name and f.confirmed}
    assert names == set(clip.names.values()) - {clip.names["d"]}
    ends = sub.ended()
    assert len(ends) == stats.tracks and all(
        e.best_shot is not None and e.best_shot.shape == (150, 150, 3) for e in ends
    )


def test_the_stop_control_ends_a_watch_within_a_second(
    data: Path, pipeline: Pipeline, tmp_path: Path
) -> None:
    with GovernedGallery.open(tmp_path / "g.db") as g:
        control = StopControl(g._raw.store, g.audit)  # the operator's, on the same store
        clip = data / "video" / "hamilton_clip.mp4"
        session = WatchSession(
            pipeline, g, EventBus([MemorySink()]), WatchConfig(), check_every=0.2
        )
        threading.Timer(1.0, lambda: control.stop(g.tenant, by="test", reason="drill")).start()
        # the session opens the source itself, within the period of use, and closes it
        stats = session.run(lambda: VideoSource(clip), name="door camera")
        assert session.outcome.startswith(HALTED) and stats.frames < 275
        with pytest.raises(StoppedError, match="drill"):
            session.run(lambda: VideoSource(clip))  # a stopped tenant's watch does not start
        trail = [r for r in g.audit.records() if r.action == "stream_stop"]
        assert trail[-1].decision["ended"].startswith(HALTED)
        assert trail[-1].decision["source"] == "door camera"
        assert [r.action for r in g.audit.records()][-2:] == [
            "stream_stop",
            "stream_start_refused",
        ]
