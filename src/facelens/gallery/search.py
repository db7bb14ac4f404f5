"""Search in a gallery store: exact search over a cached matrix of the searchable templates
(reloaded when the store's generation moves or a consent expires), the searchable size the
open-set rule needs, and the hook where a store answers large galleries approximately.

``SearchMixin`` is the part of ``SqlStore`` that searches; a store supplies ``_search_read``
(where search reads) and may supply ``_ann_search``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import GalleryFormatError
from facelens.gallery.contract import Db
from facelens.match.decide import Candidate, rank_identities

__all__ = ["SearchMatrix", "SearchMixin", "exact_search"]


@dataclass(frozen=True, eq=False)
class SearchMatrix:
    """Everything exact search needs for one gallery and model, loaded at once.

    Attributes:
        identity_ids: (I,) ids of searchable identities (valid consent, at least one sample).
        names: (I,) their names.
        owner: (S,) index into ``identity_ids`` of each sample row.
        vectors: (S, D) float32 unit vectors.
        generation: the store generation it was read at.
        valid_until: the earliest consent expiry among the identities (ISO), or None.
    """

    identity_ids: tuple[str, ...]
    names: tuple[str, ...]
    owner: NDArray[np.int64]
    vectors: NDArray[np.float32]
    generation: int
    valid_until: str | None


_BLAS: Any = None


def _one_blas_thread() -> AbstractContextManager[Any]:
    """BLAS limited to one thread: a few probes against a gallery are memory-bound, and
    OpenBLAS's threads spin against the inference threads of a busy process (measured:
    10k x 128 against one probe takes 12 ms with two threads under load, 0.5 ms with one)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def exact_search(m: SearchMatrix, vectors: NDArray[np.float32], k: int) -> list[list[Candidate]]:
    """Per probe row, the ``k`` identities of ``m`` with the most similar sample."""
    if len(m.identity_ids) == 0:
        return [[] for _ in range(len(vectors))]
    if len(vectors) <= 16:
        with _one_blas_thread():
            sims = np.asarray(vectors, np.float32) @ m.vectors.T
    else:
        sims = np.asarray(vectors, np.float32) @ m.vectors.T
    idx, scores = rank_identities(sims, m.owner, len(m.identity_ids), k)
    return [
        [
            Candidate(m.identity_ids[j], m.names[j], float(s))
            for j, s in zip(row_i, row_s, strict=True)
            if np.isfinite(s)
        ]
        for row_i, row_s in zip(idx, scores, strict=True)
    ]


class SearchMixin:
    """Search over the store's rows (see the module); ``SqlStore`` is one."""

    _EMB_SQL: str
    ann: Any
    clock: Callable[[], datetime]

    def _search_state(self) -> None:
        self._matrices: dict[tuple[str, str], SearchMatrix] = {}
        self._matrix_lock = threading.Lock()
        self._identity_counts: dict[str, tuple[int, int]] = {}
        self._sizes: dict[tuple[str, str], tuple[int, float, tuple[int, int]]] = {}

    if TYPE_CHECKING:  # what the store supplies

        def _read(self) -> AbstractContextManager[Db]: ...

        def _now(self) -> str: ...

        def generation(self) -> int: ...

        def _emb_value(self, stored: Any, dim: int) -> NDArray[np.float32]: ...

        def _forward(self, gallery: str, vectors: NDArray[np.float32]) -> NDArray[np.float32]: ...

    def _ann_search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int, start: bool
    ) -> list[list[Candidate]] | None:
        """Approximate search when this gallery is large (``start``: it has just been found
        large); None means search exactly."""
        return None

    def count_identities(self, gallery: str) -> int:
        """How many identities a gallery holds: remembered per gallery until the store's
        generation moves, so listing galleries costs one query, not one per identity."""
        generation = self.generation()
        with self._matrix_lock:
            hit = self._identity_counts.get(gallery)
        if hit is not None and hit[0] == generation:
            return hit[1]
        with self._read() as db:
            n = int(
                db.execute(
                    "SELECT count(*) FROM identities WHERE gallery = ?", (gallery,)
                ).fetchone()[0]
            )
        with self._matrix_lock:
            self._identity_counts[gallery] = (generation, n)
        return n

    def _search_read(self) -> AbstractContextManager[Db]:
        """Where search reads (a read replica, when the store has one and it is current)."""
        return self._read()

    # -- search -----------------------------------------------------------------------------

    _SEARCHABLE = """
        FROM identities i
        JOIN (SELECT identity_id,
                     MAX(CASE WHEN expires_at IS NULL THEN '9999' ELSE expires_at END) AS until
              FROM consents
              WHERE expires_at IS NULL OR expires_at > ?
              GROUP BY identity_id) c ON c.identity_id = i.id
        JOIN samples s ON s.identity_id = i.id
        WHERE i.gallery = ? AND s.model = ?
    """

    def search_matrix(self, gallery: str, model: str) -> SearchMatrix:
        """Samples of ``model`` of the identities that may be searched now (valid consent)."""
        now = self._now()
        with self._search_read() as db:
            gen = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            rows = db.execute(
                f"SELECT i.id, i.name, s.dim, {self._EMB_SQL}, c.until {self._SEARCHABLE} "
                "ORDER BY i.id, s.id",
                (now, gallery, model),
            ).fetchall()
        ids: list[str] = []
        names: list[str] = []
        owner = np.empty(len(rows), np.int64)
        dim = rows[0][2] if rows else 0
        vectors = np.empty((len(rows), dim), np.float32)
        until: str | None = None
        for j, (iid, name, d, stored, u) in enumerate(rows):
            if d != dim:
                raise GalleryFormatError(f"model {model!r} has samples of {d} and {dim} values")
            if not ids or ids[-1] != iid:
                ids.append(iid)
                names.append(name)
                if u != "9999" and (until is None or u < until):
                    until = u
            owner[j] = len(ids) - 1
            vectors[j] = self._emb_value(stored, dim)
        vectors.setflags(write=False)
        return SearchMatrix(tuple(ids), tuple(names), owner, vectors, gen, until)

    def _matrix(self, gallery: str, model: str) -> SearchMatrix:
        """The cached exact-search matrix, reloaded when the store or a consent changed."""
        gen = self.generation()
        now = self._now()
        with self._matrix_lock:
            m = self._matrices.get((gallery, model))
            if m is None or m.generation != gen or (m.valid_until and m.valid_until <= now):
                m = self.search_matrix(gallery, model)
                self._matrices[(gallery, model)] = m
            return m

    def search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int
    ) -> list[list[Candidate]]:
        """Per probe row, the ``k`` most similar searchable identities (best sample each).

        Exact below ``ann.min_samples`` samples of the model in the gallery, approximate
        (and verified against the store) above.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if len(vectors) == 0:
            return []
        vectors = self._forward(gallery, vectors)  # into the gallery's own space
        found = self._ann_search(gallery, model, vectors, k, start=False)
        if found is not None:
            return found
        m = self._matrix(gallery, model)
        if m.vectors.shape[1] and m.vectors.shape[1] != vectors.shape[1]:
            raise GalleryFormatError(
                f"probes have {vectors.shape[1]} values, the gallery's {model!r} samples "
                f"{m.vectors.shape[1]}"
            )
        if len(m.owner) >= self.ann.min_samples:
            found = self._ann_search(gallery, model, vectors, k, start=True)
            if found is not None:
                with self._matrix_lock:
                    self._matrices.pop((gallery, model), None)
                return found
        return exact_search(m, vectors, k)

    # how long a searchable size is trusted while the gallery does not change: consents
    # expire without a write, so the count is taken again at least this often (the open-set
    # threshold moves with the logarithm of the gallery's size: a minute's expiries are noise)
    SIZE_TTL_S = 60.0

    def searchable_size(self, gallery: str, model: str) -> tuple[int, int]:
        """(identities, samples) that search would consider now for ``model``: remembered
        until the store's generation moves or ``SIZE_TTL_S`` passes (counting them with their
        consents took 36 ms per identify at 10,000 identities)."""
        key = (gallery, model)
        generation = self.generation()
        at = self.clock().timestamp()  # the store's clock: a test's moves the expiry too
        with self._matrix_lock:
            hit = self._sizes.get(key)
        if hit is not None and hit[0] == generation and 0 <= at - hit[1] < self.SIZE_TTL_S:
            return hit[2]
        with self._read() as db:
            row = db.execute(
                f"SELECT count(DISTINCT i.id), count(*) {self._SEARCHABLE}",
                (self._now(), gallery, model),
            ).fetchone()
        size = (int(row[0]), int(row[1]))
        with self._matrix_lock:
            self._sizes[key] = (generation, at, size)
        return size
