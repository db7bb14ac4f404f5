"""Indexing: files -> faces (box, landmarks, quality, templates) -> the archive, resumably.

``analyze_file`` is the work on one file, the same wherever it runs (a thread here, a Ray
task on another machine: ``facelens.archive.distributed``). ``Indexer`` decides which files
need it (new, or changed in size, time and then content), runs it on ``workers`` threads,
each with its own pipeline (the decoders and ONNX Runtime release the GIL, so two threads
keep two cores busy), and writes each batch of files in one transaction as it completes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.archive.scan import Candidate, scan
from facelens.archive.store import Archive, FileState
from facelens.decode.image import DecodeConfig, decode_image, read_bounded
from facelens.errors import FacelensError, InputError

log = logging.getLogger(__name__)

__all__ = ["FaceRecord", "FileResult", "IndexConfig", "IndexSummary", "Indexer", "analyze_file"]


@dataclass(frozen=True)
class IndexConfig:
    """How an archive is indexed.

    Attributes:
        workers: threads, each with its own pipeline (default: one per core).
        batch: files per transaction (a run killed mid-way loses at most the batches in
            flight, ``workers + 1`` of them).
        video_every_s: with videos, seconds between the frames looked at.
        video_max_frames: frames looked at per video, at most.
        decode: limits on each file (bytes, pixels).
    """

    workers: int = field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)))
    batch: int = 8
    video_every_s: float = 2.0
    video_max_frames: int = 300
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        if self.workers < 1 or self.batch < 1:
            raise ValueError("workers and batch must be at least 1")
        if not self.video_every_s > 0 or self.video_max_frames < 1:
            raise ValueError("video_every_s must be > 0 and video_max_frames >= 1")


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """One face found in a file, ready to store (the archive gives it its id)."""

    frame: int
    n: int
    time_s: float | None
    box: tuple[float, float, float, float]
    landmarks: bytes | None
    quality: dict[str, float]
    templates: dict[str, NDArray[np.float32]]


@dataclass(frozen=True, eq=False)
class FileResult:
    """What indexing one file gave: its faces, or why it has none (``error``), or that its
    content is what was indexed before (``unchanged``: only its time is updated)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    kind: str
    faces: tuple[FaceRecord, ...] = ()
    error: str | None = None
    unchanged: bool = False


@dataclass(frozen=True)
class IndexSummary:
    """What a run did.

    Attributes:
        seen: files found under the roots.
        indexed: files (re)analysed this run; ``changed``: of them, ones indexed before.
        unchanged: files skipped because their size and time (or content) are as indexed.
        removed: files gone from disk, forgotten with their faces.
        faces: faces stored this run.
        failed: (path, reason) of files that could not be read this run.
        seconds: wall time.
    """

    seen: int
    indexed: int
    changed: int
    unchanged: int
    removed: int
    faces: int
    failed: tuple[tuple[str, str], ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        photos = self.indexed / self.seconds if self.seconds > 0 else 0.0
        return {
            "seen": self.seen,
            "indexed": self.indexed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "faces": self.faces,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "seconds": round(self.seconds, 3),
            "files_per_s": round(photos, 2),
        }


def _faces_of(
    pipeline: Any, image: NDArray[np.uint8], frame: int, t: float | None
) -> list[FaceRecord]:
    a = pipeline.analyze(image, embed=False)
    if len(a.faces) == 0:
        return []
    per_model = pipeline.templates(pipeline.views(image, a.faces, a.chips))
    out = []
    for n in range(len(a.faces)):
        lm = a.faces.landmarks
        out.append(
            FaceRecord(
                frame=frame,
                n=n,
                time_s=t,
                box=tuple(float(v) for v in a.faces.xyxy[n]),  # type: ignore[arg-type]
                landmarks=None if lm is None else np.asarray(lm[n], "<f4").tobytes(),
                quality=a.quality.row(n),
                templates={e.model: e.vectors[n] for e in per_model},
            )
        )
    return out


def _video_faces(pipeline: Any, path: str, config: IndexConfig) -> list[FaceRecord]:
    from facelens.decode.video import VideoConfig, VideoSource

    out: list[FaceRecord] = []
    looked, next_t = 0, 0.0
    with VideoSource(path, VideoConfig(live=False, reconnect=False)) as src:
        for fr in src.frames():
            if fr.media_time + 1e-6 < next_t:
                continue
            h, w = fr.image.shape[:2]
            if h * w > config.decode.max_pixels:
                raise InputError(path, f"frames of {w}x{h} are over the pixel limit")
            out.extend(_faces_of(pipeline, fr.image, fr.index, fr.media_time))
            looked += 1
            next_t = fr.media_time + config.video_every_s
            if looked >= config.video_max_frames:
                break
    return out


def analyze_file(
    pipeline: Any,
    c: Candidate,
    data: bytes | None = None,
    known: FileState | None = None,
    config: IndexConfig | None = None,
) -> FileResult:
    """Every face of one file. ``data``: its bytes, when already read (a distributed worker
    gets them from the driver); ``known``: what the archive has of it (its content hash
    unchanged: nothing is analysed). Never raises for a bad file: ``FileResult.error``."""
    config = config or IndexConfig()
    try:
        if c.kind == "video":
            sha = _hash_file(c.path)
        else:
            if data is None:
                data, _ = read_bounded(c.path, config.decode)
            sha = hashlib.sha256(data).hexdigest()
        if known is not None and known.sha256 == sha:
            return FileResult(c.path, c.size, c.mtime_ns, sha, c.kind, unchanged=True)
        if c.kind == "video":
            faces = _video_faces(pipeline, c.path, config)
        else:
            image, _ = decode_image(data, config.decode)  # type: ignore[arg-type]
            faces = _faces_of(pipeline, image, 0, None)
        return FileResult(c.path, c.size, c.mtime_ns, sha, c.kind, tuple(faces))
    except (FacelensError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e.__class__.__name__
        if isinstance(e, OSError):
            reason = e.strerror or "unreadable"
        return FileResult(c.path, c.size, c.mtime_ns, "", c.kind, error=str(reason)[:200])
    except Exception:  # a decoder's own failure on a hostile file must not end the run
        log.exception("could not analyse %s", c.path)
        return FileResult(c.path, c.size, c.mtime_ns, "", c.kind, error="could not be analysed")


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _batches(items: Sequence[Candidate], n: int) -> Iterator[Sequence[Candidate]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


Progress = Callable[[int, int, int], None]  # (files done, files to do, faces so far)
# (files seen, files to analyse, paths to forget, what the archive knew)
Plan = tuple[list[Candidate], list[Candidate], list[str], dict[str, FileState]]
Runner = Callable[
    [Sequence[Sequence[Candidate]], dict[str, FileState]], Iterable[Sequence[FileResult]]
]


class Indexer:
    """Index folders into an archive.

    Args:
        archive: where the faces go.
        make_pipeline: a new ``facelens.pipeline.Pipeline`` (one per worker thread).
        config: workers, batch size, video sampling, limits.
        clock: the time written with each file (ISO 8601).
    """

    def __init__(
        self,
        archive: Archive,
        make_pipeline: Callable[[], Any],
        config: IndexConfig | None = None,
        clock: Callable[[], str] | None = None,
    ) -> None:
        self.archive, self.make_pipeline = archive, make_pipeline
        self.config = config or IndexConfig()
        self.clock = clock or (lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._local = threading.local()

    def plan(self, roots: Sequence[str | Path], videos: bool = False) -> Plan:
        """(files seen, files to analyse, paths to forget, what the archive knows)."""
        known = self.archive.files()
        seen = list(scan(roots, videos))
        todo = []
        for c in seen:
            k = known.get(c.path)
            if k is None or (k.size, k.mtime_ns) != (c.size, c.mtime_ns):
                todo.append(c)
        present = {c.path for c in seen}
        under = [os.path.abspath(os.path.expanduser(str(r))) for r in roots]
        gone = [
            p
            for p in known
            if p not in present
            and any(p == u or p.startswith(u.rstrip(os.sep) + os.sep) for u in under)
        ]
        return seen, todo, gone, known

    def run(
        self,
        roots: Sequence[str | Path],
        videos: bool = False,
        progress: Progress | None = None,
        runner: Runner | None = None,
        plan: Plan | None = None,
    ) -> IndexSummary:
        """Index ``roots``: new and changed files analysed, deleted ones forgotten.
        ``runner``: where the analysis runs (default: this process's threads); ``plan``:
        ``Indexer.plan``'s answer, when already asked (to size a progress bar)."""
        t0 = time.perf_counter()
        seen, todo, gone, known = plan or self.plan(roots, videos)
        if gone:
            self.archive.forget(gone)
        done = faces = changed = unchanged = 0
        failed: list[tuple[str, str]] = []
        for results in self._runs(todo, known, runner):
            faces += self.archive.write(results, self.clock())
            for r in results:
                if r.unchanged:
                    unchanged += 1
                elif r.error:
                    failed.append((r.path, r.error))
                elif r.path in known:
                    changed += 1
            done += len(results)
            if progress:
                progress(done, len(todo), faces)
        skipped = len(seen) - len(todo)
        return IndexSummary(
            seen=len(seen),
            indexed=done - unchanged,
            changed=changed,
            unchanged=skipped + unchanged,
            removed=len(gone),
            faces=faces,
            failed=tuple(failed),
            seconds=time.perf_counter() - t0,
        )

    def _runs(
        self, todo: Sequence[Candidate], known: dict[str, FileState], runner: Runner | None
    ) -> Iterator[Sequence[FileResult]]:
        """The results of every batch: photos on ``runner`` (default: this process's
        threads); videos always here (a distributed runner ships photos' bytes, and a video
        may be gigabytes)."""
        photos = [c for c in todo if c.kind != "video" or runner is None]
        videos = [c for c in todo if c.kind == "video" and runner is not None]
        yield from (runner or self._threads)(list(_batches(photos, self.config.batch)), known)
        if videos:
            yield from self._threads(list(_batches(videos, self.config.batch)), known)

    def _pipeline(self) -> Any:
        p = getattr(self._local, "pipeline", None)
        if p is None:
            p = self._local.pipeline = self.make_pipeline()
        return p

    def _work(self, batch: Sequence[Candidate], known: dict[str, FileState]) -> list[FileResult]:
        p = self._pipeline()
        return [analyze_file(p, c, None, known.get(c.path), self.config) for c in batch]

    def _threads(
        self, batches: Sequence[Sequence[Candidate]], known: dict[str, FileState]
    ) -> Iterator[list[FileResult]]:
        """Batches analysed on ``workers`` threads, yielded in order, at most
        ``workers + 1`` in flight (memory stays bounded however large the archive)."""
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="index") as pool:
            pending: deque[Future[list[FileResult]]] = deque()
            it = iter(batches)
            for b in it:
                pending.append(pool.submit(self._work, b, known))
                if len(pending) > self.config.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
