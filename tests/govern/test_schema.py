"""govern owns its tables: the gallery store alone makes none of them; govern's migrations
make them, and adopt those an older store already holds (keys, audit trail, stop state)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from facelens.errors import GalleryFormatError
from facelens.gallery import SqliteStore
from facelens.gallery.schema import SQLITE as _MIGRATIONS
from facelens.gallery.schema import statements as _statements
from facelens.govern import AuditLog, KeyStore, StopControl
from facelens.govern.schema import MIGRATIONS


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def test_the_gallery_store_alone_makes_no_govern_table(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "g.db").close()
    assert not tables(tmp_path / "g.db") & {"api_keys", "audit", "govern_state"}
    with SqliteStore(tmp_path / "g.db") as store:
        AuditLog(store).append(tenant="t", key_id="k", action="identify")
        assert store.fetch("SELECT value FROM meta WHERE key = 'schema:govern'") == [
            (str(len(MIGRATIONS["sqlite"])),)
        ]
    assert {"api_keys", "audit", "govern_state", "retention_policies"} <= tables(tmp_path / "g.db")


def test_an_older_store_keeps_its_keys_trail_and_stop(tmp_path: Path) -> None:
    """A store written before govern owned its tables: the gallery's schema 4 with the keys
    and audit tables, the audit head and a stop in the gallery's meta table."""
    path = tmp_path / "old.db"
    with SqliteStore(path) as store:
        log = AuditLog(store)
        for i in range(3):
            log.append(tenant="acme", key_id="k", action="identify", decision={"i": i})
        StopControl(store, log).stop("acme", "key:admin", "incident")
        key, secret = KeyStore(store).create("acme", ["identify"])
    con = sqlite3.connect(path, isolation_level=None)  # put it back as an old store had it
    for k, v in con.execute("SELECT key, value FROM govern_state").fetchall():
        con.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (k, v))
    con.execute("DROP TABLE govern_state")
    for t in ("retention_policies", "person_activity", "alert_votes", "alerts"):
        con.execute(f"DROP TABLE {t}")
    con.execute("DELETE FROM meta WHERE key = 'schema:govern'")
    con.close()
    with SqliteStore(path) as store:
        log = AuditLog(store)
        assert log.verify().ok and log.verify().checked == 4  # 3 searches and the stop
        assert StopControl(store, log).status("acme").stopped
        assert KeyStore(store).authenticate(secret).id == key.id
        assert not store.fetch("SELECT key FROM meta WHERE key LIKE 'stop:%'")
        log.append(tenant="acme", key_id="k", action="identify")
        assert log.verify().ok


def test_a_newer_govern_schema_is_refused(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "g.db") as store:
        AuditLog(store)
    con = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema:govern'")
    con.close()
    with (
        SqliteStore(tmp_path / "g.db") as store,
        pytest.raises(GalleryFormatError, match="Upgrade"),
    ):
        AuditLog(store)


def test_the_gallerys_migrations_name_no_govern_table() -> None:
    text = json.dumps([list(_statements(m)) for m in _MIGRATIONS])
    assert "api_keys" not in text and "CREATE TABLE audit" not in text
