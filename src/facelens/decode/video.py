"""Video: files (mp4, mkv, avi, mov, ...), RTSP, HTTP(S) MJPEG and webcams -> RGB frames.

Files are read frame by frame, none skipped. Live sources (URLs, device indices) are read by a
background thread that keeps only the newest frame: when processing falls behind, older frames
are skipped (and counted) instead of queueing without bound, so memory stays flat however long
the stream runs. A live source that drops is reopened with exponential backoff; the outage is
reported as a ``SourceStatus("lost")`` then ``SourceStatus("restored")`` in the frame stream.
OpenCV's BGR is converted to RGB here, once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError
from facelens.urls import redact_credentials

__all__ = ["Frame", "SourceStatus", "VideoConfig", "VideoSource", "is_live"]

log = logging.getLogger(__name__)

LIVE_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "tcp://",
    "srt://",
)


def is_live(source: str | int | Path) -> bool:
    """URLs and device indices are live; paths are files."""
    if isinstance(source, int):
        return True
    s = str(source)
    return s.isdigit() or s.lower().startswith(LIVE_SCHEMES)


@dataclass(frozen=True)
class VideoConfig:
    """How a video source is read.

    Attributes:
        live: treat as live (newest frame only, reconnect) or as a file; None decides from the
            source (``is_live``).
        reconnect: reopen a live source that drops.
        backoff_initial: first wait before reopening, seconds; doubles on each failure...
        backoff_max: ...up to this.
        give_up_after: stop after an outage this long (seconds); None: never.
        open_timeout: seconds allowed to open a stream.
        read_timeout: seconds without a frame before a live stream counts as dropped.
        rtsp_transport: ``"tcp"`` (RTP interleaved in the RTSP connection: the default, it
            passes firewalls and NAT) or ``"udp"`` (what some cameras and relays only speak).
    """

    live: bool | None = None
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    give_up_after: float | None = None
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    rtsp_transport: str = "tcp"

    def __post_init__(self) -> None:
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport must be 'tcp' or 'udp', got {self.rtsp_transport!r}")


_CV_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame.

    Attributes:
        image: RGB uint8 (H, W, 3).
        index: frame number in the source (live: counting every frame read, skipped ones too).
        media_time: seconds into the stream.
        wall_time: ``time.time()`` when it was decoded (for frame-to-event latency).
    """

    image: NDArray[np.uint8]
    index: int
    media_time: float
    wall_time: float


@dataclass(frozen=True)
class SourceStatus:
    """A live source dropped (``lost``) or came back (``restored``, with the gap)."""

    kind: str
    wall_time: float
    last_index: int
    gap: float = 0.0
    reason: str = ""


class VideoSource:
    """Iterate over a video's frames (and, for live sources, status changes).

    Example:
        >>> is_live("rtsp://camera/stream"), is_live("clip.mp4"), is_live(0)
        (True, False, True)
    """

    def __init__(self, source: str | int | Path, config: VideoConfig | None = None) -> None:
        self.source = source
        self.config = config or VideoConfig()
        self.live = is_live(source) if self.config.live is None else self.config.live
        self.name = redact_credentials(source)  # shown; self.source is used to connect
        self.frames_read = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self._cap: Any = None
        self._stop = threading.Event()
        self._cap_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self.fps, self.width, self.height = self._open_first()

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> Any:
        import cv2

        src: Any = int(str(self.source)) if str(self.source).isdigit() else str(self.source)
        if isinstance(src, int):
            cap = cv2.VideoCapture(src)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.config.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.config.read_timeout * 1000),
            ]
            # OpenCV reads FFmpeg's options from the environment when it opens a capture
            with _OPEN_LOCK:
                before = os.environ.get(_CV_OPTIONS)
                os.environ[_CV_OPTIONS] = f"rtsp_transport;{self.config.rtsp_transport}"
                try:
                    cap = cv2.VideoCapture(src, cv2.CAP_FFMPEG, params)
                finally:
                    if before is None:
                        os.environ.pop(_CV_OPTIONS, None)
                    else:
                        os.environ[_CV_OPTIONS] = before
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _open_first(self) -> tuple[float, int, int]:
        if not self.live:
            p = Path(str(self.source))
            if not p.is_file():
                raise InputError(self.name, "no such video file")
        self._cap = self._open()
        if self._cap is None:
            raise InputError(
                self.name,
                "cannot open the video (not a video, unsupported "
                "codec, or the stream does not answer)",
            )
        import cv2

        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (fps if 0 < fps < 1000 else 25.0), w, h

    def close(self) -> None:
        """Stop reading and release the source. A live reader thread is stopped first: the
        capture is never released while another thread is inside ``read`` (OpenCV crashes)."""
        self._stop.set()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=self.config.read_timeout + self.config.open_timeout + 2)
            if reader.is_alive():
                return  # still blocked in the stream: it releases the capture when it returns
        self._release()

    def _release(self) -> None:
        with self._cap_lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _rgb(bgr: NDArray[np.uint8]) -> NDArray[np.uint8]:
        import cv2

        if bgr.ndim == 2:
            return np.ascontiguousarray(np.repeat(bgr[:, :, None], 3, axis=2))
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    # -- reading --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame | SourceStatus]:
        return self._live() if self.live else self._file()

    def frames(self) -> Iterator[Frame]:
        """The frames of a file, in order (a live source has status items too: iterate it)."""
        if self.live:
            raise ValueError("frames() is for files; iterate a live source instead")
        return self._file()

    def _file(self) -> Iterator[Frame]:
        import cv2

        index = 0
        while not self._stop.is_set() and self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok:
                return
            ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            t = ms / 1000 if ms and ms > 0 else index / self.fps
            self.frames_read += 1
            yield Frame(self._rgb(bgr), index, t, time.time())
            index += 1

    def _live(self) -> Iterator[Frame | SourceStatus]:
        slot: list[Frame | SourceStatus] = []  # newest frame, then any status changes
        cond = threading.Condition()
        done = threading.Event()

        def reader() -> None:
            index = 0
            start = time.time()
            while not self._stop.is_set():
                cap = self._cap
                ok, bgr = cap.read() if cap is not None else (False, None)
                if ok and bgr is not None:
                    frame = Frame(self._rgb(bgr), index, time.time() - start, time.time())
                    index += 1
                    self.frames_read += 1
                    with cond:
                        if slot and isinstance(slot[-1], Frame):
                            slot.pop()
                            self.frames_skipped += 1
                        slot.append(frame)
                        cond.notify()
                    continue
                lost_at = time.time()
                with cond:
                    slot.append(
                        SourceStatus("lost", lost_at, index - 1, reason="no frame from the source")
                    )
                    cond.notify()
                self._release()
                if not self.config.reconnect:
                    break
                wait = self.config.backoff_initial
                while not self._stop.is_set():
                    if (
                        self.config.give_up_after is not None
                        and time.time() - lost_at > self.config.give_up_after
                    ):
                        done.set()
                        with cond:
                            cond.notify()
                        return
                    self._stop.wait(wait)
                    cap = self._open()
                    if cap is not None and self._stop.is_set():
                        cap.release()
                        break
                    if cap is not None:
                        with self._cap_lock:
                            self._cap = cap
                        self.reconnects += 1
                        with cond:
                            slot.append(
                                SourceStatus(
                                    "restored", time.time(), index - 1, gap=time.time() - lost_at
                                )
                            )
                            cond.notify()
                        break
                    wait = min(wait * 2, self.config.backoff_max)
            done.set()
            with cond:
                cond.notify()
            if self._stop.is_set():
                self._release()

        thread = threading.Thread(target=reader, name=f"video {self.name}", daemon=True)
        self._reader = thread
        thread.start()
        try:
            while True:
                with cond:
                    while not slot and not done.is_set():
                        cond.wait(0.5)
                    if not slot and done.is_set():
                        return
                    items = list(slot)  # in order; at most one frame between statuses
                    slot.clear()
                yield from items
        finally:
            self._stop.set()
            thread.join(timeout=self.config.read_timeout + 1)
