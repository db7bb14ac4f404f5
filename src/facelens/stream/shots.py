"""Shot boundaries: a hard cut between two frames, from how much their colours and their
pixels changed.

A cut changes both at once: the colour histogram (a new scene) and most pixels (a new
picture). Motion changes pixels but hardly the histogram; a change of light or white
balance moves the histogram but hardly the pixels' structure. So a cut is called when both
measures, taken on a small copy of the frame, pass their bars. The bars were measured on the
Hamilton clip (``benchmarks/video_identity.py --shots``): its three cuts give a histogram
distance of 0.38-0.65 and a pixel change of 0.11-0.12; no other frame pair passes 0.18 or
0.053.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ShotConfig", "ShotDetector"]


@dataclass(frozen=True)
class ShotConfig:
    """When two consecutive frames are a cut.

    Attributes:
        enabled: detect cuts at all (off: tracks only end by not being seen).
        histogram: least distance (1 - histogram intersection, 0-1) between the frames'
            hue/saturation/value histograms.
        pixels: least mean absolute change of the small grey frames (0-1).
        size: (width, height) of the small copy both are measured on.
        bins: hue, saturation and value bins of the histogram.
    """

    enabled: bool = True
    histogram: float = 0.30
    pixels: float = 0.08
    size: tuple[int, int] = (64, 36)
    bins: tuple[int, int, int] = (16, 4, 4)

    def __post_init__(self) -> None:
        if not (0 < self.histogram <= 1 and 0 < self.pixels <= 1):
            raise ValueError(
                f"shot bars must be in (0, 1], got histogram={self.histogram}, pixels={self.pixels}"
            )


class ShotDetector:
    """Says whether each frame begins a new shot.

    Example:
        >>> d = ShotDetector()
        >>> dark, light = np.zeros((90, 160, 3), np.uint8), np.full((90, 160, 3), 200, np.uint8)
        >>> [d.cut(f) for f in (dark, dark, light, light)]
        [False, False, True, False]
    """

    def __init__(self, config: ShotConfig | None = None) -> None:
        self.config = config or ShotConfig()
        self._hist: NDArray[np.float32] | None = None
        self._grey: NDArray[np.float32] | None = None

    def measure(self, image: NDArray[np.uint8]) -> tuple[float, float]:
        """(histogram distance, pixel change) from the previous frame given; (0, 0) for the
        first. The frame becomes the one the next is compared with."""
        import cv2

        small = cv2.resize(image, self.config.size, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        counts = cv2.calcHist(
            [hsv], [0, 1, 2], None, list(self.config.bins), [0, 180, 0, 256, 0, 256]
        ).ravel()
        hist = (counts / max(1.0, float(counts.sum()))).astype(np.float32)
        grey = (cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) / 255.0).astype(np.float32)
        prev_hist, prev_grey = self._hist, self._grey
        self._hist, self._grey = hist, grey
        if prev_hist is None or prev_grey is None:
            return 0.0, 0.0
        distance = 1.0 - float(np.minimum(hist, prev_hist).sum())
        change = float(np.abs(grey - prev_grey).mean())
        return distance, change

    def cut(self, image: NDArray[np.uint8]) -> bool:
        """Does ``image`` begin a new shot (never the first frame seen)?"""
        if not self.config.enabled:
            return False
        distance, change = self.measure(image)
        return distance >= self.config.histogram and change >= self.config.pixels

    def reset(self) -> None:
        """Forget the previous frame (after a source outage: the next frame is no cut)."""
        self._hist = self._grey = None
