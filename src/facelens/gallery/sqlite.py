"""The embedded gallery store: one SQLite file, versioned schema, atomic writes, and an
approximate index for large galleries.

Every write is one ``BEGIN IMMEDIATE`` transaction, so a process killed at any moment leaves
either the whole change or none of it (SQLite's write-ahead log guarantees this), and writers
in several processes queue up. A ``generation`` counter, bumped by every write, lets readers in
other processes notice changes.

Search is exact (a cached matrix, rebuilt when the generation changes) until a gallery holds
``AnnConfig.min_samples`` samples of one model; from then on a faiss HNSW index answers
(``facelens.gallery.ann``), kept in step incrementally through the ``sample_seq`` and
``sample_tombstones`` tables that triggers maintain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from facelens.errors import GalleryError, GalleryFormatError
from facelens.gallery.ann import AnnConfig, HnswIndex
from facelens.gallery.codec import check_key
from facelens.gallery.contract import Db
from facelens.gallery.imports import ImportRow
from facelens.gallery.protect import TemplateKey
from facelens.gallery.schema import SQLITE, statements
from facelens.gallery.search import SearchMatrix
from facelens.gallery.sql import SqlStore, utc_now
from facelens.match.decide import Candidate

__all__ = ["SCHEMA_VERSION", "SearchMatrix", "SqliteStore"]

log = logging.getLogger(__name__)

# How much of the file SQLite may read through a memory map (address space, not memory).
MMAP_BYTES = 1 << 34

SCHEMA_VERSION = len(SQLITE)


class SqliteStore(SqlStore):
    """The SQLite gallery store. Safe to share between threads; several processes may open
    the same file (writes are serialised by SQLite).

    Args:
        path: the gallery file (created if missing).
        clock: the time source (consent validity, record times).
        ann: when and how large galleries are searched approximately.

    Example:
        >>> import tempfile, os
        >>> s = SqliteStore(os.path.join(tempfile.mkdtemp(), "g.db"))
        >>> s.list_identities("default")
        []
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], datetime] | None = None,
        ann: AnnConfig | None = None,
        key: TemplateKey | None = None,
    ) -> None:
        super().__init__(clock or utc_now, ann or AnnConfig(), key)
        self.path = Path(path)
        self.location = str(self.path)
        self._lock = threading.RLock()
        self._indexes: dict[tuple[str, str], HnswIndex] = {}
        self._building: set[tuple[str, str]] = set()
        self._closed = False
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a directory, not a gallery file")
        if str(path) != ":memory:":  # SQLite's in-memory database is no file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a new gallery (people's templates, consents, keys) is readable by its owner
            # only; SQLite gives its -wal and -shm files the same permissions
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA busy_timeout = 30000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            # Reads through a memory map: checking a search's candidates against the store
            # touches a few random rows of a file that may be a gigabyte; through the page
            # cache directly that is ~0.25 ms, through read() calls ~0.5 ms warm, ms cold.
            self._db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            log.debug("opened gallery %s (journal %s)", self.path, mode)
            self._migrate()
            self.store_id = self.fetch("SELECT value FROM meta WHERE key = 'store_id'")[0][0]
            check_key(self)
            self._fill_name_keys()
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise GalleryFormatError(f"{self.path} is not a facelens gallery ({e})") from None
        except BaseException:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def ann_folder(self) -> Path:
        """Where the approximate indexes of this file are kept."""
        return self.path.with_name(self.path.name + ".ann")

    def close(self) -> None:
        with self._lock:
            if self.ann.persist:
                for (gallery, model), ix in self._indexes.items():
                    if ix.changes_since_save:
                        try:
                            ix.save(self.ann_folder, gallery, model, self.store_id, self.key)
                        except OSError as e:
                            log.warning("could not save the ANN index: %s", e)
            self._indexes.clear()
            self._closed = True
            self._db.close()

    @contextmanager
    def _read(self) -> Iterator[Db]:
        """A consistent read (one snapshot), or the transaction already open."""
        with self._lock:
            if self._db.in_transaction:
                yield cast(Db, self._db)
                return
            self._db.execute("BEGIN")
            try:
                yield cast(Db, self._db)
            finally:
                self._db.execute("COMMIT")

    @contextmanager
    def transaction(self, bump: bool = True) -> Iterator[Db]:
        """One atomic write transaction (``BEGIN IMMEDIATE``: writers queue up, across
        processes too). ``bump`` advances the generation, telling every reader's search state
        that gallery content changed (not needed for keys and audit records)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield cast(Db, self._db)
                if bump:
                    self._db.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key = 'generation'"
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    dialect = "sqlite"

    def _run_script(self, db: Db, script: str) -> None:
        for stmt in statements(script):
            db.execute(stmt)

    def _emb_params_for(self, e: NDArray[np.float32], key: TemplateKey | None) -> tuple[Any, ...]:
        if key is not None:
            return (self.codec.seal_template(e, key),)
        return (np.ascontiguousarray(e, dtype="<f4").tobytes(),)

    def _emb_value(self, stored: Any, dim: int) -> NDArray[np.float32]:
        return self.codec.open_template(stored, dim)

    def _after_rekey(self) -> None:
        """The approximate indexes held the old secrets' vectors: forgotten, their files
        removed (the next large search builds new ones)."""
        super()._after_rekey()
        with self._lock:
            self._indexes.clear()
        if self.ann_folder.is_dir():
            for f in self.ann_folder.iterdir():
                f.unlink(missing_ok=True)

    def _write_import(
        self,
        db: Db,
        gallery: str,
        rows: Sequence[ImportRow],
        chips: dict[str, list[tuple[str, bytes]]] | None,
    ) -> None:
        """Write an import's plan: a statement a row, in the import's transaction."""
        for row in rows:
            ident = row.identity
            db.execute(
                "INSERT INTO identities(id, gallery, name, name_key, metadata, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    ident.id,
                    gallery,
                    ident.name,
                    row.key,
                    json.dumps(ident.metadata, sort_keys=True),
                    ident.created_at,
                    ident.updated_at,
                ),
            )
            for c in ident.consents:
                self._insert_consent(db, ident.id, c)
            for s in row.samples:
                box = list(s.box) if s.box else None
                db.execute(
                    self._SAMPLE_INSERT,
                    self._sample_row(s.id, ident.id, s, box, s.created_at, gallery),
                )
            for sha, data in (chips or {}).get(ident.id, []):
                db.execute(
                    "INSERT INTO chips(identity_id, image_sha256, format, data, created_at) "
                    "VALUES (?, ?, 'png', ?, ?) ON CONFLICT DO NOTHING",
                    (ident.id, sha, self.codec.protect(data, b"chip"), self._now()),
                )

    def _is_unique_violation(self, e: BaseException) -> bool:
        return isinstance(e, sqlite3.IntegrityError) and "UNIQUE" in str(e)

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = self._db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if tables:
                    raise GalleryFormatError(
                        f"{self.path} is an SQLite database of another application"
                    )
            elif version > SCHEMA_VERSION:
                raise GalleryFormatError(
                    f"{self.path} has schema version {version}; this facelens reads up to "
                    f"{SCHEMA_VERSION}. Upgrade facelens."
                )
            else:
                app = self._db.execute(
                    "SELECT value FROM meta WHERE key = 'application'"
                ).fetchone()
                if not app or app[0] != "facelens":
                    raise GalleryFormatError(f"{self.path} is not a facelens gallery")
            for step in range(version, SCHEMA_VERSION):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if self._db.execute("PRAGMA user_version").fetchone()[0] != step:
                        self._db.execute("ROLLBACK")  # another process migrated meanwhile
                        continue
                    for stmt in statements(SQLITE[step]):
                        self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version = {step + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                log.info("gallery %s migrated to schema %d", self.path, step + 1)

    def integrity_check(self) -> list[str]:
        """SQLite's integrity and foreign-key checks; empty when the file is consistent."""
        with self._lock:
            problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [
                f"dangling row in {r[0]}" for r in self._db.execute("PRAGMA foreign_key_check")
            ]
        return problems

    # -- approximate search -------------------------------------------------------------------

    # CROSS JOIN fixes SQLite's join order (new sequence numbers first, then their sample and
    # identity by primary key); left to itself the planner may walk the gallery's identities,
    # which at 100,000 people costs 200 ms a search instead of 0.2 ms.
    _DELTA = """
        SELECT q.seq, s.dim, s.embedding FROM sample_seq q
        CROSS JOIN samples s ON s.id = q.sample_id
        CROSS JOIN identities i ON i.id = s.identity_id
        WHERE q.seq > ? AND i.gallery = ? AND s.model = ?
        ORDER BY q.seq
    """

    def generation(self) -> int:
        with self._lock:  # one statement: one snapshot, no transaction needed
            row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def _sync(self, ix: HnswIndex, gallery: str, model: str) -> None:
        """Bring the index up to the store's present: new samples in, deleted ones dead."""
        if self.generation() == ix.generation:  # the common case, one statement
            return
        with self._read() as db:
            gen = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            rows = db.execute(self._DELTA, (ix.max_seq, gallery, model)).fetchall()
            dead = [
                r[0]
                for r in db.execute(
                    "SELECT seq FROM sample_tombstones WHERE generation >= ?", (ix.generation,)
                )
            ]
        if rows:
            seqs = np.array([r[0] for r in rows], np.int64)
            ix.add(seqs, np.stack([self._emb_value(r[2], r[1]) for r in rows]))
        if dead:
            ix.remove(np.array(sorted(dead), np.int64))
        ix.generation = gen
        if self.ann.persist and ix.changes_since_save >= self.ann.save_every:
            ix.save(self.ann_folder, gallery, model, self.store_id, self.key)

    def _build_index(self, gallery: str, model: str, dim: int) -> HnswIndex:
        ix = HnswIndex(dim, self.ann)
        ix.generation = -1
        self._sync(ix, gallery, model)  # from seq 0: every live sample
        if self.ann.persist:
            ix.save(self.ann_folder, gallery, model, self.store_id, self.key)
        log.info("built ANN index for %s/%s: %d samples", gallery, model, ix.size)
        return ix

    def _ann_search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int, start: bool
    ) -> list[list[Candidate]] | None:
        """Search the gallery's HNSW index, building it first if the gallery has just been
        found large (``start``). Building is slow (at a million samples, minutes): it runs
        outside the store's lock, so other threads' reads, key lookups and searches (exact
        ones, until the index is in) go on meanwhile; a rebuild of an index with too many
        deleted entries runs in the background while the old one keeps serving."""
        key = (gallery, model)
        build_here = False
        with self._lock:
            ix = self._indexes.get(key)
            if ix is None and self.ann.persist:
                ix = HnswIndex.load(
                    self.ann_folder, gallery, model, self.store_id, self.ann, self.key
                )
                if ix is not None:
                    self._indexes[key] = ix
            if ix is None and start and key not in self._building:
                self._building.add(key)
                build_here = True
        if build_here:
            try:
                ix = self._build_index(gallery, model, vectors.shape[1])
                with self._lock:
                    self._indexes[key] = ix
            finally:
                with self._lock:
                    self._building.discard(key)
        if ix is None:
            return None  # none yet (or another thread is building it): search exactly
        with self._lock:
            self._sync(ix, gallery, model)
            if ix.size < self.ann.min_samples // 2:  # shrank: exact search again
                self._indexes.pop(key, None)
                for f in HnswIndex.files(self.ann_folder, gallery, model):
                    f.unlink(missing_ok=True)
                return None
            if ix.dead_fraction > 0.25 and key not in self._building:
                self._building.add(key)
                threading.Thread(
                    target=self._rebuild, args=(key, ix.dim), name="ann-rebuild", daemon=True
                ).start()
            return [self._verified(ix, gallery, model, v, k) for v in vectors]

    def _rebuild(self, key: tuple[str, str], dim: int) -> None:
        """A fresh index built in the background, swapped in when done."""
        try:
            fresh = self._build_index(key[0], key[1], dim)
            with self._lock:
                if not self._closed:
                    self._indexes[key] = fresh
        except Exception as e:  # the old index keeps serving; the next search tries again
            log.warning("rebuilding the ANN index of %s/%s failed: %s", key[0], key[1], e)
        finally:
            with self._lock:
                self._building.discard(key)

    def _verified(
        self, ix: HnswIndex, gallery: str, model: str, probe: NDArray[np.float32], k: int
    ) -> list[Candidate]:
        """Candidates from the graph, checked against the store: the sample still exists, its
        identity is in this gallery and has a consent valid now.

        Candidates are checked best first, a few at a time, until no unchecked one can enter
        the top ``k`` (its score is below the k-th identity's); when too few survive, the graph
        is asked for more."""
        n = max(self.ann.candidates, 4 * k)
        best: dict[str, tuple[str, float]] = {}
        # a half-precision graph's scores are re-ranked exactly; they may differ from the
        # exact ones by ~1e-4, so a candidate is given up only below the k-th by more
        exact = ix.exact_scores
        margin = 0.0 if exact else 2e-3
        while True:
            seqs, scores = ix.search(probe[None, :], min(n, max(ix.size, 1)))
            found = [
                (q, s) for q, s in zip(seqs[0].tolist(), scores[0].tolist(), strict=True) if q >= 0
            ]
            best, i, step = {}, 0, k
            while i < len(found):
                for iid, (name, score) in self._owners(
                    gallery, model, dict(found[i : i + step]), None if exact else probe
                ).items():
                    if iid not in best or score > best[iid][1]:
                        best[iid] = (name, score)
                i += step
                step *= 2
                if len(best) >= k and i < len(found):
                    kth = sorted((v[1] for v in best.values()), reverse=True)[k - 1]
                    if found[i][1] + margin < kth:
                        break
            if len(best) >= k or n >= ix.size:
                break
            n *= 4
        ranked = sorted(best.items(), key=lambda kv: -kv[1][1])[:k]
        return [Candidate(iid, name, score) for iid, (name, score) in ranked]

    def _owners(
        self,
        gallery: str,
        model: str,
        found: dict[int, float],
        probe: NDArray[np.float32] | None = None,
    ) -> dict[str, tuple[str, float]]:
        """The identities owning the ``found`` samples (sequence number -> score) that pass
        the checks, with their best score; with ``probe``, scores recomputed from the stored
        templates (exact)."""
        if not found:
            return {}
        marks = ",".join("?" * len(found))
        template = ", s.dim, s.embedding" if probe is not None else ""
        with self._lock:  # one statement: one snapshot, no transaction needed
            rows = self._db.execute(
                f"""
                SELECT q.seq, i.id, i.name{template} FROM sample_seq q
                CROSS JOIN samples s ON s.id = q.sample_id
                CROSS JOIN identities i ON i.id = s.identity_id
                WHERE q.seq IN ({marks}) AND i.gallery = ? AND s.model = ?
                  AND EXISTS (SELECT 1 FROM consents c WHERE c.identity_id = i.id
                              AND (c.expires_at IS NULL OR c.expires_at > ?))
                """,
                (*found, gallery, model, self._now()),
            ).fetchall()
        best: dict[str, tuple[str, float]] = {}
        for r in rows:
            seq, iid, name = r[0], r[1], r[2]
            if probe is None:
                s = found[int(seq)]
            else:
                s = float(self._emb_value(r[4], int(r[3])) @ probe)
            if iid not in best or s > best[iid][1]:
                best[iid] = (name, s)
        return best

    def index_info(self, gallery: str, model: str) -> dict[str, Any] | None:
        """The approximate index in use for a gallery and model, if any."""
        with self._lock:
            ix = self._indexes.get((gallery, model))
            if ix is None:
                return None
            return {
                "samples": ix.size,
                "nodes": len(ix.seq),
                "generation": ix.generation,
                "dead_fraction": round(ix.dead_fraction, 4),
            }
