"""One inference queue per worker process: requests hand in the chips of their faces, and one
thread embeds everything waiting in a single call (a recognizer runs far faster on a batch
than on the one or two faces of a photo, and one caller of the model at a time does not fight
the others for the cores).

Back-pressure: the queue knows how long a chip takes (a running average) and how many wait;
a request whose chips would wait past the latency budget is refused at once - 503 with
``Retry-After`` - never queued without bound.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.pipeline import Pipeline
from facelens.service.errors import HttpError

__all__ = ["InferenceQueue"]

log = logging.getLogger(__name__)


@dataclass
class _Item:
    views: Mapping[str, NDArray[np.uint8]]
    n: int
    tenant: str
    done: threading.Event = field(default_factory=threading.Event)
    result: Embeddings | None = None
    error: BaseException | None = None


class InferenceQueue:
    """Batches concurrent requests' faces into one embedding call.

    Args:
        pipeline: whose recognizer(s) embed.
        budget_s: the longest a request's chips may be expected to wait; past it, 503.
        max_batch: the most chips in one call.
    """

    def __init__(self, pipeline: Pipeline, budget_s: float, max_batch: int = 32) -> None:
        self.pipeline, self.budget_s, self.max_batch = pipeline, budget_s, max_batch
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # chips waiting or being embedded
        self._per_chip_s = 0.02  # a running estimate of one chip's cost in a batch
        self._thread: threading.Thread | None = None
        # per tenant: embedding calls its faces were in, its faces, its refused requests
        self._counts: dict[str, dict[str, int]] = {}

    def _count(self, tenant: str, what: str, n: int = 1) -> None:
        c = self._counts.setdefault(tenant, {"batches": 0, "chips": 0, "refused": 0})
        c[what] += n

    def stats(self, tenant: str) -> dict[str, float]:
        """The queue now (faces waiting, the estimated seconds a face) and ``tenant``'s own
        counts (never another tenant's)."""
        with self._cond:
            own = self._counts.get(tenant, {"batches": 0, "chips": 0, "refused": 0})
            return {
                **own,
                "pending": self._pending,
                "per_chip_s": round(self._per_chip_s, 4),
            }

    def embed(self, views: Mapping[str, NDArray[np.uint8]], tenant: str = "") -> Embeddings:
        """Embeddings of the faces in ``views``, made in a batch with whatever else waits."""
        n = len(next(iter(views.values())))
        item = _Item(views, n, tenant)
        with self._cond:
            expected = (self._pending + n) * self._per_chip_s
            if self._pending and expected > self.budget_s:
                self._count(tenant, "refused")
                raise HttpError(
                    503,
                    "busy",
                    f"the service is at capacity (about {expected:.1f} s of faces waiting); "
                    "try again shortly",
                    headers={"Retry-After": str(max(1, round(expected)))},
                )
            self._queue.append(item)
            self._pending += n
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
                self._thread.start()
            self._cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _take(self) -> list[_Item]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            batch: list[_Item] = []
            chips = 0
            while self._queue and (not batch or chips + self._queue[0].n <= self.max_batch):
                item = self._queue.popleft()
                batch.append(item)
                chips += item.n
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            n = sum(i.n for i in batch)
            t0 = time.perf_counter()
            try:
                keys = set(batch[0].views)
                merged = {k: np.concatenate([i.views[k] for i in batch]) for k in keys}
                embs = self.pipeline.embed_views(merged)
                start = 0
                for i in batch:
                    i.result = embs[start : start + i.n]
                    start += i.n
            except BaseException as e:  # each request answers for itself
                for i in batch:
                    i.error = e
            dt = time.perf_counter() - t0
            with self._cond:
                self._pending -= n
                self._per_chip_s = 0.8 * self._per_chip_s + 0.2 * dt / max(n, 1)
                for t in {i.tenant for i in batch}:
                    self._count(t, "batches")
                for i in batch:
                    self._count(i.tenant, "chips", i.n)
            for i in batch:
                i.done.set()
