"""The audit chain catches edited, deleted, reordered and truncated records."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from facelens.gallery import SqliteStore
from facelens.govern import AuditLog, KeyStore


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    with SqliteStore(path) as store:
        log = AuditLog(store)
        for i in range(6):
            log.append(
                tenant="acme",
                key_id="k1",
                action="identify",
                gallery="main",
                probe_sha256=f"{i:064x}",
                candidates=["a", "b"],
                threshold=0.93,
                model="m",
                decision={"faces": i},
            )
        assert log.verify().ok
    return path


def verify(path: Path) -> tuple[int, dict[str, object], str]:
    p = subprocess.run(
        [sys.executable, "-m", "facelens", "audit", "verify", "--gallery", str(path), "--json"],
        capture_output=True,
        text=True,
    )
    return p.returncode, json.loads(p.stdout), p.stderr


def test_an_intact_trail_verifies(trail: Path) -> None:
    code, doc, _ = verify(trail)
    assert code == 0 and doc == {
        "ok": True,
        "checked": 6,
        "first_bad_seq": None,
        "problem": "",
        "tenant": None,
    }


def test_editing_one_row_is_reported_with_its_number(trail: Path) -> None:
    db = sqlite3.connect(trail)
    db.execute("UPDATE audit SET decision = ? WHERE seq = 4", (json.dumps({"faces": 0}),))
    db.commit()
    db.close()
    code, doc, err = verify(trail)
    assert code == 5 and doc["first_bad_seq"] == 4 and "edited" in str(doc["problem"])
    assert doc["tenant"] == "acme" and "acme's record 4" in err


def test_deleting_a_row_is_reported(trail: Path) -> None:
    db = sqlite3.connect(trail)
    db.execute("DELETE FROM audit WHERE seq = 3")
    db.commit()
    db.close()
    code, doc, _ = verify(trail)
    assert code == 5 and doc["first_bad_seq"] == 4


def test_reordering_rows_is_reported(trail: Path) -> None:
    db = sqlite3.connect(trail)
    cols = [r[1] for r in db.execute("PRAGMA table_info(audit)") if r[1] != "seq"]
    a = db.execute(f"SELECT {','.join(cols)} FROM audit WHERE seq = 2").fetchone()
    b = db.execute(f"SELECT {','.join(cols)} FROM audit WHERE seq = 3").fetchone()
    sets = ",".join(f"{c} = ?" for c in cols)
    db.execute(f"UPDATE audit SET {sets} WHERE seq = 2", b)  # records 2 and 3 swap places
    db.execute(f"UPDATE audit SET {sets} WHERE seq = 3", a)
    db.commit()
    db.close()
    code, doc, _ = verify(trail)
    assert code == 5 and doc["first_bad_seq"] == 2


def test_cutting_off_the_end_is_reported(trail: Path) -> None:
    db = sqlite3.connect(trail)
    db.execute("DELETE FROM audit WHERE seq >= 5")
    db.commit()
    db.close()
    code, doc, _ = verify(trail)
    assert code == 5 and doc["first_bad_seq"] == 6 and "end" in str(doc["problem"])


def test_keys_are_stored_hashed_and_scoped(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "k.db") as store:
        ks = KeyStore(store)
        key, secret = ks.create("acme", ["identify", "audit:read"], "door")
        assert ks.authenticate(secret) == key
        assert ks.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert key.allows("identify") and not key.allows("delete")
        raw = sqlite3.connect(tmp_path / "k.db").execute("SELECT * FROM api_keys").fetchall()
        assert secret.split("_", 2)[2] not in repr(raw)  # never stored in clear
        ks.revoke(key.id)
        assert ks.authenticate(secret) is None
        with pytest.raises(Exception, match="unknown scope"):
            ks.create("acme", ["superuser"])


def test_a_long_trail_is_checked_a_page_at_a_time(trail: Path) -> None:
    import resource

    with SqliteStore(trail) as store:
        log = AuditLog(store)
        # across page boundaries: an intact trail passes, an edit on a later page is found
        assert log.verify(page=4) == log.verify() and log.verify(page=4).checked == 6
        for i in range(30_000):
            log.append(tenant="acme", key_id="k1", action="identify", decision={"i": i})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        st = log.verify(page=1000)
        grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert st.ok and st.checked == 30_006
        assert grew_kib < 20_000  # pages, not the whole trail in memory
    db = sqlite3.connect(trail)
    db.execute("UPDATE audit SET key_id = 'k2' WHERE seq = 25000")
    db.commit()
    db.close()
    with SqliteStore(trail) as store:
        st = AuditLog(store).verify(page=1000)
    assert not st.ok and st.first_bad_seq == 25000 and st.checked == 24999


def test_records_appended_during_a_check_are_left_for_the_next(trail: Path) -> None:
    with SqliteStore(trail) as store:
        log = AuditLog(store)
        real_fetch = store.fetch
        calls = []

        def fetch_and_append(sql: str, params: object = ()) -> list[tuple[object, ...]]:
            rows = real_fetch(sql, params)  # type: ignore[arg-type]
            if "FROM audit" in sql and not calls:
                calls.append(1)
                log.append(tenant="acme", key_id="k1", action="identify")  # mid-check
            return rows

        store.fetch = fetch_and_append  # type: ignore[method-assign]
        st = log.verify(page=2)
        store.fetch = real_fetch  # type: ignore[method-assign]
        assert st.ok and st.checked == 6
        assert log.verify().checked == 7
