"""The audit trail is numbered and chained per tenant (issue 29, finding 14): what one tenant
reads of it (its numbers, a check's count and verdict) is the same whatever another tenant
does; tampering is still found, per tenant; a store whose trail was one shared chain (govern
schema 4) keeps every record and still verifies after the migration. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from facelens.gallery.contract import Tables
from facelens.gallery.stores import open_store
from facelens.govern import AuditLog, ChainStatus
from facelens.govern.schema import MIGRATIONS


def act(log: AuditLog, tenant: str, n: int) -> None:
    for i in range(n):
        log.append(tenant=tenant, key_id="k", action="identify", decision={"i": i})


def tamper(store: Tables, sql: str, params: tuple[Any, ...]) -> None:
    with store.transaction(bump=False) as db:
        db.execute(sql, params)


def test_a_tenant_sees_nothing_of_another_tenants_activity(store_location: str) -> None:
    """Tenant A acts alone; tenant X acts as A did while Y does 50 things between each of
    X's actions: X reads exactly what A reads (numbers, count, verdict, pages)."""
    store = open_store(store_location)
    try:
        log = AuditLog(store)
        for _ in range(3):
            act(log, "a", 2)
        for _ in range(3):
            act(log, "x", 2)
            act(log, "y", 50)

        def view(t: str) -> tuple[object, ...]:
            recs = [(r.seq, r.action, r.decision) for r in log.records(t, limit=1000)]
            return recs, log.verify(t), [r.seq for r in log.search(t, after=4)]

        assert view("a") == view("x")
        assert view("a")[1] == ChainStatus(True, 6)
        assert [r.seq for r in log.records("x")] == [1, 2, 3, 4, 5, 6]  # no gaps where Y acted
        assert log.verify("y").checked == 150
        assert log.verify() == ChainStatus(True, 162)
    finally:
        store.close()


def test_tampering_is_found_in_the_tenants_own_chain(store_location: str) -> None:
    store = open_store(store_location)
    try:
        log = AuditLog(store)
        for _ in range(4):
            act(log, "a", 1)
            act(log, "b", 1)
        tamper(store, "UPDATE audit SET key_id = 'x' WHERE tenant = 'b' AND seq = 2", ())
        b = log.verify("b")
        assert not b.ok and b.first_bad_seq == 2 and "edited" in b.problem and b.tenant == "b"
        assert b.checked == 1
        assert log.verify("a").ok and log.verify("a").checked == 4  # A's own chain is whole
        everyone = log.verify()
        assert not everyone.ok and (everyone.tenant, everyone.first_bad_seq) == ("b", 2)

        # a record removed from the middle, or from the end, of A's chain
        tamper(store, "DELETE FROM audit WHERE tenant = 'a' AND seq = 4", ())
        a = log.verify("a")
        assert not a.ok and a.first_bad_seq == 4 and "end" in a.problem
        tamper(store, "DELETE FROM audit WHERE tenant = 'a' AND seq = 2", ())
        assert log.verify("a").first_bad_seq == 3
        # a record moved into another tenant's chain does not fit there
        tamper(store, "UPDATE audit SET tenant = 'c' WHERE tenant = 'a' AND seq = 1", ())
        c = log.verify("c")
        assert not c.ok and c.tenant == "c"
    finally:
        store.close()


def _digest(prev: str, fields: dict[str, Any]) -> str:
    """The chain's rule, written out here as a reader of the docs would."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


def old_store(location: str, tenants: str) -> list[tuple[Any, ...]]:
    """A store as facelens wrote it before the trail was per tenant (the gallery's schema,
    govern's 4): one chain, one sequence across tenants, its head in ``audit_head``."""
    store = open_store(location)
    try:
        store.apply_migrations("govern", MIGRATIONS[store.dialect][:4])
        prev = "0" * 64
        with store.transaction(bump=False) as db:
            for seq, tenant in enumerate(tenants, 1):
                f = {
                    "seq": seq,
                    "time": f"2026-01-01T00:00:{seq:02d}.000+00:00",
                    "tenant": tenant,
                    "key_id": "k",
                    "action": "identify",
                    "gallery": "door",
                    "probe_sha256": None,
                    "candidates": [],
                    "threshold": 0.5,
                    "model": "m",
                    "decision": {"seq": seq},
                }
                h = _digest(prev, f)
                db.execute(
                    "INSERT INTO audit(seq, time, tenant, key_id, action, gallery, "
                    "probe_sha256, candidates, threshold, model, decision, prev_hash, hash) "
                    "VALUES (?, ?, ?, 'k', 'identify', 'door', NULL, '[]', 0.5, 'm', ?, ?, ?)",
                    (seq, f["time"], tenant, json.dumps(f["decision"]), prev, h),
                )
                prev = h
            db.execute(
                "INSERT INTO govern_state(key, value) VALUES ('audit_head', ?)",
                (f"{len(tenants)}:{prev}",),
            )
        return store.fetch(
            "SELECT seq, time, tenant, key_id, action, gallery, probe_sha256, candidates, "
            "threshold, model, decision, prev_hash, hash FROM audit ORDER BY seq"
        )
    finally:
        store.close()


def test_a_shared_trail_is_kept_and_still_verifies_after_the_migration(
    store_location: str,
) -> None:
    before = old_store(store_location, "abaab")  # a: 1, 3, 4; b: 2, 5
    store = open_store(store_location)
    try:
        log = AuditLog(store)  # migrates
        assert store.fetch("SELECT value FROM meta WHERE key = 'schema:govern'") == [
            (str(len(MIGRATIONS[store.dialect])),)
        ]
        after = store.fetch(
            "SELECT seq, time, tenant, key_id, action, gallery, probe_sha256, candidates, "
            "threshold, model, decision, prev_hash, hash FROM audit ORDER BY seq"
        )
        assert after == before  # every record, byte for byte
        assert log.verify() == ChainStatus(True, 5)
        assert log.verify("a").checked == 3 and log.verify("b").checked == 2

        act(log, "a", 2)
        act(log, "c", 1)  # a tenant that had no record before
        assert [r.seq for r in log.records("a")] == [1, 3, 4, 5, 6]
        assert [r.seq for r in log.records("c")] == [1]
        legacy_head = before[-1][12]
        assert log.records("a")[3].prev_hash == legacy_head == log.records("c")[0].prev_hash
        assert log.verify().ok and log.verify().checked == 8
        assert log.verify("a").checked == 5 and log.verify("c").checked == 1

        # an old record edited: the shared chain says so to its tenants, not to a newcomer
        tamper(store, "UPDATE audit SET decision = '{}' WHERE seq = 2 AND legacy = 1", ())
        a = log.verify("a")
        assert not a.ok and a.first_bad_seq == 2 and a.tenant is None and "shared" in a.problem
        assert not log.verify().ok and log.verify("c").ok
        tamper(store, "UPDATE audit SET decision = ? WHERE seq = 2", (json.dumps({"seq": 2}),))
        assert log.verify().ok
        # the old trail cut at its end: its head no longer matches, and a rewritten mark
        # breaks every tenant's first link of its own chain
        tamper(store, "DELETE FROM audit WHERE seq = 5 AND legacy = 1", ())
        assert log.verify("b").first_bad_seq == 5 and not log.verify("b").ok
        tamper(
            store,
            "UPDATE govern_state SET value = ? WHERE key = 'audit_legacy_head'",
            (f"4:{before[3][12]}",),
        )
        st = log.verify("c")
        assert not st.ok and st.first_bad_seq == 1 and "follow" in st.problem
    finally:
        store.close()
