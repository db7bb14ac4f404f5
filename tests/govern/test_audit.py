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
    assert code == 0 and doc == {"ok": True, "checked": 6, "first_bad_seq": None, "problem": ""}


def test_editing_one_row_is_reported_with_its_number(trail: Path) -> None:
    db = sqlite3.connect(trail)
    db.execute("UPDATE audit SET decision = ? WHERE seq = 4", (json.dumps({"faces": 0}),))
    db.commit()
    db.close()
    code, doc, err = verify(trail)
    assert code == 5 and doc["first_bad_seq"] == 4 and "edited" in str(doc["problem"])
    assert "record 4" in err


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
