"""watch's ``Pacer``: the detection stride and size follow the measured cost."""

from __future__ import annotations

import pytest

from facelens.stream import Pacer, PacerConfig, WatchConfig


def feed(p: Pacer, detect: float, other: float, rounds: int = 8) -> None:
    for _ in range(rounds):
        p.observe(True, detect)
        for _ in range(p.stride - 1):
            p.observe(False, other)


def test_a_cheap_detector_runs_on_every_frame() -> None:
    p = Pacer(30.0, 640)
    feed(p, detect=0.010, other=0.002)
    assert (p.stride, p.max_side) == (1, None)


def test_a_costly_one_runs_as_often_as_the_frame_rate_allows() -> None:
    p = Pacer(30.0, 1280)
    feed(p, detect=0.060, other=0.004)
    # (0.060 + (s - 1) * 0.004) / s <= 0.8 / 30: the smallest such s is 3
    assert (p.stride, p.max_side) == (3, None)


def test_when_no_stride_keeps_up_the_detection_size_shrinks_and_grows_back() -> None:
    p = Pacer(30.0, 1920, PacerConfig(window=4))
    feed(p, detect=0.500, other=0.004, rounds=4)  # hopeless at full size
    assert p.max_side == 1280 and p.stride == p.max_stride == 6
    feed(p, detect=0.200, other=0.004, rounds=4)
    assert p.max_side == 960
    feed(p, detect=0.010, other=0.002, rounds=4)  # plenty of time now: one size up
    assert p.max_side == 1280


def test_a_slow_frame_rate_and_explicit_settings() -> None:
    p = Pacer(5.0, 640)
    assert p.max_stride == 1  # at least min_rate detections a second: every frame at 5 fps
    assert WatchConfig().detect_every == "auto" and WatchConfig().detect_max_side == "auto"
    assert WatchConfig(detect_every=4, detect_max_side=None).detect_every == 4
    with pytest.raises(ValueError, match="detect_every must be 'auto' or >= 1"):
        WatchConfig(detect_every=0)
    with pytest.raises(ValueError, match="detect_max_side"):
        WatchConfig(detect_max_side=10)


def test_watch_statistics_stay_bounded_on_an_endless_stream() -> None:
    from facelens.stream import LATENCY_WINDOW, WatchStats

    stats = WatchStats()
    for i in range(LATENCY_WINDOW * 3):  # ~3 days of events at one a second... in memory
        stats.latencies.append(float(i))
    assert len(stats.latencies) == LATENCY_WINDOW
    assert stats.latencies[-1] == LATENCY_WINDOW * 3 - 1  # the latest are kept
