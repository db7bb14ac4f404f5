"""The audit trail: one record per verify, identify, enrol and delete, hash-chained per tenant.

Each tenant's records are numbered and chained on their own, so nothing a tenant reads (its
numbers, a check's count or verdict) tells how much another tenant does. ``hash =
SHA-256(prev_hash + canonical JSON of the record's fields, tenant and seq included)``.
``verify`` recomputes every hash in order and checks each ``prev_hash`` and that ``seq`` has
no gaps, so an edited record fails its own hash, a deleted one leaves a gap and a broken link,
and a reordered pair breaks the links, each at the first record concerned; the newest record's
number and hash are kept apart (``govern_state``, ``audit_head:<tenant>``), so a trail cut
off at its end is found too.

Stores written before the trail was per tenant (govern schema 4) keep those records exactly
as they were (``legacy = 1``): one chain all tenants shared, numbered in one sequence, its
first record chained to 64 zeros and its newest marked ``audit_legacy_head``. Re-chaining
them would have meant rewriting every hash, which is what the chain exists to expose; so
they are still checked as that one chain. A tenant's own chain starts after its last legacy
record (at 1 for a tenant without any) and its first record is chained to the legacy head's
hash (64 zeros in a store that had no trail), which ties the old trail to every new chain.
A tenant with legacy records has that shared chain checked with its own; its count is of its
own records only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from facelens.gallery.contract import Db, Tables
from facelens.govern.schema import ensure_schema

__all__ = ["GENESIS", "AuditLog", "AuditRecord", "ChainStatus"]

GENESIS = "0" * 64
_HEAD = "audit_head:"  # + tenant: "seq:hash" of the tenant's newest record
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
        tenant: whose chain it is in (None: ok, or the chain all tenants shared before the
            trail was per tenant).
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    tenant: str | None = None


def _anchor(legacy_head: str | None) -> str:
    """What a tenant's first record is chained to: the shared legacy chain's newest hash."""
    return legacy_head.split(":", 1)[1] if legacy_head else GENESIS


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
        """Add a record, chained to the tenant's last one (atomically, across processes). ``also``
        writes govern's own bookkeeping in the same transaction."""
        now = self.store.clock().astimezone(UTC).isoformat(timespec="milliseconds")
        decision = decision or {}
        th = None if threshold is None else round(float(threshold), 6)
        with self.store.transaction(bump=False) as db:
            seq, prev = self._next(db, tenant)
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
                f"INSERT INTO audit({_COLS}, legacy) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
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
                "INSERT INTO govern_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (_HEAD + tenant, f"{seq}:{h}"),
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
    def _next(db: Db, tenant: str) -> tuple[int, str]:
        """The number and ``prev_hash`` of the tenant's next record (in the append's
        transaction): after its newest record, or the first of its own chain - after its
        last legacy record, linked to the legacy chain's head."""
        last = db.execute(
            "SELECT seq, hash, legacy FROM audit WHERE tenant = ? ORDER BY seq DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        if last and not last[2]:
            return int(last[0]) + 1, str(last[1])
        legacy = "SELECT value FROM govern_state WHERE key = 'audit_legacy_head'"
        row = db.execute(legacy).fetchone()
        return (int(last[0]) if last else 0) + 1, _anchor(row[0] if row else None)

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
        """One tenant's records with ``seq > after`` in order, or every tenant's, oldest
        first (each tenant's numbers after ``after``)."""
        if tenant:
            sql = f"SELECT {_COLS} FROM audit WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?"
            rows = self.store.fetch(sql, (tenant, after, limit))
        else:
            sql = f"SELECT {_COLS} FROM audit WHERE seq > ? ORDER BY time, tenant, seq LIMIT ?"
            rows = self.store.fetch(sql, (after, limit))
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

    def verify(self, tenant: str | None = None, page: int = 5000) -> ChainStatus:
        """Recompute one tenant's chain (or every chain); report the first record that does
        not check out. ``checked`` counts the tenant's own records (all, without a tenant).

        Records are read ``page`` at a time (memory stays flat however long the trail), up
        to each chain's head as it was when the check began: records appended meanwhile are
        left for the next check. The shared legacy chain is checked too when the tenant has
        records in it (and always without a tenant)."""
        legacy_head, heads = self._heads(tenant)
        n = 0
        if tenant is None or self._legacy_count(tenant):
            st = self._walk("legacy = 1", [], 1, GENESIS, legacy_head, tenant, None, page)
            if not st.ok:
                return st
            n = st.checked
        for t in sorted(heads) if tenant is None else [tenant]:
            if t not in heads:
                continue  # no record of its own chain yet
            start = self._legacy_count(t, last=True) + 1
            st = self._walk(
                "tenant = ? AND legacy = 0", [t], start, _anchor(legacy_head), heads[t], t, t, page
            )
            if not st.ok:
                return replace(st, checked=n + st.checked)
            n += st.checked
        return ChainStatus(True, n)

    def _heads(self, tenant: str | None) -> tuple[str | None, dict[str, str | None]]:
        """The legacy chain's head and each tenant's (None: a tenant has records of its own
        chain but no head: it was removed), read in one statement (one snapshot)."""
        mine = "" if tenant is None else " AND tenant = ?"
        keys = "key = 'audit_legacy_head' OR " + (
            "substr(key, 1, 11) = 'audit_head:'" if tenant is None else "key = ?"
        )
        params = [] if tenant is None else [_HEAD + tenant, tenant]
        rows = self.store.fetch(
            f"SELECT key, value FROM govern_state WHERE {keys} UNION ALL "
            f"SELECT DISTINCT '{_HEAD}' || tenant, NULL FROM audit WHERE legacy = 0{mine}",
            params,
        )
        legacy: str | None = None
        heads: dict[str, str | None] = {}
        for key, value in rows:
            if key == "audit_legacy_head":
                legacy = str(value)
            elif value is not None or key[len(_HEAD) :] not in heads:
                heads[key[len(_HEAD) :]] = None if value is None else str(value)
        return legacy, heads

    def _legacy_count(self, tenant: str, last: bool = False) -> int:
        """How many of the tenant's records are in the shared legacy chain (``last``: the
        number of its newest one, 0 when none)."""
        what = "max(seq)" if last else "count(*)"
        rows = self.store.fetch(
            f"SELECT {what} FROM audit WHERE tenant = ? AND legacy = 1", (tenant,)
        )
        return int(rows[0][0] or 0) if rows else 0

    def _walk(
        self,
        where: str,
        params: list[Any],
        first_seq: int,
        anchor: str,
        head: str | None,
        counted: str | None,
        chain: str | None,
        page: int,
    ) -> ChainStatus:
        """Check one chain (``where``): numbers from ``first_seq``, the first record linked
        to ``anchor``, the last one ``head`` ("seq:hash"; None: not kept). Counts the
        records of tenant ``counted`` (all when None)."""
        head_seq = int(head.split(":")[0]) if head else None
        prev, expected_seq, n, last = anchor, first_seq, 0, first_seq - 1
        while True:
            sql = f"SELECT {_COLS} FROM audit WHERE {where} AND seq > ?"
            args: list[Any] = [*params, last]
            if head_seq is not None:
                sql += " AND seq <= ?"
                args.append(head_seq)
            rows = self.store.fetch(sql + " ORDER BY seq LIMIT ?", [*args, page])
            for row in rows:
                rec = self._record(row)
                bad = self._check(rec, prev, expected_seq)
                if bad:
                    return ChainStatus(False, n, rec.seq, self._where(chain) + bad, chain)
                prev, expected_seq, last = rec.hash, rec.seq + 1, rec.seq
                if counted is None or rec.tenant == counted:
                    n += 1
            if len(rows) < page:
                break
        if head is None and chain is not None and last >= first_seq:
            return ChainStatus(
                False,
                n,
                last,
                "the mark of the newest record is missing (it was removed)",
                chain,
            )
        if head is not None and head != f"{expected_seq - 1}:{prev}":
            seq = int(head.split(":")[0])
            return ChainStatus(
                False,
                n,
                seq,
                self._where(chain) + f"the trail ends before record {seq}, the last one written "
                "(records were removed from its end)",
                chain,
            )
        return ChainStatus(True, n)

    @staticmethod
    def _where(chain: str | None) -> str:
        return "" if chain else "in the trail all tenants shared before it was per tenant: "

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
