"""What one worker process holds while it serves: the store, keys and audit trail, the
pipeline, rate-limit buckets, stream jobs and the live-event broadcaster."""

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from facelens.decode.image import DecodeConfig
from facelens.events import Event
from facelens.events.sinks import parse_sink
from facelens.gallery.held import HoldsTemplates, search_config
from facelens.gallery.stores import open_store
from facelens.govern import AuditLog, KeyStore, StopControl
from facelens.govern.confirm import Alerts
from facelens.govern.names import NAME_RE
from facelens.pipeline import Pipeline
from facelens.sandbox import Sandbox, return_large_blocks
from facelens.service.errors import HttpError
from facelens.service.inference import InferenceQueue
from facelens.service.limits import MemoryBudget
from facelens.service.live import LiveFeeds
from facelens.service.settings import ServiceSettings

log = logging.getLogger(__name__)

__all__ = [
    "MAX_FINISHED_JOBS",
    "NAME_RE",
    "Broadcaster",
    "BusSink",
    "Job",
    "ServiceState",
    "SharedSink",
]

# finished stream jobs remembered per worker (their status stays readable until then)
MAX_FINISHED_JOBS = 100


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Bucket:
    """A token bucket: ``rate`` requests a second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a request may go now, else seconds until it may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Broadcaster:
    """Fans stream events out to live subscribers (bounded queues; slow ones lose events)."""

    def __init__(self) -> None:
        self._subs: list[tuple[str, str | None, queue.Queue[dict[str, Any]]]] = []
        self._lock = threading.Lock()

    def publish(self, tenant: str, stream_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subs)
        for t, sid, q in subs:
            if t == tenant and (sid is None or sid == stream_id):
                with contextlib.suppress(queue.Full):
                    q.put_nowait(event)

    def subscribe(
        self, tenant: str, stream_id: str | None, limit: int
    ) -> queue.Queue[dict[str, Any]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        with self._lock:
            if len(self._subs) >= limit:
                raise HttpError(
                    503,
                    "too_many_subscribers",
                    f"this worker already serves {limit} event streams; try again later",
                    headers={"Retry-After": "30"},
                )
            self._subs.append((tenant, stream_id, q))
        return q

    def unsubscribe(self, q: queue.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[2] is not q]


@dataclass
class Job:
    """A stream being watched."""

    id: str
    tenant: str
    source: str
    gallery: str
    started_at: str
    status: str = "starting"
    frames: int = 0
    events: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    session: Any = None  # its facelens.stream.WatchSession (stop, subscribe)
    thread: threading.Thread | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,  # VideoSource.name: without credentials
            "gallery": self.gallery,
            "status": self.status,
            "started_at": self.started_at,
            "frames": self.frames,
            "events": dict(self.events),
            "error": self.error,
        }


class BusSink:
    """An events sink that hands a stream job's events to the broadcaster."""

    def __init__(self, job: Job, broadcaster: Broadcaster) -> None:
        self.name = f"stream:{job.id}"
        self.job, self.broadcaster = job, broadcaster

    def emit(self, event: Event) -> None:
        d = event.to_dict() | {"stream": self.job.id}
        self.job.events[event.type] = self.job.events.get(event.type, 0) + 1
        self.broadcaster.publish(self.job.tenant, self.job.id, d)

    def close(self, timeout: float = 5.0) -> None:
        return None


class SharedSink:
    """One of the service's sinks as a stream's bus sees it: the stream's events, tagged
    with the stream and tenant, and closing the stream's bus leaves the sink open."""

    def __init__(self, sink: Any, job: Job) -> None:
        self.sink, self.job = sink, job
        self.name = getattr(sink, "name", "sink")

    def emit(self, event: Event) -> None:
        data = {**event.data, "stream": self.job.id, "tenant": self.job.tenant}
        self.sink.emit(replace(event, data=data))

    def close(self, timeout: float = 5.0) -> None:
        return None


class Timings:
    """The service's own time on its recent requests, per tenant and route (bounded: the
    last ``window`` of each, for at most ``max_series`` tenant-route pairs; a tenant sees
    only its own)."""

    def __init__(self, window: int = 2000, max_series: int = 4096) -> None:
        self.window, self.max_series = window, max_series
        self._ms: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, tenant: str, route: str, ms: float) -> None:
        key = (tenant, route)
        with self._lock:
            if key not in self._ms and len(self._ms) >= self.max_series:
                return  # routes are few; anything more is not worth memory
            self._ms.setdefault(key, deque(maxlen=self.window)).append(ms)

    def summary(self, tenant: str) -> dict[str, dict[str, float]]:
        with self._lock:
            snap = {r: sorted(d) for (t, r), d in self._ms.items() if d and t == tenant}
        return {
            r: {
                "n": len(v),
                "p50_ms": round(v[len(v) // 2], 1),
                "p99_ms": round(v[min(len(v) - 1, int(len(v) * 0.99))], 1),
            }
            for r, v in snap.items()
        }


class ServiceState:
    """The worker's shared state (``app.state.facelens``; routes reach it through
    ``facelens.service.deps``)."""

    def __init__(self, settings: ServiceSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.store = open_store(
            settings.gallery_path, key=settings.template_key, read_replica=settings.read_replica
        )
        self.audit = AuditLog(self.store)
        self.keys = KeyStore(self.store, self.audit)
        self.stop = StopControl(self.store, self.audit)
        self.alerts = Alerts(self.store, self.audit)
        # the operator's event sinks, shared by every stream (closed when the service stops)
        self.sinks = [parse_sink(spec, settings.webhook_secret) for spec in settings.event_sinks]
        self.pipeline = pipeline
        self.buckets: dict[str, Bucket] = {}
        self.bucket_lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.broadcaster = Broadcaster()
        self.live = LiveFeeds()  # the streams' live views, while someone watches
        self._pipelines: dict[int, Pipeline] = {pipeline.config.detect.upsample: pipeline}
        self._pipelines_lock = threading.Lock()
        # pipelines (and their inference queues) of the recognizers galleries enrolled with
        # another default hold, by template tag: built on first use
        self._searchers: dict[str, tuple[Pipeline, InferenceQueue]] = {}
        self.memory = MemoryBudget(
            settings.memory_bytes, settings.request_memory_bytes, settings.inference_budget_s
        )
        self.timings = Timings()
        self.inference = InferenceQueue(pipeline, settings.queue_budget_s)
        self.decode_config = DecodeConfig(
            max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels
        )
        # large buffers go back to the system when freed (see return_large_blocks)
        return_large_blocks()
        # uploaded images are decoded in these processes (started on first use)
        self.sandbox = Sandbox(settings.decode_workers, wait_s=settings.inference_budget_s)

    def deliver(self, tenant: str, event: dict[str, Any]) -> None:
        """A confirmed alert's ``identified`` event, to the service's sinks and to live
        clients (exactly once: ``Alerts.vote`` hands it to one caller)."""
        event = {**event, "tenant": tenant}
        ev = Event.from_dict(event)
        for sink in self.sinks:
            try:
                sink.emit(ev)
            except Exception:
                log.exception("sink %s failed", getattr(sink, "name", "sink"))
        self.broadcaster.publish(tenant, str(event.get("stream", "")), event)

    def close(self) -> None:
        """What the worker started: the sinks' deliveries and the decode processes."""
        for sink in self.sinks:
            sink.close(5.0)
        self.sandbox.close()

    def pipeline_for(self, upsample: int) -> Pipeline:
        """The service's pipeline, or one like it with another detector upsampling."""
        with self._pipelines_lock:
            if upsample not in self._pipelines:
                c = self.pipeline.config
                self._pipelines[upsample] = Pipeline(
                    replace(c, detect=replace(c.detect, upsample=upsample))
                )
            return self._pipelines[upsample]

    def searcher(self, gallery: HoldsTemplates) -> tuple[Pipeline, InferenceQueue, str | None]:
        """The pipeline and inference queue that search ``gallery``, and a notice (or None):
        the service's own, or, when the gallery holds none of the default recognizer's
        templates, one for the recognizer it holds (``facelens.gallery.held.search_config``).

        Raises:
            NoTemplatesError: the operator named the recognizer and the gallery holds none
                of its templates (409).
        """
        config, notice = search_config(self.pipeline.config, gallery, self.settings.model)
        if config is self.pipeline.config:
            return self.pipeline, self.inference, notice
        with self._pipelines_lock:
            p = Pipeline(config)
            if p.model not in self._searchers:
                self._searchers[p.model] = (
                    p,
                    InferenceQueue(p, self.settings.queue_budget_s),
                )
            p, q = self._searchers[p.model]
        return p, q, notice

    def check_gallery(self, tenant: str, name: str, must_exist: bool = True) -> str:
        """A tenant's gallery name checked: another tenant's, or one that does not exist when
        ``must_exist``, is "not found"; otherwise it is created. Returns its stored name
        (routes reach the gallery governed: ``facelens.service.deps.governed``)."""
        from facelens.errors import NotFoundError
        from facelens.govern.names import gallery_key

        if not NAME_RE.match(name):
            raise HttpError(400, "bad_input", "gallery names are 1-64 letters, digits, _ . -")
        internal = gallery_key(tenant, name)
        if must_exist and internal not in self.store.galleries():
            raise NotFoundError("gallery", name)
        if not must_exist:
            self.store.ensure_gallery(internal)
        return internal

    def add_job(self, job: Job) -> None:
        """Remember a job; finished ones are kept for their status, the oldest forgotten
        beyond ``MAX_FINISHED_JOBS``."""
        done = [j for j in self.jobs.values() if j.status in ("finished", "stopped", "failed")]
        for old in done[: max(0, len(done) - MAX_FINISHED_JOBS + 1)]:
            self.jobs.pop(old.id, None)
        self.jobs[job.id] = job
