"""The detector's ONNX Runtime arena is handed back after a burst of large pictures, and kept
while pictures come one at a time (``facelens.runtime.ReleasingSession``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facelens.detect import DetectConfig
from facelens.detect.yunet import YunetDetector
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig
from facelens.sandbox import release_freed_memory, return_large_blocks

MB = 2**20


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_a_burst_leaves_no_arena_behind_and_one_at_a_time_keeps_it() -> None:
    return_large_blocks()  # as the service does
    det = YunetDetector(DetectConfig(), ModelStore(), RuntimeConfig(threads=2))
    photo = np.full((1000, 1300, 3), 128, np.uint8)
    large = np.full((2000, 3000, 3), 128, np.uint8)  # tiled: 1408-pixel passes
    for _ in range(3):  # one at a time: the arena is kept, nothing is released
        det.detect(photo)
    det.detect(large)
    assert det._runner is not None and det._runner.released == 0
    release_freed_memory()
    before = rss()
    with ThreadPoolExecutor(4) as pool:  # four tiled passes in flight: ~24M elements
        list(pool.map(lambda _: det.detect(large), range(4)))
    release_freed_memory()
    grew = (rss() - before) / MB
    assert det._runner.released >= 1
    assert grew < 60, f"the worker kept {grew:.0f} MB after the burst"
    det.detect(photo)  # and it still detects (the arena grows again as needed)
    assert det._runner.released >= 1


def test_keeping_everything_is_a_choice() -> None:
    assert RuntimeConfig(arena_keep=0).arena_keep == 0
    with pytest.raises(ValueError, match="arena_keep"):
        RuntimeConfig(arena_keep=-1)
