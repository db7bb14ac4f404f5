"""The PostgreSQL + pgvector gallery store: for galleries shared by several worker processes
or machines, and for millions of identities.

Same contract and rules as the SQLite store (``facelens.gallery.sql``). Differences:

* Connections come from a pool; every write transaction first takes one transaction-scoped
  advisory lock, so writes from any number of processes are serialised exactly like SQLite's
  ``BEGIN IMMEDIATE`` (an enrolment racing another of the same name adds to it instead of
  creating a duplicate; a deletion racing another finds nothing to delete).
* Embeddings are pgvector ``vector`` columns; an HNSW index over ``embedding::vector(128)``
  (inner product) answers search once a gallery holds ``AnnConfig.min_samples`` samples. Below
  that, search is exact over a cached matrix, as in SQLite.
* The schema is versioned in ``facelens_migrations``; migrations run under an advisory lock,
  so several workers starting at once migrate once.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from facelens.errors import (
    GalleryError,
    GalleryFormatError,
    GalleryKeyError,
    MissingDependencyError,
)
from facelens.gallery.ann import AnnConfig
from facelens.gallery.codec import check_key
from facelens.gallery.contract import Db
from facelens.gallery.imports import ImportRow
from facelens.gallery.pgvector import (
    CLOSE_INDEX_WAIT_S,
    INDEXED_DIMS,
    MIGRATE_LOCK,
    PG_EF_SEARCH,
    STAGED_MAX,
    PgvectorMixin,
    vector_text,
    writable,
)
from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import Identity, Sample
from facelens.gallery.schema import POSTGRESQL
from facelens.gallery.sql import SqlStore, utc_now

__all__ = ["PG_SCHEMA_VERSION", "PostgresStore"]

log = logging.getLogger(__name__)

_WRITE_LOCK = 0x6661_6365  # advisory lock key ("face"; "migr": pgvector.MIGRATE_LOCK)

PG_SCHEMA_VERSION = len(POSTGRESQL)


def _binary_vectors(conn: Any) -> int:
    """pgvector's binary input (``vector_recv``: dimensions, a reserved 0, then big-endian
    float32 values) for numpy arrays on this connection; returns the type's oid."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise GalleryError("the vector extension is not installed in this database")

    class VectorBinary(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            v = np.ascontiguousarray(obj, dtype=">f4")
            return struct.pack(">HH", v.size, 0) + v.tobytes()

    conn.adapters.register_dumper(np.ndarray, VectorBinary)
    return int(info.oid)


# the write lock and the generation bump: one round trip for both (no parameters: the simple
# protocol takes two statements at once; in pipeline mode they are sent one after the other)
_LOCK = f"SELECT pg_advisory_xact_lock({_WRITE_LOCK})"
_BUMP = "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation'"
_LOCK_AND_BUMP = f"{_LOCK}; {_BUMP}"


@contextmanager
def _snapshot(conn: Any) -> Iterator[None]:
    """A read-only transaction on one snapshot, begun in one round trip
    (``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY``)."""
    from psycopg import IsolationLevel

    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction():
        yield


class _Db:
    """A connection that takes the ``?`` placeholders the shared SQL uses."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))


class PostgresStore(PgvectorMixin, SqlStore):
    """The PostgreSQL + pgvector gallery store. Safe to share between threads and processes.

    Args:
        url: ``postgresql://user:password@host:port/database`` (or with ``?host=/socket/dir``).
        clock: the time source (consent validity, record times).
        ann: ``min_samples`` is the gallery size from which the HNSW index answers; ``ef_search``
            and ``candidates`` as for SQLite.
        pool_size: connections kept per process.
        pgvector: ``auto`` uses what the server's pgvector offers (from 0.7: an HNSW index
            over half-precision templates, re-ranked in full precision; from 0.8: iterative
            index scans, so gallery and consent filters never starve a search); ``legacy``
            uses only what pgvector 0.5 had (a full-precision HNSW index, filters after it).
        read_replica: a hot standby of the same database (``pg_basebackup -R``, streaming
            replication): searches read there, everything else on the primary. An erasure
            or consent withdrawal returns only once the replica has applied it, or, if it
            does not within ``replica_wait_s``, once every worker is sure to search the
            primary until it has (a fence in the primary that a search checks). A replica
            that is behind the fence or unreachable is skipped, with a logged warning.
        ef_search: the half-precision index's candidate list while searching (default
            ``PG_EF_SEARCH``); the full-precision (legacy) index uses ``ann.ef_search``.
        stage_templates: a template enrolled one at a time is stored at once outside the
            HNSW index (searched exactly, as found) and moved into it by a background thread
            of this process, so enrolment does not wait for the graph's update (most of an
            enrolment's time). ``close`` waits until this process's staged templates are
            indexed; any left by a process that died are indexed by the next store opened.
    """

    def __init__(
        self,
        url: str,
        clock: Callable[[], datetime] | None = None,
        ann: AnnConfig | None = None,
        pool_size: int = 4,
        key: TemplateKey | None = None,
        pgvector: str = "auto",
        read_replica: str | None = None,
        replica_wait_s: float = 5.0,
        ef_search: int | None = None,
        stage_templates: bool = True,
    ) -> None:
        super().__init__(clock or utc_now, ann or AnnConfig(), key)
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise MissingDependencyError(
                "psycopg", "the PostgreSQL store", "pip install 'facelens[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.location = url
        self._counts: dict[tuple[str, str], tuple[int, int, float]] = {}
        self.read_replica = read_replica
        self.hnsw_ef_search = ef_search or PG_EF_SEARCH
        self.replica_wait_s = replica_wait_s
        self._replica: Any = None
        self._replica_warned = 0.0
        self.replica_reads = self.primary_reads = 0  # searches served by each (for tests)
        self.stage_templates = stage_templates
        self._staged_written = False
        # staged by this process and not yet indexed (about: enrolments rolled back count
        # until the indexer finds none left); past ``staged_max`` enrolment updates the graph
        # itself, so a flood of enrolments cannot make every search scan a long staged list
        self._backlog = 0
        self.staged_max = STAGED_MAX
        self._indexer: threading.Thread | None = None
        self._indexer_lock = threading.Lock()
        self._indexer_wake = threading.Event()
        self._closing = threading.Event()
        try:  # one direct connection first: a wrong URL fails at once, with the reason
            psycopg.connect(url, connect_timeout=10).close()
            self._pool = ConnectionPool(
                url, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=False
            )
            self._pool.open(wait=True, timeout=15)
        except Exception as e:  # psycopg_pool.PoolTimeout, OperationalError
            raise GalleryError(f"cannot connect to {self._redacted()}: {e}") from None
        if read_replica:
            try:
                psycopg.connect(read_replica, connect_timeout=10).close()
            except Exception as e:
                self._pool.close()
                raise GalleryError(f"cannot connect to the read replica: {e}") from None
            self._replica = ConnectionPool(
                read_replica,
                min_size=0,
                max_size=pool_size,
                kwargs={"autocommit": True, "connect_timeout": 2},
                open=True,
            )
        try:
            self._migrate()
            self.store_id = self.fetch("SELECT value FROM meta WHERE key = 'store_id'")[0][0]
            check_key(self)
            self._fill_name_keys()
            self.features = self._features(pgvector)
            self._ensure_indexes()
            if self.fetch("SELECT EXISTS (SELECT 1 FROM samples WHERE staged IS NOT NULL)")[0][0]:
                self._kick_indexer()  # left by a process that stopped before indexing them
        except BaseException:
            self._closing.set()
            self._pool.close()
            raise

    def _redacted(self) -> str:
        import re

        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", self.location)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Index what this process staged (waiting up to ``CLOSE_INDEX_WAIT_S``), then close."""
        self._closing.set()
        self._indexer_wake.set()
        if self._indexer is not None:
            self._indexer.join(CLOSE_INDEX_WAIT_S)
        self._pool.close()
        if self._replica is not None:
            self._replica.close()

    # -- the read replica -----------------------------------------------------------------------

    def _warn_replica(self, why: str) -> None:
        now = time.monotonic()
        if now - self._replica_warned > 10:  # at most one warning per 10 s and worker
            self._replica_warned = now
            log.warning("read replica not used (%s): searching the primary", why)

    @contextmanager
    def _search_read(self) -> Iterator[_Db]:
        """The replica when it has applied every erasure (its replay position is at or past
        the fence the primary keeps), else the primary."""
        if self._replica is None:
            with self._read() as db:
                self.primary_reads += 1
                yield db
            return
        rows = self.fetch("SELECT value FROM meta WHERE key = 'replica_fence'")
        fence = str(rows[0][0]) if rows else "0/0"
        conn_cm = None
        try:
            conn_cm = self._replica.connection(timeout=2)
            conn = conn_cm.__enter__()
            row = conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn", (fence,)
            ).fetchone()
            if not (row and row[0] and row[1]):
                conn_cm.__exit__(None, None, None)
                conn_cm = None
                self._warn_replica("it has not applied the latest erasure yet")
        except Exception as e:  # unreachable, or gone mid-check
            if conn_cm is not None:
                conn_cm.__exit__(type(e), e, e.__traceback__)
                conn_cm = None
            self._warn_replica(f"unreachable: {type(e).__name__}")
        if conn_cm is None:
            with self._read() as db:
                self.primary_reads += 1
                yield db
            return
        try:
            with _snapshot(conn):
                self.replica_reads += 1
                yield _Db(conn)
        finally:
            conn_cm.__exit__(None, None, None)

    def _after_erasure(self) -> None:
        """Raise the fence to the erasure's commit, then wait (up to ``replica_wait_s``) for
        the replica to replay it; searches skip a replica behind the fence."""
        if self._replica is None:
            return
        with self.transaction(bump=False) as db:
            lsn = str(db.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('replica_fence', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = GREATEST(meta.value::pg_lsn, "
                "excluded.value::pg_lsn)::text",
                (lsn,),
            )
        deadline = time.monotonic() + self.replica_wait_s
        while time.monotonic() < deadline:
            try:
                with self._replica.connection(timeout=1) as conn:
                    if conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
                    ).fetchone()[0]:
                        return
            except Exception:  # the replica is away: the fence already protects searches
                break
            time.sleep(0.01)
        self._warn_replica("it did not apply an erasure in time; the fence holds searches back")

    @contextmanager
    def _read(self) -> Iterator[_Db]:
        with self._pool.connection() as conn, _snapshot(conn):
            yield _Db(conn)

    @contextmanager
    def transaction(self, bump: bool = True) -> Iterator[_Db]:
        """One atomic write transaction; writers in every process queue up on one advisory
        lock. ``bump`` advances the generation (gallery content changed; readers see the
        new value only with the commit, so it is set first, in the lock's round trip)."""
        with self._pool.connection() as conn:
            writable(conn)
            with conn.transaction():
                conn.execute(_LOCK_AND_BUMP if bump else _LOCK)
                yield _Db(conn)
        self._after_commit()

    def _after_commit(self) -> None:
        if self._staged_written:  # committed: the indexer may move them now
            self._staged_written = False
            self._kick_indexer()

    @contextmanager
    def _enrol_transaction(self) -> Iterator[_Db]:
        """An enrolment's transaction in pipeline mode: statements whose results it does not
        read are sent without waiting, so a new person costs three round trips (start, lock
        and lookup; the writes and the consent's id; the commit) instead of seven. An error
        surfaces at the next of those and rolls everything back."""
        with self._pool.connection() as conn:
            writable(conn)
            with conn.pipeline(), conn.transaction():
                conn.execute(_LOCK)
                conn.execute(_BUMP)
                yield _Db(conn)
        self._after_commit()

    dialect = "postgresql"

    def _run_script(self, db: Db, script: str) -> None:
        cast(_Db, db).conn.execute(script)

    # a sealed template lives in ``sealed`` (bytea), a plain one in ``embedding`` (vector), or,
    # until the indexer moves it there, in ``staged``; read as one text: base64 of the sealed
    # bytes, or pgvector's "[...]"
    _EMB_COLS = "embedding, sealed, staged"
    _EMB_SQL = "coalesce(encode(s.sealed, 'base64'), s.embedding::text, s.staged::text)"

    def _emb_params_for(self, e: NDArray[np.float32], key: TemplateKey | None) -> tuple[Any, ...]:
        if key is not None:
            return (None, self.codec.seal_template(e, key), None)
        return (vector_text(e), None, None)

    def _emb_params(self, e: NDArray[np.float32]) -> tuple[Any, ...]:
        """A template enrolled (not imported, not re-keyed): staged when the HNSW index
        would take it, so the enrolment does not wait for the graph's update."""
        if (
            self.key is None
            and self.stage_templates
            and e.size in INDEXED_DIMS
            and self._backlog < self.staged_max
        ):
            self._staged_written = True
            self._backlog += 1
            return (None, None, vector_text(e))
        return self._emb_params_for(e, self.key)

    # -- staged templates: the indexer ----------------------------------------------------------

    def _emb_value(self, stored: Any, dim: int) -> NDArray[np.float32]:
        text = stored if isinstance(stored, str) else str(stored)
        if not text.startswith("["):
            import base64

            return self.codec.open_template(base64.b64decode(text), dim)
        if self.key is not None:
            raise GalleryKeyError("a template is not sealed in an encrypted store: it was altered")
        v = np.array(text.strip("[]").split(","), dtype=np.float32) if dim else np.empty(0)
        if v.size != dim:
            raise GalleryFormatError(f"stored embedding has {v.size} values, expected {dim}")
        return v.astype(np.float32)

    def _is_unique_violation(self, e: BaseException) -> bool:
        return isinstance(e, self._psycopg.errors.UniqueViolation)

    def schema_version(self) -> int:
        rows = self.fetch("SELECT coalesce(max(version), 0) FROM facelens_migrations")
        return int(rows[0][0])

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            have = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            }
            if "facelens_migrations" not in have:
                if have & {"meta", "identities", "samples", "galleries"}:
                    raise GalleryFormatError(
                        f"{self._redacted()} holds tables of another application"
                    )
                conn.execute(
                    "CREATE TABLE facelens_migrations ("
                    "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            row = conn.execute(
                "SELECT coalesce(max(version), 0) FROM facelens_migrations"
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > PG_SCHEMA_VERSION:
                raise GalleryFormatError(
                    f"{self._redacted()} has schema version {version}; this facelens reads up "
                    f"to {PG_SCHEMA_VERSION}. Upgrade facelens."
                )
            for step in range(version, PG_SCHEMA_VERSION):
                conn.execute(POSTGRESQL[step])
                conn.execute("INSERT INTO facelens_migrations(version) VALUES (%s)", (step + 1,))
                log.info("PostgreSQL gallery migrated to schema %d", step + 1)

    def _write_import(
        self,
        db: Db,
        gallery: str,
        rows: Sequence[ImportRow],
        chips: dict[str, list[tuple[str, bytes]]] | None,
    ) -> None:
        """An import's plan streamed with COPY: identities, consents, samples (templates
        moved to the gallery's space a batch at a time and sent in pgvector's binary form)
        and chips."""
        conn = cast(_Db, db).conn
        chosen = [(r.identity, r.samples) for r in rows]
        keys = {r.identity.id: r.key for r in rows}
        with conn.cursor().copy(
            "COPY identities(id, gallery, name, name_key, metadata, created_at, updated_at) "
            "FROM STDIN"
        ) as cp:
            for ident, _ in chosen:
                cp.write_row(
                    (
                        ident.id,
                        gallery,
                        ident.name,
                        keys[ident.id],
                        json.dumps(ident.metadata, sort_keys=True),
                        ident.created_at,
                        ident.updated_at,
                    )
                )
        with conn.cursor().copy(
            "COPY consents(identity_id, purpose, granted_by, granted_at, expires_at, "
            "recorded_by) FROM STDIN"
        ) as cp:
            for ident, _ in chosen:
                for c in ident.consents:
                    cp.write_row(
                        (ident.id, c.purpose, c.granted_by, c.granted_at, c.expires_at,
                         c.recorded_by)
                    )  # fmt: skip
        self._copy_samples(conn, gallery, [(i, smp) for i, ss in chosen for smp in ss])
        if chips:
            now = self._now()
            with conn.cursor().copy(
                "COPY chips(identity_id, image_sha256, format, data, created_at) FROM STDIN"
            ) as cp:
                for ident, _ in chosen:
                    done: set[str] = set()
                    for sha, data in chips.get(ident.id, []):
                        if sha not in done:
                            done.add(sha)
                            sealed = self.codec.protect(data, b"chip")
                            cp.write_row((ident.id, sha, "png", sealed, now))

    def _copy_samples(
        self, conn: Any, gallery: str, flat: Sequence[tuple[Identity, Sample]]
    ) -> None:
        """Samples streamed with COPY: templates moved to the gallery's space a batch at a
        time and sent in pgvector's binary form (formatting 128 floats as text per row was
        most of an import's time)."""
        moved: dict[int, NDArray[np.float32]] = {}
        for dim in {int(smp.embedding.size) for _, smp in flat}:
            rows_of = [j for j, (_, smp) in enumerate(flat) if smp.embedding.size == dim]
            block = np.stack([flat[j][1].embedding for j in rows_of]).astype(np.float32)
            moved.update(zip(rows_of, self._forward(gallery, block), strict=True))
        vector_oid = _binary_vectors(conn)
        with conn.cursor().copy(
            f"COPY samples(id, identity_id, model, dim, {self._EMB_COLS}, quality, "
            "image_sha256, box, created_at) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            cp.set_types(
                ["text", "text", "text", "int4", vector_oid, "bytea", vector_oid, "text",
                 "text", "text", "text"]
            )  # fmt: skip
            for j, (ident, smp) in enumerate(flat):
                v = moved[j]
                sealed = self.codec.seal_template(v, self.key) if self.key else None
                cp.write_row(
                    (
                        smp.id,
                        ident.id,
                        smp.model,
                        int(v.size),
                        None if sealed is not None else v,
                        sealed,
                        None,
                        json.dumps(smp.quality, sort_keys=True),
                        smp.image_sha256,
                        json.dumps(list(smp.box)) if smp.box else None,
                        smp.created_at,
                    )
                )

    def integrity_check(self) -> list[str]:
        """Rows that break the gallery's rules (PostgreSQL enforces the rest itself)."""
        rows = self.fetch(
            "SELECT count(*) FROM identities i WHERE NOT EXISTS "
            "(SELECT 1 FROM galleries g WHERE g.name = i.gallery)"
        )
        return [f"{rows[0][0]} identities without a gallery"] if rows[0][0] else []

    # -- approximate search (pgvector HNSW) -----------------------------------------------------
