"""Approximate search for large embedded galleries: a faiss HNSW graph over the samples.

The index holds vectors and the store's sample sequence numbers (``sample_seq.seq``, which
only grow); nothing else. It is kept in step with the store incrementally: samples with a
sequence number above the index's highest are added, and the store's tombstones (one per
deleted sample, stamped with the generation it was deleted at) mark nodes dead, so they are
never returned (HNSW graphs cannot drop nodes; dead ones are skipped by a selector, and the
graph is rebuilt when more than a quarter of it is dead). Every candidate is then checked
against the store (the sample still exists, its identity's consent is valid now), so a stale
or lost index can make search slower, never wrong: a deleted identity cannot come back.

The index is saved next to the SQLite file (``<file>.ann/``) after it is built and every
``save_every`` changes, and on close; when opened, it catches up from the store.

A search visits a few thousand vectors scattered over the whole index (0.9 GB at a million
samples), so most of its time goes to address translation misses; on Linux the index's two
big arrays (vectors and links) are therefore backed with 2 MiB pages where the kernel allows
(``madvise``; at a million identities p50 3.6 -> 2.8 ms, see docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import GalleryKeyError
from facelens.files import atomic_write
from facelens.gallery.protect import TemplateKey

__all__ = ["AnnConfig", "HnswIndex"]

log = logging.getLogger(__name__)


def _faiss() -> Any:
    """faiss, imported when first needed (its SWIG types are opaque to the type checker)."""
    import faiss

    return faiss


_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # linux/mman.h
_HUGE = 2 << 20


def _madvise() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def huge_pages(regions: list[tuple[int, int]]) -> int:
    """Ask Linux to back memory regions ``(address, bytes)`` with transparent huge pages, now
    (``MADV_COLLAPSE``, Linux 6.1+) or as khugepaged gets to them (``MADV_HUGEPAGE``). Only
    whole 2 MiB pages inside each region are advised; where the kernel refuses (another OS,
    huge pages off) nothing changes. Returns the bytes advised."""
    madvise = _madvise()
    if madvise is None:
        return 0
    done = 0
    for addr, size in regions:
        start = (addr + _HUGE - 1) & ~(_HUGE - 1)
        end = (addr + size) & ~(_HUGE - 1)
        if end - start < _HUGE:
            continue
        if madvise(start, end - start, _MADV_HUGEPAGE) != 0:
            continue
        done += end - start
        if madvise(start, end - start, _MADV_COLLAPSE) != 0:
            log.debug("MADV_COLLAPSE refused (errno %d): left to khugepaged", ctypes.get_errno())
    return done


@dataclass(frozen=True)
class AnnConfig:
    """When and how the embedded store searches approximately.

    Attributes:
        min_samples: galleries with fewer samples (of one model) are searched exactly: below
            this size exact search is as fast and exact (see docs/benchmarks.md, "scale").
        m: HNSW links per node (48: on LFW-shaped embeddings, which crowd into a narrow
            cone, a new sample of an enrolled person often has no neighbour that leads to
            it; more links make such targets reachable. At a million identities and
            ef_search 256, m=32 / ef_construction=80 found exact search's top identity for
            96.5% of probes, m=48 / 128 for 99.4%, for twice the build time).
        ef_construction: candidate list size while building.
        ef_search: candidate list size while searching (recall against speed; at a million
            identities: 192 -> 98.6%, 224 -> 99.3%, 256 -> 99.4%, 320 -> 99.6%, p50 about
            3.0, 3.5, 3.7, 4.2 ms; ``benchmarks/scale_ef.py``).
        candidates: samples taken from the graph per probe before grouping by identity.
        save_every: changes (added or deleted samples) after which the index is saved again.
        persist: save the index next to the SQLite file (off: rebuilt per process).
        huge_pages: back the index with 2 MiB pages where Linux allows (see the module).
        storage: how the graph holds the vectors it compares: ``fp16`` (half precision,
            half the memory traffic of a search; the candidates are re-ranked with their
            stored full-precision templates, so scores stay exact) or ``flat`` (float32).
            At a million identities fp16 made the graph search about a quarter faster at
            the same recall (docs/benchmarks.md, "Gallery scale"). An index saved with the
            other storage is used as it is until it is next rebuilt.
    """

    min_samples: int = 50_000
    m: int = 48
    ef_construction: int = 128
    ef_search: int = 224
    candidates: int = 64
    save_every: int = 20_000
    persist: bool = True
    huge_pages: bool = True
    storage: str = "fp16"

    def __post_init__(self) -> None:
        if self.storage not in ("fp16", "flat"):
            raise ValueError(f"unknown ANN storage {self.storage!r}: fp16 or flat")


class HnswIndex:
    """Inner-product HNSW over unit vectors, labelled with sample sequence numbers.

    Example:
        >>> v = np.eye(4, dtype=np.float32)
        >>> ix = HnswIndex(4, AnnConfig(m=8))
        >>> ix.add(np.array([10, 11, 12, 13]), v)
        >>> ix.remove(np.array([10]))  # how many it removed
        1
        >>> sorted(ix.search(v[:1], 3)[0][0].tolist())  # seq 10 is dead: never returned
        [11, 12, 13]
    """

    def __init__(self, dim: int, config: AnnConfig) -> None:
        faiss = _faiss()

        self.dim = dim
        self.config = config
        if config.storage == "fp16":
            self.index = faiss.IndexHNSWSQ(
                dim, faiss.ScalarQuantizer.QT_fp16, config.m, faiss.METRIC_INNER_PRODUCT
            )
        else:
            self.index = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = config.ef_construction
        # whether the graph's scores are full precision (float32), or need an exact re-rank
        self.exact_scores = config.storage == "flat"
        self.seq = np.empty(0, np.int64)  # node -> sample seq, ascending
        self.alive = np.empty(0, bool)
        self._live = 0
        self.generation = -1
        self.changes_since_save = 0
        self._bitmap: Any = None  # faiss selector over live nodes, None when all are live
        self._advised: tuple[tuple[int, ...], int] = ((), 0)  # buffers, bytes last advised

    @property
    def size(self) -> int:
        """Live samples."""
        return self._live

    @property
    def max_seq(self) -> int:
        return int(self.seq[-1]) if len(self.seq) else 0

    @property
    def dead_fraction(self) -> float:
        return 1.0 - self.size / len(self.alive) if len(self.alive) else 0.0

    def add(self, seqs: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add samples; their sequence numbers must be above every one already held."""
        if len(seqs) == 0:
            return
        seqs = np.asarray(seqs, np.int64)
        if seqs[0] <= self.max_seq or np.any(np.diff(seqs) <= 0):
            raise ValueError("sample sequence numbers must grow")
        self.index.add(np.ascontiguousarray(vectors, np.float32))
        self.seq = np.concatenate([self.seq, seqs])
        self.alive = np.concatenate([self.alive, np.ones(len(seqs), bool)])
        self._live += len(seqs)
        self.changes_since_save += len(seqs)
        self._bitmap = None if self.alive.all() else self._selector()
        self._advise()

    def _advise(self) -> None:
        """Huge pages for the vectors and links, again whenever they moved or grew a lot."""
        if not self.config.huge_pages:
            return
        faiss = _faiss()

        # (vector, bytes per item): the flat vectors' bytes and the int32 links
        arrays = (
            (faiss.downcast_index(self.index.storage).codes, 1),
            (self.index.hnsw.neighbors, 4),
        )
        regions = [
            (int(faiss.rev_swig_ptr(a.data(), 1).ctypes.data), a.size() * item)
            for a, item in arrays
            if a.size()
        ]
        where, size = tuple(r[0] for r in regions), sum(r[1] for r in regions)
        if where == self._advised[0] and size < self._advised[1] + 64 * _HUGE:
            return
        t0 = time.perf_counter()
        done = huge_pages(regions)
        self._advised = (where, size)
        if done:
            log.debug(
                "huge pages for %d MiB of ANN index (%.2f s)",
                done >> 20,
                time.perf_counter() - t0,
            )

    def remove(self, seqs: NDArray[np.int64]) -> int:
        """Mark samples dead; unknown sequence numbers are ignored. Returns how many died."""
        if len(seqs) == 0 or len(self.seq) == 0:
            return 0
        pos = np.searchsorted(self.seq, np.asarray(seqs, np.int64))
        pos = pos[pos < len(self.seq)]
        pos = pos[np.isin(self.seq[pos], seqs)]
        pos = pos[self.alive[pos]]
        self.alive[pos] = False
        self._live -= len(pos)
        self.changes_since_save += len(pos)
        if len(pos):
            self._bitmap = self._selector()
        return len(pos)

    def _selector(self) -> Any:
        faiss = _faiss()

        bits = np.packbits(self.alive, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        sel._bits = bits  # keep the buffer alive as long as the selector
        return sel

    def search(
        self, vectors: NDArray[np.float32], n: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The ``n`` most similar live samples per probe: (seqs, scores), -1 / -inf padded."""
        faiss = _faiss()

        q = np.ascontiguousarray(vectors, np.float32)
        if len(self.seq) == 0:
            return np.full((len(q), n), -1, np.int64), np.full((len(q), n), -np.inf, np.float32)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.config.ef_search, n)
        if self._bitmap is not None:
            params.sel = self._bitmap
        scores, nodes = self.index.search(q, n, params=params)
        if nodes.min() >= 0:  # the common case: n found for every probe
            return self.seq[nodes], scores
        seqs = np.where(nodes >= 0, self.seq[np.clip(nodes, 0, None)], -1)
        return seqs, np.where(nodes >= 0, scores, -np.inf).astype(np.float32)

    # -- persistence ----------------------------------------------------------------------------

    @staticmethod
    def files(folder: Path, gallery: str, model: str) -> tuple[Path, Path]:
        tag = hashlib.sha256(f"{gallery}\0{model}".encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", model)[:40]
        base = folder / f"{safe}-{tag}"
        return base.with_suffix(".faiss"), base.with_suffix(".json")

    def save(
        self,
        folder: Path,
        gallery: str,
        model: str,
        store_id: str,
        key: TemplateKey | None = None,
    ) -> None:
        """Write the index atomically (a crash leaves the previous one); sealed with ``key``
        when the store's templates are."""
        faiss = _faiss()

        folder.mkdir(parents=True, exist_ok=True)
        index_path, meta_path = self.files(folder, gallery, model)
        t0 = time.perf_counter()
        # temporary names of this writer's own: a rebuild saving in the background and a
        # search thread saving the index it keeps up to date never write the same file
        # (facelens.files.atomic_write: a temporary file of each writer's own)
        data = faiss.serialize_index(self.index).tobytes()
        if key is not None:  # the graph holds the gallery's templates: sealed as in the store
            data = key.seal(data, b"ann-index:" + gallery.encode())
        labels = index_path.with_suffix(".labels.npz")
        buf = io.BytesIO()
        np.savez(buf, seq=self.seq, alive=self.alive)
        meta = {
            "store_id": store_id,
            "gallery": gallery,
            "model": model,
            "dim": self.dim,
            "generation": self.generation,
            "nodes": len(self.seq),
            "m": self.config.m,
            "storage": "flat" if self.exact_scores else "fp16",
        }
        atomic_write(index_path, data)
        atomic_write(labels, buf.getvalue())
        atomic_write(meta_path, json.dumps(meta))
        self.changes_since_save = 0
        log.info(
            "saved ANN index %s (%d nodes) in %.1f s",
            index_path.name,
            len(self.seq),
            time.perf_counter() - t0,
        )

    @classmethod
    def load(
        cls,
        folder: Path,
        gallery: str,
        model: str,
        store_id: str,
        config: AnnConfig,
        key: TemplateKey | None = None,
    ) -> HnswIndex | None:
        """The saved index, or None when there is none or it belongs to another store."""
        index_path, meta_path = cls.files(folder, gallery, model)
        labels = index_path.with_suffix(".labels.npz")
        try:
            meta = json.loads(meta_path.read_text())
            faiss = _faiss()  # only now: a small gallery has no index, and faiss costs 0.1 s
            if (meta.get("store_id"), meta.get("gallery"), meta.get("model"), meta.get("m")) != (
                store_id,
                gallery,
                model,
                config.m,
            ):
                log.info("ignoring ANN index %s: made for another store or settings", index_path)
                return None
            ix = cls(int(meta["dim"]), config)
            if key is None:
                ix.index = faiss.read_index(str(index_path))
            else:
                data = key.open(index_path.read_bytes(), b"ann-index:" + gallery.encode())
                ix.index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
            ix.exact_scores = isinstance(faiss.downcast_index(ix.index.storage), faiss.IndexFlat)
            with np.load(labels) as z:
                ix.seq, ix.alive = z["seq"].astype(np.int64), z["alive"].astype(bool)
            ix._live = int(ix.alive.sum())
            if ix.index.ntotal != len(ix.seq) or len(ix.seq) != int(meta["nodes"]):
                log.warning("ignoring ANN index %s: its parts do not agree", index_path)
                return None
            ix.generation = int(meta["generation"])
            ix._bitmap = None if ix.alive.all() else ix._selector()
            ix._advise()
            return ix
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, RuntimeError, GalleryKeyError) as e:
            log.warning("ignoring unreadable ANN index %s (%s)", index_path, e)
            return None
