"""Watching a watch: what live views (the web UI's picture of each stream) subscribe to.

A subscriber gets, per processed frame, a ``FrameView`` (the RGB frame, and per face its
box, track id, name and whether the name is confirmed) and, when a track ends, a
``TrackEnd`` with its best shot. Publishing never blocks the watcher: each subscription has
one slot for frames, where the newest frame replaces one not yet taken (counted in
``dropped_frames``), and a bounded queue of track ends (the oldest dropped beyond it,
counted in ``dropped_ends``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError

__all__ = ["FaceView", "FrameView", "Observers", "Subscription", "TrackEnd"]

# Subscriptions a watch accepts at once, and track ends a subscription keeps untaken.
MAX_SUBSCRIBERS = 16
ENDS_KEPT = 64


@dataclass(frozen=True)
class FaceView:
    """One face as a live view draws it.

    Attributes:
        box: ``(x1, y1, x2, y2)`` pixels in the frame.
        track_id: the track.
        name: the enrolled name its track holds now, or None (unknown, not yet decided, or
            held for confirmation).
        confirmed: the name rests on a sample of this track's own face taken within the
            last ``fresh_seconds`` (``TrackIdentityConfig``); False when ``name`` is None.
        held: the track was identified in a gallery that wants two people to confirm it
            first: the name is not shown (``name`` is None) until they do.
    """

    box: tuple[float, float, float, float]
    track_id: int
    name: str | None
    confirmed: bool
    held: bool = False


@dataclass(frozen=True, eq=False)
class FrameView:
    """One processed frame.

    Attributes:
        index: the frame number in the source.
        media_time: seconds into the stream.
        image: the RGB frame (H, W, 3) uint8, read-only (shared by every subscriber).
        faces: its faces.
    """

    index: int
    media_time: float
    image: NDArray[np.uint8]
    faces: tuple[FaceView, ...]


@dataclass(frozen=True, eq=False)
class TrackEnd:
    """A track that ended, with its best shot.

    Attributes:
        track_id: the track.
        name: the name it held at the end (None: unknown, or held for confirmation).
        best_shot: its best aligned face chip (RGB, read-only), or None.
        frame: the frame it ended on; ``media_time`` that frame's time.
        reason: why it ended (``Ended.reason``: ``cut``, ``unseen``, ``displaced``,
            ``split``, ``closed``).
    """

    track_id: int
    name: str | None
    best_shot: NDArray[np.uint8] | None
    frame: int
    media_time: float
    reason: str


class Subscription:
    """One subscriber's view of a watch. Thread-safe; ``next_frame`` may be called from
    any thread. Close it when done (or let the watch end, which closes it)."""

    def __init__(self, hub: Observers) -> None:
        self._hub = hub
        self._cond = threading.Condition()
        self._frame: FrameView | None = None
        self._ends: deque[TrackEnd] = deque()
        self.dropped_frames = 0
        self.dropped_ends = 0
        self.closed = False

    def _put_frame(self, view: FrameView) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped_frames += 1
            self._frame = view
            self._cond.notify_all()

    def _put_end(self, end: TrackEnd) -> None:
        with self._cond:
            if len(self._ends) >= ENDS_KEPT:
                self._ends.popleft()
                self.dropped_ends += 1
            self._ends.append(end)
            self._cond.notify_all()

    def _finish(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def latest(self) -> FrameView | None:
        """The newest frame not yet taken, or None (never waits)."""
        with self._cond:
            view, self._frame = self._frame, None
            return view

    def next_frame(self, timeout: float | None = None) -> FrameView | None:
        """Wait (up to ``timeout`` seconds) for a frame not yet taken; None on timeout or
        once the watch has ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self.closed, timeout)
            view, self._frame = self._frame, None
            return view

    def ended(self) -> list[TrackEnd]:
        """The track ends not yet taken, oldest first (never waits)."""
        with self._cond:
            out = list(self._ends)
            self._ends.clear()
            return out

    def close(self) -> None:
        """Stop receiving."""
        self._hub._drop(self)
        self._finish()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Observers:
    """The subscriptions of one watch (at most ``limit`` at once).

    Example:
        >>> hub = Observers()
        >>> sub = hub.subscribe()
        >>> img = np.zeros((2, 2, 3), np.uint8)
        >>> for i in range(3):
        ...     hub.publish_frame(FrameView(i, i / 30, img, ()))
        >>> sub.latest().index, sub.dropped_frames, sub.latest()
        (2, 2, None)
    """

    def __init__(self, limit: int = MAX_SUBSCRIBERS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._closed = False

    @property
    def active(self) -> bool:
        """Is anyone subscribed (else frames need not be prepared for them)?"""
        return bool(self._subs)

    def subscribe(self) -> Subscription:
        """A new subscription.

        Raises:
            InputError: ``limit`` subscriptions are open already.
        """
        with self._lock:
            if len(self._subs) >= self.limit:
                raise InputError("subscribers", f"a watch takes at most {self.limit} subscribers")
            sub = Subscription(self)
            if self._closed:
                sub._finish()
            else:
                self._subs.append(sub)
            return sub

    def _drop(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish_frame(self, view: FrameView) -> None:
        """Give every subscriber this frame (replacing one it has not taken)."""
        for sub in list(self._subs):
            sub._put_frame(view)

    def publish_end(self, end: TrackEnd) -> None:
        """Tell every subscriber a track ended."""
        for sub in list(self._subs):
            sub._put_end(end)

    def close(self) -> None:
        """The watch ended: every subscription is told (``next_frame`` returns None)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
        for sub in subs:
            sub._finish()
