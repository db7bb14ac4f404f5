"""Indexing on a Ray cluster: the same ``analyze_file`` as a local run, in Ray tasks.

The driver (``facelens index --ray``) walks the folders, reads each file to analyse (bounded,
as locally) and sends its bytes with the task, so workers need neither the photos' folders
nor the gallery's database; results come back and the driver writes them, a batch per
transaction, into the gallery (PostgreSQL when several machines index into one). Face ids
depend only on path and content, so a Ray run stores the faces a local run stores.

Videos are not shipped (they may be gigabytes): ``Indexer`` analyses them on the driver.
Ray is an optional extra: ``pip install 'facelens[ray]'``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from facelens.archive.index import FileResult, IndexConfig, Runner, analyze_file
from facelens.archive.scan import Candidate
from facelens.archive.store import FileState
from facelens.decode.image import read_bounded
from facelens.errors import FacelensError, InputError, MissingDependencyError

log = logging.getLogger(__name__)

__all__ = ["RAY_INSTALL", "ray_runner"]

RAY_INSTALL = "pip install 'facelens[ray]' (or pip install ray)"

_PIPELINES: dict[str, Any] = {}  # per worker process: the pipeline of each model, loaded once


def _analyze_batch(
    model: str,
    items: Sequence[tuple[Candidate, bytes | None, FileState | None]],
    config: IndexConfig,
) -> list[FileResult]:
    """A Ray task's work: one batch of files, with this worker's pipeline."""
    p = _PIPELINES.get(model)
    if p is None:
        from facelens.embed import EmbedConfig
        from facelens.pipeline import Pipeline, PipelineConfig
        from facelens.runtime import RuntimeConfig

        p = _PIPELINES[model] = Pipeline(
            PipelineConfig(embed=EmbedConfig(model=model), runtime=RuntimeConfig(threads=1))
        )
    return [analyze_file(p, c, data, known, config) for c, data, known in items]


def _payload(
    c: Candidate, known: FileState | None, config: IndexConfig
) -> tuple[Candidate, bytes | None, FileState | None]:
    try:
        data, _ = read_bounded(c.path, config.decode)
    except (FacelensError, OSError):
        data = None  # the worker reads nothing and reports the file unreadable
    return c, data, known


def ray_runner(address: str, model: str, in_flight: int | None = None) -> Runner:
    """A ``Runner`` for ``Indexer.run`` that analyses batches as Ray tasks on the cluster at
    ``address`` (``auto``, ``local`` for a cluster of this machine alone, or host:port).

    Raises:
        MissingDependencyError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "--ray", RAY_INSTALL) from None

    def run(
        batches: Sequence[Sequence[Candidate]], known: dict[str, FileState]
    ) -> Iterator[list[FileResult]]:
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
            if address != "local":
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise InputError(
                    "--ray",
                    f"no Ray cluster to join at {address!r} ({e}). A cluster with token "
                    "authentication (Ray's default for local clusters since 2.59) also needs "
                    "RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)",
                ) from None
        task = ray.remote(num_cpus=1)(_analyze_batch)
        config = IndexConfig(workers=1)
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        depth = in_flight or max(2, int(cpus) * 2)
        pending: deque[Any] = deque()
        for b in batches:
            items = [_payload(c, known.get(c.path), config) for c in b]
            pending.append(task.remote(model, items, config))
            if len(pending) >= depth:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())

    return run
