"""The base of the ONNX-backed models (``facelens.runtime.OnnxModel``): a session opened once
however many threads ask at once, or one given by the caller, with the same answers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import facelens.convert.cache as cache
from facelens.convert.cache import converted
from facelens.decode.image import load_image
from facelens.detect import DetectConfig
from facelens.detect.centerface import CenterFaceDetector
from facelens.detect.yunet import YunetDetector
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig, make_session

DETECTORS = {
    "yunet": (YunetDetector, "yunet_2023mar"),
    "centerface": (CenterFaceDetector, "centerface"),
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_given_session_answers_as_the_loaded_one(name: str, fr_photos: Path) -> None:
    cls, model = DETECTORS[name]
    models, runtime = ModelStore(), RuntimeConfig()
    image = load_image(fr_photos / "obama.jpg")
    loaded = cls(DetectConfig(backend=name), models, runtime)
    session, _ = make_session(converted(model, models, runtime.cache_dir).onnx, runtime, "test")
    given = cls(DetectConfig(backend=name), models, runtime, session=session)
    assert given.session is session and given.provider is None
    a, b = loaded.detect(image), given.detect(image)
    assert len(a) == 1 and np.array_equal(a.xyxy, b.xyxy)
    assert loaded.provider == "cpu"


def test_threads_loading_at_once_open_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    real = cache.session_for

    def counting(*args: Any) -> Any:
        opened.append(args[0])
        return real(*args)

    monkeypatch.setattr(cache, "session_for", counting)
    det = YunetDetector(DetectConfig(), ModelStore(), RuntimeConfig())
    start = threading.Barrier(8)

    def load() -> None:
        start.wait()
        det.load()

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert opened == ["yunet_2023mar"]
    det.load()
    assert opened == ["yunet_2023mar"] and det.session is not None
