"""``Pacer``: the detection stride and size that keep a watch up with its source.

By default (``"auto"``) a watch detects as often and as large as the measured cost allows at
the source's frame rate, on the machine it runs on (docs/video.md, "Detection").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Pacer", "PacerConfig"]


@dataclass(frozen=True)
class PacerConfig:
    """How ``"auto"`` picks the detection stride and size.

    Attributes:
        headroom: share of a frame interval the work may take (the rest absorbs jitter,
            decoding and the sinks).
        max_stride: the stride never exceeds this (0: the frame rate / ``min_rate``).
        min_rate: detections per second at least (a face must not go unseen for long).
        sides: detection sizes (longer side, pixels) tried in turn when even the largest
            stride cannot keep up at full size.
        window: detection frames averaged before a new choice.
    """

    headroom: float = 0.8
    max_stride: int = 0
    min_rate: float = 5.0
    sides: tuple[int, ...] = (1280, 960, 640, 480)
    window: int = 8


class Pacer:
    """Chooses the detection stride and size from the measured cost of frames.

    Every frame's processing time is recorded, split into detection frames and the frames in
    between; after ``window`` detection frames the stride becomes the smallest that keeps
    the average frame within ``headroom`` of the frame interval: with ``d`` seconds for a
    detection frame and ``c`` for another, stride ``s`` costs ``(d + (s - 1) c) / s`` per
    frame. When even ``max_stride`` cannot keep up, the detection size steps down
    (``sides``); when there is time to spare at a smaller size, it steps back up.

    Example:
        >>> p = Pacer(30.0, 1920, PacerConfig(window=2))
        >>> for _ in range(2):
        ...     p.observe(True, 0.060)
        ...     p.observe(False, 0.004)
        >>> p.stride
        3
    """

    def __init__(self, fps: float, longest_side: int, config: PacerConfig | None = None):
        self.config = config or PacerConfig()
        self.interval = 1.0 / fps if fps and fps > 0 else 1.0 / 30
        rate = fps if fps and fps > 0 else 30.0
        self.max_stride = self.config.max_stride or max(1, int(rate / self.config.min_rate))
        self.longest = longest_side
        self.sides = [s for s in self.config.sides if s < longest_side]
        self.level = 0  # 0: full size, k: self.sides[k - 1]
        self.stride = 1
        self._detect: list[float] = []
        self._other: list[float] = []

    @property
    def max_side(self) -> int | None:
        """The detection size now (longer side), None for full size."""
        return None if self.level == 0 else self.sides[self.level - 1]

    def _per_frame(self, d: float, c: float, s: int) -> float:
        return (d + (s - 1) * c) / s

    def observe(self, detected: bool, seconds: float) -> None:
        """Record one frame's processing time; re-choose after a window of detections."""
        (self._detect if detected else self._other).append(seconds)
        if len(self._detect) < self.config.window:
            return
        d = float(np.median(self._detect))
        c = float(np.median(self._other[-64:])) if self._other else d * 0.1
        budget = self.interval * self.config.headroom
        stride = next(
            (s for s in range(1, self.max_stride + 1) if self._per_frame(d, c, s) <= budget),
            None,
        )
        if stride is None and self.level < len(self.sides):
            # the detector's cost scales with its pixels: estimate the next size's
            self.level += 1
            self.stride = self.max_stride
        elif stride is None:
            self.stride = self.max_stride
        else:
            self.stride = stride
            prev = self.sides[self.level - 2] if self.level >= 2 else self.longest
            now = self.max_side or self.longest
            grow = (prev / now) ** 2
            if self.level > 0 and self._per_frame(d * grow, c, self.max_stride) <= budget * 0.7:
                self.level -= 1  # a larger size fits with room to spare
        self._detect.clear()
        self._other = self._other[-16:]
