"""pgvector in the PostgreSQL store: which HNSW index the server's pgvector allows and how it
is built (``index_ddl``), templates enrolled one at a time staged outside the index and moved
into it by a background thread, and approximate search over the index (verified against the
store's consent and gallery, re-ranked in full precision). ``PgvectorMixin`` is this part of
``PostgresStore``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import GalleryError
from facelens.gallery.ann import AnnConfig
from facelens.gallery.protect import TemplateKey
from facelens.match.decide import Candidate

__all__ = [
    "HNSW_EF_CONSTRUCTION",
    "HNSW_M",
    "INDEXED_DIMS",
    "MIGRATE_LOCK",
    "PG_EF_SEARCH",
    "PgvectorFeatures",
    "PgvectorMixin",
    "index_ddl",
    "vector_text",
    "writable",
]

log = logging.getLogger(__name__)

MIGRATE_LOCK = 0x6D69_6772  # advisory lock key ("migr")
INDEXED_DIMS = (128,)  # dimensions with an HNSW index (dlib's ResNet)


def vector_text(e: NDArray[np.float32]) -> str:
    # float32 -> float64 repr is exact, and pgvector parses it back to the same float32
    return "[" + ",".join(map(repr, np.asarray(e, np.float32).astype(np.float64).tolist())) + "]"


def writable(conn: Any) -> None:
    """Back to the server's default transactions (read committed, read-write) on a pooled
    connection a snapshot read may have set otherwise."""
    conn.isolation_level = None
    conn.read_only = None


@dataclass(frozen=True)
class PgvectorFeatures:
    """What the server's pgvector offers and the store uses."""

    version: str
    halfvec: bool
    iterative_scan: bool


# The half-precision HNSW index's build and search parameters, chosen from the measured curves
# (docs/benchmarks.md, "pgvector 0.8"): at 1e5 identities m=32 / ef_construction=128 reaches
# recall@1 0.991-0.999 at ef_search 160 (p99 15-21 ms) in three builds, 0.984-0.992 at 100;
# m=16 / 64 needs ef_search 400 for 0.993 (p99 18.8 ms). The build takes 4x longer (130 s
# against 30 s at 1e5) and a third more memory. At 1e6 no setting reaches 0.99 within 20 ms.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
PG_EF_SEARCH = 160
INDEX_BUILD_MEMORY = "2GB"  # a million templates' graph (m=32, half precision) is ~0.7 GB
STAGED_MAX = 2_000  # staged templates a process keeps waiting before enrolment indexes itself
STAGED_BATCH = 32  # staged templates moved into the index per transaction (~0.1 s)
CLOSE_INDEX_WAIT_S = 600.0  # close() waits this long at most for the indexer


def index_ddl(features: PgvectorFeatures, ann: AnnConfig) -> list[str]:
    """Statements that leave exactly the HNSW index ``features`` call for (dlib's 128 values;
    other sizes are searched exactly). Sealed templates have no vector and are not indexed."""
    with_ = f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    if features.halfvec:
        return [
            "DROP INDEX IF EXISTS samples_embedding_128",
            "CREATE INDEX IF NOT EXISTS samples_half_128 ON samples USING hnsw "
            f"((embedding::halfvec(128)) halfvec_ip_ops) {with_} "
            "WHERE dim = 128 AND embedding IS NOT NULL",
        ]
    return [
        "DROP INDEX IF EXISTS samples_half_128",
        "CREATE INDEX IF NOT EXISTS samples_embedding_128 ON samples USING hnsw "
        f"((embedding::vector(128)) vector_ip_ops) {with_} WHERE dim = 128",
    ]


# the staged templates nearest a probe (exactly: they are few, found by their partial index);
# parameters: dim, probe, limit
_STAGED_NN = (
    "(SELECT s.identity_id, s.model, {col} FROM samples s "
    "WHERE s.staged IS NOT NULL AND s.dim = ? ORDER BY s.staged <#> ?::vector LIMIT ?)"
)


class PgvectorMixin:
    """The index, the staged templates and approximate search (see the module)."""

    ann: AnnConfig
    clock: Callable[[], datetime]
    features: PgvectorFeatures
    hnsw_ef_search: int
    _pool: Any
    _counts: dict[tuple[str, str], tuple[int, int, float]]
    _indexer: threading.Thread | None
    _indexer_lock: threading.Lock
    _indexer_wake: threading.Event
    _closing: threading.Event
    _backlog: int

    if TYPE_CHECKING:  # what the store supplies

        @property
        def key(self) -> TemplateKey | None: ...

        def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def transaction(self, bump: bool = True) -> AbstractContextManager[Any]: ...

        def _read(self) -> AbstractContextManager[Any]: ...

        def _search_read(self) -> AbstractContextManager[Any]: ...

        def _now(self) -> str: ...

        def generation(self) -> int: ...

    def staged_count(self) -> int:
        """Templates enrolled and not yet in the HNSW index (searched exactly meanwhile)."""
        return int(self.fetch("SELECT count(*) FROM samples WHERE staged IS NOT NULL")[0][0])

    def index_staged(self, batch: int = STAGED_BATCH) -> int:
        """Move up to ``batch`` staged templates into the indexed column (each one's HNSW
        insert happens here); how many moved. Rows another worker is moving are skipped."""
        with self._pool.connection() as conn:
            writable(conn)
            with conn.transaction():
                cur = conn.execute(
                    "UPDATE samples SET embedding = staged, staged = NULL WHERE id IN "
                    "(SELECT id FROM samples WHERE staged IS NOT NULL "
                    "LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (batch,),
                )
                return int(cur.rowcount)

    def _kick_indexer(self) -> None:
        with self._indexer_lock:
            if self._indexer is None or not self._indexer.is_alive():
                self._indexer = threading.Thread(
                    target=self._index_loop, name="facelens-pg-indexer", daemon=True
                )
                self._indexer.start()
        self._indexer_wake.set()

    def _index_loop(self) -> None:
        """Move staged templates into the index until none are left, then wait for more;
        after ``close`` began: until none are left, then stop."""
        while True:
            try:
                moved = self.index_staged()
            except Exception as e:  # the server went away, or the pool is closing
                if self._closing.is_set():
                    return
                log.warning("staged templates not indexed yet: %s", type(e).__name__)
                moved = 0
                self._indexer_wake.wait(5.0)
            if moved:
                self._backlog = max(0, self._backlog - moved)
                continue
            self._backlog = 0  # none left (rolled-back enrolments staged nothing)
            if self._closing.is_set():
                return
            self._indexer_wake.wait(1.0)
            self._indexer_wake.clear()

    def _features(self, wanted: str) -> PgvectorFeatures:
        if wanted not in ("auto", "legacy"):
            raise GalleryError(f"pgvector features are 'auto' or 'legacy', not {wanted!r}")
        row = self.fetch("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = tuple(int(p) for p in str(row[0][0]).split(".")[:3]) if row else (0, 0, 0)
        if version < (0, 5, 0):
            raise GalleryError(f"pgvector {'.'.join(map(str, version))} is too old: 0.5 or newer")
        auto = wanted == "auto"
        return PgvectorFeatures(
            version=".".join(map(str, version)),
            halfvec=auto and version >= (0, 7, 0),
            iterative_scan=auto and version >= (0, 8, 0),
        )

    def _ensure_indexes(self) -> None:
        """The HNSW index this server's pgvector answers best with (each made once; building
        one over a large table takes minutes, logged): half precision where pgvector has it,
        else full precision."""
        want = "samples_half_128" if self.features.halfvec else "samples_embedding_128"
        other = "samples_embedding_128" if self.features.halfvec else "samples_half_128"
        have = {
            r[0] for r in self.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'samples'")
        }
        if want in have and other not in have:
            return
        t0 = time.perf_counter()
        with self.transaction(bump=False) as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
            # a build over a large table: in memory and on the server's cores (pgvector
            # builds HNSW in parallel from 0.6); both only for this transaction
            db.execute("SELECT set_config('maintenance_work_mem', ?, true)", (INDEX_BUILD_MEMORY,))
            db.execute("SELECT set_config('max_parallel_maintenance_workers', '2', true)")
            for stmt in index_ddl(self.features, self.ann):
                db.execute(stmt)
        log.info(
            "PostgreSQL HNSW index %s ready (%.1f s; pgvector %s)",
            want,
            time.perf_counter() - t0,
            self.features.version,
        )

    def _count(self, gallery: str, model: str) -> int:
        """Samples of ``model`` in ``gallery`` (cached: recounted when the store changed and
        the last count is stale or near the exact/approximate boundary)."""
        gen = self.generation()
        key = (gallery, model)
        now = time.monotonic()
        cached = self._counts.get(key)
        if cached is not None:
            c_gen, n, t = cached
            far = n >= 2 * self.ann.min_samples or n < self.ann.min_samples // 2
            if c_gen == gen or (far and now - t < 10.0):
                return n
        with self._read() as db:
            n = int(
                db.execute(
                    "SELECT count(*) FROM samples s JOIN identities i ON i.id = s.identity_id "
                    "WHERE i.gallery = ? AND s.model = ?",
                    (gallery, model),
                ).fetchone()[0]
            )
        self._counts[key] = (gen, n, now)
        return n

    def _ann_search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int, start: bool
    ) -> list[list[Candidate]] | None:
        if self.key is not None:
            return None  # sealed templates: pgvector sees none; searched in this process
        total = self._count(gallery, model)
        if total < self.ann.min_samples:
            return None
        return [self._knn(gallery, model, v, k) for v in vectors]

    def _knn(self, gallery: str, model: str, probe: NDArray[np.float32], k: int) -> list[Candidate]:
        dim = int(probe.shape[0])
        q = vector_text(probe)
        indexed = dim in INDEXED_DIMS
        n = max(self.ann.candidates, 4 * k)
        verify = """
            SELECT i.id, i.name, -min(nn.d) AS score FROM nn
            JOIN identities i ON i.id = nn.identity_id
            WHERE nn.model = ? AND i.gallery = ?
              AND EXISTS (SELECT 1 FROM consents c WHERE c.identity_id = i.id
                          AND (c.expires_at IS NULL OR c.expires_at > ?))
            GROUP BY i.id, i.name ORDER BY score DESC, i.id LIMIT ?
        """
        now = self._now()
        rows: list[Any] = []
        if indexed and self.features.halfvec:
            rows = self._knn_half(gallery, model, q, k, n, now)
            indexed = False  # answered, or the exact search below is needed
        while indexed and n <= 1000:  # pgvector's largest ef_search
            with self._search_read() as db:
                db.execute(
                    "SELECT set_config('hnsw.ef_search', ?, true)",
                    (str(max(self.ann.ef_search, n)),),
                )
                rows = db.execute(
                    f"""
                    WITH nn AS MATERIALIZED (
                        (SELECT s.identity_id, s.model,
                               s.embedding::vector({dim}) <#> ?::vector({dim}) AS d
                        FROM samples s WHERE s.dim = {dim}
                        ORDER BY s.embedding::vector({dim}) <#> ?::vector({dim}) LIMIT ?)
                        UNION ALL {_STAGED_NN.format(col="s.staged <#> ?::vector AS d")})
                    {verify}""",
                    (q, q, n, q, dim, q, n, model, gallery, now, k),
                ).fetchall()
            if len(rows) >= k:
                break
            n *= 4
        if len(rows) < k:
            # too few survived the gallery/consent checks (or no index for this dimension):
            # search exactly, a sequential scan
            with self._search_read() as db:
                rows = db.execute(
                    f"""
                    WITH nn AS MATERIALIZED (
                        SELECT s.identity_id, s.model,
                               coalesce(s.embedding, s.staged) <#> ?::vector AS d
                        FROM samples s JOIN identities i ON i.id = s.identity_id
                        WHERE s.dim = {dim} AND s.model = ? AND i.gallery = ?)
                    {verify}""",
                    (q, model, gallery, model, gallery, now, k),
                ).fetchall()
        return [Candidate(r[0], r[1], float(r[2])) for r in rows]

    def _knn_half(self, gallery: str, model: str, q: str, k: int, n: int, now: str) -> list[Any]:
        """The ``n`` nearest samples by the half-precision HNSW index, checked (gallery,
        model, consent) and re-ranked by their full-precision templates, best per identity.
        When fewer than ``k`` identities survive the checks (the gallery is a small part of
        the database, or many consents lapsed): with iterative scans (pgvector 0.8) the
        checks move inside the index scan, which goes on until ``n`` samples pass them (up
        to ``hnsw.max_scan_tuples``); without, the candidate list grows. Still fewer than
        ``k``: the caller searches exactly."""
        checked = """
            SELECT i.id, i.name, max(-(nn.embedding <#> ?::vector)) AS score FROM nn
            JOIN identities i ON i.id = nn.identity_id
            WHERE nn.model = ? AND i.gallery = ?
              AND EXISTS (SELECT 1 FROM consents c WHERE c.identity_id = i.id
                          AND (c.expires_at IS NULL OR c.expires_at > ?))
            GROUP BY i.id, i.name ORDER BY score DESC, i.id LIMIT ?
        """
        rows: list[Any] = []
        while n <= 1000:
            with self._search_read() as db:
                db.execute(
                    "SELECT set_config('hnsw.ef_search', ?, true)",
                    (str(min(1000, max(self.hnsw_ef_search, n))),),
                )
                rows = db.execute(
                    f"""
                    WITH nn AS MATERIALIZED (
                        (SELECT s.identity_id, s.model, s.embedding FROM samples s
                        WHERE s.dim = 128 AND s.embedding IS NOT NULL
                        ORDER BY s.embedding::halfvec(128) <#> ?::halfvec(128) LIMIT ?)
                        UNION ALL {_STAGED_NN.format(col="s.staged AS embedding")})
                    {checked}""",
                    (q, n, 128, q, n, q, model, gallery, now, k),
                ).fetchall()
                if len(rows) >= k:
                    return rows
                if self.features.iterative_scan:
                    db.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                    filtered: list[Any] = db.execute(
                        f"""
                        WITH nn AS MATERIALIZED (
                            (SELECT s.identity_id, s.model, s.embedding FROM samples s
                            JOIN identities i ON i.id = s.identity_id
                            WHERE s.dim = 128 AND s.embedding IS NOT NULL AND s.model = ?
                              AND i.gallery = ?
                              AND EXISTS (SELECT 1 FROM consents c WHERE c.identity_id = i.id
                                          AND (c.expires_at IS NULL OR c.expires_at > ?))
                            ORDER BY s.embedding::halfvec(128) <#> ?::halfvec(128) LIMIT ?)
                            UNION ALL {_STAGED_NN.format(col="s.staged AS embedding")})
                        {checked}""",
                        (model, gallery, now, q, n, 128, q, n, q, model, gallery, now, k),
                    ).fetchall()
                    return filtered
            n *= 4
        return rows
