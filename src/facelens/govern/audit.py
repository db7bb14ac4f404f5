"""The audit trail: one record per verify, identify, enrol and delete, hash-chained.

``hash = SHA-256(prev_hash + canonical JSON of the record's fields, seq included)``, with the
first record chained to 64 zeros. ``verify`` recomputes every hash in order and checks each
``prev_hash`` and that ``seq`` has no gaps, so an edited record fails its own hash, a deleted
one leaves a gap and a broken link, and a reordered pair breaks the links, each at the first
record concerned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from facelens.gallery.contract import Db, Tables
from facelens.govern.schema import ensure_schema

__all__ = ["GENESIS", "AuditLog", "AuditRecord", "ChainStatus"]

GENESIS = "0" * 64
_COLS = (
    "seq, time, tenant, key_id, action, gallery, probe_sha256, candidates, threshold, "
    "model, decision, prev_hash, hash"
)


@dataclass(frozen=True)
class AuditRecord:
    """One audited action."""

    seq: int
    time: str
    tenant: str
    key_id: str
    action: str
    gallery: str | None
    probe_sha256: str | None
    candidates: tuple[str, ...]
    threshold: float | None
    model: str | None
    decision: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "tenant": self.tenant,
            "key_id": self.key_id,
            "action": self.action,
            "gallery": self.gallery,
            "probe_sha256": self.probe_sha256,
            "candidates": list(self.candidates),
            "threshold": self.threshold,
            "model": self.model,
            "decision": self.decision,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class ChainStatus:
    """The result of checking the chain.

    Attributes:
        ok: every record checks out.
        checked: records examined.
        first_bad_seq: the first record that does not check out, or None.
        problem: what is wrong with it.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def _digest(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _fields(
    seq: int,
    time: str,
    tenant: str,
    key_id: str,
    action: str,
    gallery: str | None,
    probe: str | None,
    candidates: Sequence[str],
    threshold: float | None,
    model: str | None,
    decision: dict[str, Any],
) -> dict[str, Any]:
    return {
        "seq": seq,
        "time": time,
        "tenant": tenant,
        "key_id": key_id,
        "action": action,
        "gallery": gallery,
        "probe_sha256": probe,
        "candidates": list(candidates),
        "threshold": threshold,
        "model": model,
        "decision": decision,
    }


class AuditLog:
    """Append-only audit records in the facelens store."""

    def __init__(self, store: Tables) -> None:
        self.store = store
        ensure_schema(store)

    def append(
        self,
        *,
        tenant: str,
        key_id: str,
        action: str,
        gallery: str | None = None,
        probe_sha256: str | None = None,
        candidates: Sequence[str] = (),
        threshold: float | None = None,
        model: str | None = None,
        decision: dict[str, Any] | None = None,
        also: Callable[[Db], object] | None = None,
    ) -> AuditRecord:
        """Add a record, chained to the last one (atomically, across processes). ``also``
        writes govern's own bookkeeping in the same transaction."""
        now = self.store.clock().astimezone(UTC).isoformat(timespec="milliseconds")
        decision = decision or {}
        th = None if threshold is None else round(float(threshold), 6)
        with self.store.transaction(bump=False) as db:
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            f = _fields(
                seq,
                now,
                tenant,
                key_id,
                action,
                gallery,
                probe_sha256,
                candidates,
                th,
                model,
                decision,
            )
            h = _digest(prev, f)
            db.execute(
                f"INSERT INTO audit({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    now,
                    tenant,
                    key_id,
                    action,
                    gallery,
                    probe_sha256,
                    json.dumps(list(candidates)),
                    th,
                    model,
                    json.dumps(decision, sort_keys=True),
                    prev,
                    h,
                ),
            )
            db.execute(
                "INSERT INTO govern_state(key, value) VALUES ('audit_head', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (f"{seq}:{h}",),
            )
            if also is not None:
                also(db)
        return AuditRecord(
            seq,
            now,
            tenant,
            key_id,
            action,
            gallery,
            probe_sha256,
            tuple(candidates),
            th,
            model,
            decision,
            prev,
            h,
        )

    @staticmethod
    def _record(r: Sequence[Any]) -> AuditRecord:
        return AuditRecord(
            int(r[0]),
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            tuple(json.loads(r[7])),
            r[8],
            r[9],
            json.loads(r[10]),
            r[11],
            r[12],
        )

    def records(
        self, tenant: str | None = None, after: int = 0, limit: int = 100
    ) -> list[AuditRecord]:
        """Records with ``seq > after``, oldest first (one tenant's, or all)."""
        where = "WHERE seq > ?" + (" AND tenant = ?" if tenant else "")
        params: tuple[Any, ...] = (after, tenant) if tenant else (after,)
        rows = self.store.fetch(
            f"SELECT {_COLS} FROM audit {where} ORDER BY seq LIMIT ?", (*params, limit)
        )
        return [self._record(r) for r in rows]

    def search(
        self,
        tenant: str,
        *,
        actions: Sequence[str] = (),
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        """One tenant's records that match: any of ``actions``, by ``actor`` (a key's id
        matches however the record spelt it, ``<id>`` or ``key:<id>``), at ``since`` or
        later and before ``until`` (ISO 8601 UTC, as records are timed), ``seq`` between
        ``after`` and ``before``; oldest first, or newest first."""
        where, params = ["tenant = ?", "seq > ?"], [tenant, after]
        if before is not None:
            where.append("seq < ?")
            params.append(before)
        if actions:
            where.append(f"action IN ({', '.join('?' for _ in actions)})")
            params += list(actions)
        if actor:
            bare = actor[4:] if actor.startswith("key:") else actor
            where.append("key_id IN (?, ?)")
            params += [bare, f"key:{bare}"]
        if since:
            where.append("time >= ?")
            params.append(since)
        if until:
            where.append("time < ?")
            params.append(until)
        order = "DESC" if newest_first else "ASC"
        rows = self.store.fetch(
            f"SELECT {_COLS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",
            [*params, limit],
        )
        return [self._record(r) for r in rows]

    def verify(self, page: int = 5000) -> ChainStatus:
        """Recompute the whole chain; report the first record that does not check out.

        Records are read ``page`` at a time (memory stays flat however long the trail), up
        to the head recorded when the check began: records appended meanwhile are left for
        the next check."""
        head = self.store.fetch("SELECT value FROM govern_state WHERE key = 'audit_head'")
        head_value = str(head[0][0]) if head else None
        head_seq = int(head_value.split(":")[0]) if head_value else None
        prev, expected_seq, n, last = GENESIS, 1, 0, 0
        while True:
            sql = f"SELECT {_COLS} FROM audit WHERE seq > ?"
            params: list[Any] = [last]
            if head_seq is not None:
                sql += " AND seq <= ?"
                params.append(head_seq)
            rows = self.store.fetch(sql + " ORDER BY seq LIMIT ?", [*params, page])
            for row in rows:
                rec = self._record(row)
                bad = self._check(rec, prev, expected_seq)
                if bad:
                    return ChainStatus(False, n, rec.seq, bad)
                prev, expected_seq, last, n = rec.hash, rec.seq + 1, rec.seq, n + 1
            if len(rows) < page:
                break
        if head_value is not None and head_value != f"{expected_seq - 1}:{prev}":
            seq = int(head_value.split(":")[0])
            return ChainStatus(
                False,
                n,
                seq,
                f"the trail ends before record {seq}, the last one written "
                "(records were removed from its end)",
            )
        return ChainStatus(True, n)

    @staticmethod
    def _check(rec: AuditRecord, prev: str, expected_seq: int) -> str | None:
        """What is wrong with ``rec`` following ``prev``, or None."""
        if rec.seq != expected_seq:
            return (
                f"record {rec.seq} found where {expected_seq} was expected "
                "(a record was deleted or moved)"
            )
        if rec.prev_hash != prev:
            return f"record {rec.seq} does not follow the record before it"
        f = _fields(
            rec.seq,
            rec.time,
            rec.tenant,
            rec.key_id,
            rec.action,
            rec.gallery,
            rec.probe_sha256,
            rec.candidates,
            rec.threshold,
            rec.model,
            rec.decision,
        )
        if _digest(prev, f) != rec.hash:
            return f"record {rec.seq} was edited"
        return None
