"""The worker's inference queue: concurrent requests' faces are embedded together, each gets
its own faces' embeddings back, and past the latency budget a request is refused at once."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facelens import EnrollmentError, Pipeline
from facelens.service.errors import HttpError
from facelens.service.inference import InferenceQueue


@pytest.fixture(scope="module")
def views(pipeline: Pipeline, data: Path) -> list[dict[str, np.ndarray]]:
    out = []
    for path in sorted((data / "lfw").rglob("*.jpg"))[:12]:
        img, _ = pipeline.decode(path)
        with contextlib.suppress(EnrollmentError):  # no face
            out.append(pipeline.compared_face(img)[0])
    assert len(out) >= 10
    return out


def test_concurrent_requests_are_embedded_together_and_get_their_own_faces(
    pipeline: Pipeline, views: list[dict[str, np.ndarray]]
) -> None:
    q = InferenceQueue(pipeline, budget_s=30)
    alone = [pipeline.embed_views(v) for v in views]
    got: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(views))

    def ask(i: int) -> None:
        start.wait()
        got[i] = q.embed(views[i]).vectors

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(views))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == list(range(len(views)))
    for i, e in enumerate(alone):
        # the same face's embedding, whatever it was batched with
        assert float(got[i][0] @ e.vectors[0]) > 0.9999
    assert q.stats("")["chips"] == len(views)
    assert q.stats("")["batches"] < len(views)  # some requests shared a call


def test_past_the_budget_a_request_is_refused_at_once_not_queued(
    pipeline: Pipeline, views: list[dict[str, np.ndarray]]
) -> None:
    q = InferenceQueue(pipeline, budget_s=0.05)
    big = {k: np.concatenate([v[k] for v in views] * 3) for k in views[0]}
    first = threading.Thread(target=q.embed, args=(big,))
    first.start()
    deadline = time.time() + 10
    while q._pending == 0 and time.time() < deadline:
        time.sleep(0.001)
    q._per_chip_s = 1.0  # as measured on a slow machine: one chip waiting is past the budget
    t0 = time.perf_counter()
    with pytest.raises(HttpError) as e:
        q.embed(views[0])
    assert time.perf_counter() - t0 < 0.05  # refused without waiting
    assert e.value.status == 503 and e.value.error == "busy"
    assert e.value.headers is not None and int(e.value.headers["Retry-After"]) >= 1
    first.join(60)
    assert q.stats("")["refused"] == 1
    # once the queue has drained, requests are served again
    assert len(q.embed(views[0])) == 1
