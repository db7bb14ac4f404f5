"""Live views of stream jobs (``GET /v1/streams/{id}/live``): what the camera sees, for the
web UI's Live page and any client that reads multipart JPEG.

One ``LiveFeed`` per watched stream, only while someone watches: it holds the watch's one
subscription (``facelens.stream.observe``), and a thread of its own takes the newest
processed frame at most ``max_fps`` times a second, scales it to ``max_side`` and encodes it
once for every viewer. Each ``Viewer`` has one slot for frames (a newer frame replaces one
not yet sent: a slow viewer loses frames, never holds up the watch or the others) and a
short queue of ended tracks' best shots. When the last viewer leaves, the subscription is
closed and the watch stops preparing frames; when the watch ends (finished, stopped, the
operator's stop control), every viewer's answer ends.

Each part of the answer is a JPEG with an ``X-Facelens-View`` header: JSON (ASCII, so a
name in any script survives a header) saying what it is:

- ``{"kind": "frame", "index", "time", "width", "height", "faces": [{"box", "track",
  "name", "confirmed", "held"}]}``: a frame, boxes in the JPEG's pixels. ``name`` is null
  for an unknown face and for one held for two-person confirmation (``held`` true).
- ``{"kind": "track_end", "track", "name", "reason", "time"}``: a track ended, its best shot
  as the JPEG (empty when it has none).

The boxes and names travel beside the picture rather than drawn into it: the page draws
them with the browser's fonts (names in any script), lists them as text (screen readers,
search) and knows which face was clicked. Nothing here is stored: best shots live in the
feed's memory while someone watches, and in the viewer's page.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from numpy.typing import NDArray
from starlette.responses import StreamingResponse
from starlette.types import Send

from facelens.service.errors import HttpError
from facelens.stream.observe import FrameView, Subscription, TrackEnd

__all__ = ["BOUNDARY", "LiveConfig", "LiveFeed", "LiveFeeds", "LiveResponse", "Viewer"]

log = logging.getLogger(__name__)

BOUNDARY = "facelens-frame"


@dataclass(frozen=True)
class LiveConfig:
    """How live views are served (the bounds a viewer cannot raise).

    Attributes:
        max_fps: frames a second a stream's viewers get at most (the watch may process
            more; the newest is sent). 10 keeps motion readable; encoding a 640 px frame
            takes about 1 ms (``benchmarks/live_view.py``), so about 1% of a core.
        max_side: longest side of the pictures sent, pixels (larger frames are scaled down).
        quality: JPEG quality of frames (0-100).
        viewers_per_stream: viewers of one stream at once; more are answered 503.
        shots_kept: ended tracks' best shots a feed keeps for a viewer who joins later, and
            a viewer keeps unsent.
        shot_side: longest side of a best shot sent.
        recheck_s: how often a viewer's key is looked at again (a revoked key's views end).
        send_timeout_s: longest a viewer may take to take one part; past it its answer
            ends and the connection is closed (a client that stops reading frees its slot).
    """

    max_fps: float = 10.0
    max_side: int = 640
    quality: int = 75
    viewers_per_stream: int = 8
    shots_kept: int = 12
    shot_side: int = 160
    recheck_s: float = 5.0
    send_timeout_s: float = 10.0


def _part(meta: dict[str, Any], jpeg: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
        f"X-Facelens-View: {json.dumps(meta, separators=(',', ':'), ensure_ascii=True)}\r\n\r\n"
    )
    return head.encode("ascii") + jpeg + b"\r\n"


def _jpeg(rgb: NDArray[np.uint8], max_side: int, quality: int) -> tuple[bytes, float, int, int]:
    """``rgb`` as JPEG, scaled so its longest side is at most ``max_side``; the scale."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w, 1))
    if s < 1.0:
        w, h = max(1, round(w * s)), max(1, round(h * s))
        rgb = np.asarray(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA), np.uint8)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes(), s, w, h


def _clipped(box: tuple[float, ...], s: float, w: int, h: int) -> list[float]:
    """A box in the picture sent: scaled, within it (a face at the edge is boxed to it)."""
    x1, y1, x2, y2 = (v * s for v in box)
    return [round(min(max(x1, 0.0), w), 1), round(min(max(y1, 0.0), h), 1),
            round(min(max(x2, 0.0), w), 1), round(min(max(y2, 0.0), h), 1)]  # fmt: skip


def frame_part(view: FrameView, config: LiveConfig) -> bytes:
    """One processed frame as a part of the live answer (picture scaled, boxes with it)."""
    jpeg, s, w, h = _jpeg(view.image, config.max_side, config.quality)
    boxes = [_clipped(f.box, s, w, h) for f in view.faces]
    faces = [
        {
            "box": box,
            "track": f.track_id,
            "name": f.name,
            "confirmed": f.confirmed,
            "held": f.held,
        }
        for f, box in zip(view.faces, boxes, strict=True)
        if box[0] < box[2] and box[1] < box[3]  # a face wholly outside is not drawn
    ]
    meta = {"kind": "frame", "index": view.index, "time": round(view.media_time, 3),
            "width": w, "height": h, "faces": faces}  # fmt: skip
    return _part(meta, jpeg)


def end_part(end: TrackEnd, config: LiveConfig) -> bytes:
    """An ended track as a part of the live answer, its best shot the picture."""
    jpeg = b""
    if end.best_shot is not None and end.best_shot.size:
        jpeg = _jpeg(end.best_shot, config.shot_side, 90)[0]
    meta = {"kind": "track_end", "track": end.track_id, "name": end.name,
            "reason": end.reason, "time": round(end.media_time, 3)}  # fmt: skip
    return _part(meta, jpeg)


class Viewer:
    """One client's side of a feed: the newest frame not yet sent, and the best shots not
    yet sent (at most ``shots``). Filled by the feed's thread, emptied by the client's."""

    def __init__(self, shots: int) -> None:
        self._lock = threading.Lock()
        self._frame: bytes | None = None
        self._ends: deque[bytes] = deque(maxlen=shots)
        self.closed = False
        self.sent = 0
        self.dropped = 0

    def put_frame(self, part: bytes) -> None:
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = part

    def put_end(self, part: bytes) -> None:
        with self._lock:
            self._ends.append(part)

    def close(self) -> None:
        with self._lock:
            self.closed = True

    def take(self) -> list[bytes] | None:
        """What is waiting (best shots first), [] when nothing is; None once the feed has
        ended and everything was taken."""
        with self._lock:
            out = list(self._ends)
            self._ends.clear()
            if self._frame is not None:
                out.append(self._frame)
                self._frame = None
            if not out and self.closed:
                return None
            self.sent += len(out)
            return out


class LiveFeed:
    """One stream's live view while someone watches (see the module docstring).

    Args:
        stream_id: the stream job.
        session: its ``WatchSession`` (``subscribe()``).
        config: the bounds.
        on_idle: called (with this feed) when its last viewer has left or the watch ended.
    """

    def __init__(self, stream_id: str, session: Any, config: LiveConfig, on_idle: Any) -> None:
        self.stream_id, self.session, self.config = stream_id, session, config
        self._on_idle = on_idle
        self._lock = threading.Lock()
        self._viewers: list[Viewer] = []
        self._shots: deque[bytes] = deque(maxlen=config.shots_kept)
        self._sub: Subscription | None = None
        self._thread: threading.Thread | None = None
        self.frames_encoded = 0

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def join(self) -> Viewer:
        """A new viewer (the first one starts the feed).

        Raises:
            HttpError: 503 when the stream has ``viewers_per_stream`` viewers already.
        """
        with self._lock:
            if len(self._viewers) >= self.config.viewers_per_stream:
                raise HttpError(
                    503,
                    "too_many_viewers",
                    f"this stream already has {self.config.viewers_per_stream} live viewers; "
                    "try again later",
                    headers={"Retry-After": "10"},
                )
            v = Viewer(self.config.shots_kept)
            for shot in self._shots:
                v.put_end(shot)
            self._viewers.append(v)
            if self._sub is None:
                self._sub = self.session.subscribe()
                self._thread = threading.Thread(
                    target=self._run, args=(self._sub,), name=f"live {self.stream_id}", daemon=True
                )
                self._thread.start()
            return v

    def leave(self, viewer: Viewer) -> None:
        """A viewer has gone; the last one stops the feed (nothing is encoded for nobody)."""
        with self._lock:
            if viewer in self._viewers:
                self._viewers.remove(viewer)
            sub = None
            if not self._viewers:
                sub, self._sub = self._sub, None
        viewer.close()
        if sub is not None:
            sub.close()
            self._on_idle(self)

    def _run(self, sub: Subscription) -> None:
        period = 1.0 / self.config.max_fps
        try:
            while True:
                t0 = time.monotonic()
                view = sub.next_frame(timeout=0.5)
                for end in sub.ended():
                    part = end_part(end, self.config)
                    with self._lock:
                        self._shots.append(part)
                        viewers = list(self._viewers)
                    for v in viewers:
                        v.put_end(part)
                if view is None:
                    if sub.closed:  # the watch ended, or the last viewer left
                        break
                    continue
                part = frame_part(view, self.config)
                self.frames_encoded += 1
                with self._lock:
                    viewers = list(self._viewers)
                for v in viewers:
                    v.put_frame(part)
                # at most max_fps: frames the watch publishes meanwhile replace each other
                # in the subscription's slot, and the newest is taken next
                left = period - (time.monotonic() - t0)
                if left > 0 and not sub.closed:
                    time.sleep(left)
        finally:
            self._ended(sub)

    def _ended(self, sub: Subscription) -> None:
        with self._lock:
            if self._sub is not sub:  # the viewers left first: leave() closed it
                return
            self._sub = None
            viewers, self._viewers = self._viewers, []
        for v in viewers:  # the watch ended: every viewer's answer ends
            v.close()
        self._on_idle(self)


class LiveFeeds:
    """The worker's live feeds, one per stream being watched by someone."""

    def __init__(self, config: LiveConfig | None = None) -> None:
        self.config = config or LiveConfig()
        self._lock = threading.Lock()
        self._feeds: dict[str, LiveFeed] = {}

    def join(self, stream_id: str, session: Any) -> tuple[LiveFeed, Viewer]:
        """A viewer of ``stream_id``'s watch ``session``."""
        with self._lock:
            feed = self._feeds.get(stream_id)
            if feed is None or feed.session is not session:
                feed = LiveFeed(stream_id, session, self.config, self._idle)
                self._feeds[stream_id] = feed
            return feed, feed.join()

    def feed(self, stream_id: str) -> LiveFeed | None:
        return self._feeds.get(stream_id)

    def _idle(self, feed: LiveFeed) -> None:
        with self._lock:
            if self._feeds.get(feed.stream_id) is feed and feed.viewers == 0:
                del self._feeds[feed.stream_id]


class LiveResponse(StreamingResponse):
    """A streamed answer that gives up on a client taking more than ``send_timeout_s`` to
    take one part: the answer ends unfinished, so the server closes the connection, and
    the viewer's slot is freed (its generator is closed)."""

    def __init__(self, content: Any, send_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.send_timeout_s = send_timeout_s

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        body = self.body_iterator
        async for chunk in body:
            with anyio.move_on_after(self.send_timeout_s) as waited:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if waited.cancelled_caught:
                log.info("a live viewer took over %g s to take a part", self.send_timeout_s)
                await body.aclose()  # type: ignore[attr-defined]
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
