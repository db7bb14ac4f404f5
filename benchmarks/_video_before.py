"""The tracker as it was before the stream stage (issue 27), run for the before/after table of
``benchmarks/video_identity.py``: that script extracts the old ``src`` from git and runs this
file with it first on ``sys.path``. It uses the old API (``facelens.watch.Watcher``, the
command line's ``_sparing``) and prints what it showed and covered as JSON on stdout.

    PYTHONPATH=<old src> python benchmarks/_video_before.py JOB.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def _gallery(spec: dict[str, list[str]], pipe: Any) -> Any:
    from facelens import Consent, Gallery

    g = Gallery.open(Path(tempfile.mkdtemp()) / "g.db")
    consent = Consent(
        purpose="benchmark", granted_by="benchmark", granted_at="2026-01-01T00:00:00Z"
    )
    for name, photos in spec.items():
        pipe.enroll(g, name, [Path(p) for p in photos], consent)
    return g


def watch(job: dict[str, Any]) -> dict[str, Any]:
    import importlib

    from facelens import Pipeline
    from facelens.decode.video import VideoSource
    from facelens.events import EventBus, MemorySink

    old = importlib.import_module("facelens.watch")  # gone since the stream stage
    WatchConfig, Watcher = old.WatchConfig, old.Watcher
    pipe = Pipeline()
    g = _gallery(job["enrol"], pipe)
    shown: dict[int, list[list[Any]]] = {}

    def on_frame(frame: Any, faces: Any, labels: list[str | None]) -> None:
        ids = faces.track_id.tolist() if faces.track_id is not None else []
        shown[frame.index] = [
            [*(float(v) for v in box), int(t), name]
            for box, t, name in zip(faces.xyxy, ids, labels, strict=False)
        ]

    sink = MemorySink()
    source = VideoSource(job["clip"])
    stats = Watcher(pipe, g, EventBus([sink]), WatchConfig()).run(source, on_frame=on_frame)
    source.close()
    return {
        "shown": shown,
        "tracks": stats.tracks,
        "events": [e.to_dict() for e in sink.events],
        "seconds": stats.processing_seconds,
    }


def redact(job: dict[str, Any]) -> dict[str, Any]:
    import importlib

    import numpy as np

    import facelens.redact.video as rv
    from facelens.environment import make_pipeline
    from facelens.redact import RedactConfig

    cfg = RedactConfig(mode="except")
    pipe = make_pipeline(detector=cfg.detector, upsample=cfg.upsample, threshold=cfg.threshold)
    g = _gallery(job["enrol"], make_pipeline())
    covers: dict[int, list[list[float]]] = {}
    original = rv.apply_redaction
    frame = [0]

    def recording(image: Any, faces: Any, config: Any) -> Any:
        covers[frame[0]] = np.asarray(faces.xyxy, float).tolist()
        frame[0] += 1
        return original(image, faces, config)

    rv.apply_redaction = recording  # type: ignore[assignment]
    sparing = importlib.import_module("facelens.cli.video_cmd")._sparing  # gone since then
    identify, spared = sparing(pipe, g)
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    import time

    t = time.perf_counter()
    report = rv.redact_video(pipe, job["clip"], out, cfg, identify=identify, spared=spared)
    return {"covers": covers, "seconds": time.perf_counter() - t, "report": report.__dict__}


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(watch(job) if job["kind"] == "watch" else redact(job)))
