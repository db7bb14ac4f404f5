"""ONNX Runtime sessions: which execution provider, how many threads, and what is in use.

A provider that is asked for but not available is an error, never a silent fallback: a user
who asked for CUDA and silently got the CPU would misread every timing.

Example:
    >>> RuntimeConfig().provider
    'cpu'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from facelens.errors import MissingDependencyError, ModelError

if TYPE_CHECKING:
    from facelens.convert.cache import Converted
    from facelens.models import ModelStore

__all__ = [
    "PROVIDERS",
    "OnnxModel",
    "ReleasingSession",
    "RuntimeConfig",
    "available_providers",
    "make_session",
]

log = logging.getLogger(__name__)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class RuntimeConfig:
    """How the ONNX backends run.

    Attributes:
        provider: ``"cpu"`` or ``"cuda"``.
        threads: intra-op threads; 0 lets onnxruntime use one per physical core.
        cache_dir: where converted ONNX files are kept (None: convert in memory, once per
            process).
        spin: let idle intra-op threads busy-wait for the next parallel section
            (onnxruntime's default). Off here: on a 2-core machine the spinning threads take
            the cores from the Python work between operators and from concurrent requests;
            one photo's detection + embedding took 103 ms with spinning and 47 ms without
            (docs/benchmarks.md, "Inference threads").
        memory_arena: ONNX Runtime's CPU memory arena, which keeps the buffers of one run for
            the next. Off, every run allocates and faults in its buffers afresh: a detection
            took 1.5-1.8 times as long (docs/benchmarks.md, "Memory kept after a burst").
        arena_keep: the input elements (summed over the runs in flight at once) whose
            buffers a session's arena keeps between runs. A burst that had more in flight
            at once hands the arena back when the session next goes idle
            (``ReleasingSession``); 0 never does. The default holds two of the detector's
            largest passes (``detect.tiles.Pyramid.max_pixels``, 3 channels), so one
            request at a time, a video stream or a tiled photo keep their buffers, and a
            burst of large photos does not leave its peak resident.
    """

    provider: str = "cpu"
    threads: int = 0
    cache_dir: Path | None = None
    spin: bool = False
    memory_arena: bool = True
    arena_keep: int = 2 * 3 * 2_200_000

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {sorted(PROVIDERS)}, got {self.provider!r}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.arena_keep < 0:
            raise ValueError(f"arena_keep must be >= 0, got {self.arena_keep}")


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - depends on the installation
        raise MissingDependencyError(
            "onnxruntime", "running models", "pip install onnxruntime"
        ) from None
    return onnxruntime


def available_providers() -> list[str]:
    """facelens names of the providers this onnxruntime build offers."""
    have = set(_ort().get_available_providers())
    return [name for name, ort_name in PROVIDERS.items() if ort_name in have]


def make_session(model: bytes | Path, config: RuntimeConfig, what: str) -> tuple[Any, str]:
    """An inference session for ``model`` and the provider actually in use.

    Raises:
        ModelError: the provider is not available in this onnxruntime build.
    """
    ort = _ort()
    wanted = PROVIDERS[config.provider]
    if wanted not in ort.get_available_providers():
        raise ModelError(
            what,
            f"execution provider {config.provider!r} is not available in "
            f"this onnxruntime (it offers {available_providers()}).",
            "For CUDA install onnxruntime-gpu instead of onnxruntime.",
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = config.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spin else "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_cpu_mem_arena = config.memory_arena
    so.log_severity_level = 3
    # CUDA: no TF32, so GPU results keep float32 precision (dlib parity within 1e-4).
    providers: list[Any] = (
        ["CPUExecutionProvider"]
        if wanted == "CPUExecutionProvider"
        else [(wanted, {"use_tf32": "0"}), "CPUExecutionProvider"]
    )
    src = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(src, so, providers=providers)
    in_use = session.get_providers()[0]
    if in_use != wanted:
        raise ModelError(
            what,
            f"onnxruntime could not start {config.provider!r} for {what} "
            f"(it fell back to {in_use}).",
        )
    name = next(k for k, v in PROVIDERS.items() if v == in_use)
    log.debug("%s runs on %s with %s threads", what, name, config.threads or "default")
    return session, name


class ReleasingSession:
    """A session whose CPU memory arena is handed back after a burst.

    ONNX Runtime's arena grows to the most that runs in flight at once ever needed and keeps
    it: after ten concurrent 10 MP detections a service worker kept ~380 MB. Shrinking it
    after every run costs each run its page faults again (1.5-1.8 times as long), so this
    counts the input elements in flight; when more than ``config.arena_keep`` were in flight
    at once, the run that leaves the session idle is followed by a run on ``probe`` (a tiny
    input) that asks the arena to shrink, which frees every region no run is using. One
    request at a time never triggers it.

    Example:
        >>> import numpy as np
        >>> class Fake:
        ...     def run(self, outputs, feeds, options=None):
        ...         return [options is not None]
        >>> s = ReleasingSession(Fake(), RuntimeConfig(arena_keep=10), {"x": np.zeros(1)})
        >>> s.run(None, {"x": np.zeros(10)}), s.released
        ([False], 0)
        >>> s.run(None, {"x": np.zeros(11)}), s.released  # more than 10 in flight at once
        ([False], 1)
    """

    def __init__(self, session: Any, config: RuntimeConfig, probe: Mapping[str, Any]) -> None:
        self.session = session
        self.keep = config.arena_keep
        self.enabled = config.memory_arena and config.provider == "cpu" and self.keep > 0
        self.probe = dict(probe)
        self.released = 0  # how many times the arena was handed back
        self._lock = threading.Lock()
        self._in_flight = 0
        self._peak = 0

    def run(self, outputs: Sequence[str] | None, feeds: Mapping[str, Any]) -> list[Any]:
        """``session.run(outputs, feeds)``, then the arena handed back if due."""
        n = sum(int(v.size) for v in feeds.values())
        with self._lock:
            self._in_flight += n
            self._peak = max(self._peak, self._in_flight)
        try:
            out: list[Any] = self.session.run(outputs, feeds)
        finally:
            with self._lock:
                self._in_flight -= n
                due = self.enabled and self._in_flight == 0 and self._peak > self.keep
                if due:
                    self._peak = 0
            if due:
                self._release(outputs)
        return out

    def _release(self, outputs: Sequence[str] | None) -> None:
        options = _ort().RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.session.run(outputs, self.probe, options)
        self.released += 1


class OnnxModel:
    """The base of every model facelens runs on ONNX Runtime (detectors and recognizers).

    The session is opened on first use, once, whichever thread gets there first (``load``
    is idempotent and thread-safe), from the registry model ``registry_name`` converted or read from
    the conversion cache (``facelens.convert.cache``); or it is given (``session=``), for a
    caller that built or shares one. A subclass names its role (``what``, for errors) and
    reads what it needs from the session in ``opened``.

    Attributes:
        registry_name: the registry model it runs (a recognizer's ``model`` is the tag of
            its templates, which for a user's model adds the file's checksum).
        provider: the execution provider in use once loaded (None before, or when the
            session was given).
    """

    what: ClassVar[str] = "model"

    def __init__(
        self,
        registry_name: str,
        models: ModelStore,
        runtime: RuntimeConfig,
        session: Any = None,
    ) -> None:
        self.registry_name = registry_name
        self.models = models
        self.runtime = runtime
        self.provider: str | None = None
        self._lock = threading.Lock()
        self._session: Any = None
        if session is not None:
            self.opened(session, None)
            self._session = session

    def load(self) -> None:
        """Open the session (idempotent; called on first use if not called before)."""
        if self._session is not None:
            return
        from facelens.convert.cache import session_for

        with self._lock:
            if self._session is None:
                session, provider, conv = session_for(
                    self.registry_name, self.models, self.runtime, self.what
                )
                self.opened(session, conv)
                self.provider = provider
                self._session = session  # last: another thread's fast path sees it ready

    @property
    def session(self) -> Any:
        """The ONNX Runtime session, opened if it was not."""
        self.load()
        return self._session

    def opened(self, session: Any, converted: Converted | None) -> None:
        """Read what the model needs from a new session (input names, the conversion's
        record); ``converted`` is None for a session that was given."""
