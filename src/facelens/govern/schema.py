"""govern's own tables and their migrations: API keys, the audit trail, govern's state (the
stop control, the audit head), retention policies and the last activity of each person, and
the alerts that wait for two people's confirmation.

The gallery store runs these steps (``Tables.apply_migrations``) but does not know
them: the gallery's migrations create only the gallery's tables. Step 1 finds the keys and
audit tables already present in stores made before govern owned them (the gallery's old
step 2 made them) and leaves them as they are; step 5 numbers and chains the audit trail per
tenant, keeping the records written before as the one chain they were.
"""

from __future__ import annotations

from facelens.gallery.contract import Tables

__all__ = ["COMPONENT", "MIGRATIONS", "ensure_schema"]

COMPONENT = "govern"

_KEYS_AND_AUDIT = """
    CREATE TABLE IF NOT EXISTS api_keys (
        id          TEXT PRIMARY KEY,
        tenant      TEXT NOT NULL,
        name        TEXT NOT NULL DEFAULT '',
        salt        {blob} NOT NULL,
        hash        {blob} NOT NULL,
        scopes      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys(tenant);
    CREATE TABLE IF NOT EXISTS audit (
        seq          {bigint} PRIMARY KEY,
        time         TEXT NOT NULL,
        tenant       TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        action       TEXT NOT NULL,
        gallery      TEXT,
        probe_sha256 TEXT,
        candidates   TEXT NOT NULL DEFAULT '[]',
        threshold    {real},
        model        TEXT,
        decision     TEXT NOT NULL DEFAULT '{{}}',
        prev_hash    TEXT NOT NULL,
        hash         TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS audit_tenant ON audit(tenant, seq);
"""

# 2: govern's own state, moved out of the gallery's meta table
_STATE = """
    CREATE TABLE govern_state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO govern_state(key, value)
        SELECT key, value FROM meta WHERE key = 'audit_head' OR key LIKE 'stop:%';
    DELETE FROM meta WHERE key = 'audit_head' OR key LIKE 'stop:%';
"""

# 3: retention: a policy per gallery, and when each person was last enrolled or matched
_RETENTION = """
    CREATE TABLE retention_policies (
        gallery             TEXT PRIMARY KEY,
        max_idle_days       INTEGER NOT NULL,
        consent_grace_days  INTEGER NOT NULL
    );
    CREATE TABLE person_activity (
        identity_id   TEXT PRIMARY KEY,
        gallery       TEXT NOT NULL,
        last_enrolled TEXT,
        last_matched  TEXT
    );
    CREATE INDEX person_activity_gallery ON person_activity(gallery);
"""

# 4: two-person confirmation: alerts held until two keys confirm, and each key's vote
_ALERTS = """
    CREATE TABLE alerts (
        id          TEXT PRIMARY KEY,
        tenant      TEXT NOT NULL,
        gallery     TEXT NOT NULL,
        identity_id TEXT NOT NULL,
        score       {real},
        source      TEXT NOT NULL,
        stream      TEXT NOT NULL DEFAULT '',
        track_id    INTEGER,
        event       TEXT NOT NULL,
        shot        {blob},
        required    INTEGER NOT NULL,
        status      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        decided_at  TEXT
    );
    CREATE INDEX alerts_pending ON alerts(tenant, status, created_at);
    CREATE TABLE alert_votes (
        alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        key_id   TEXT NOT NULL,
        vote     TEXT NOT NULL,
        at       TEXT NOT NULL,
        PRIMARY KEY (alert_id, key_id)
    );
"""

# 5: sequence numbers and hash chains per tenant (issue 29, finding 14: one shared numbering
# told every tenant how much the others did). The records already written are kept exactly
# as they were, numbers, links and hashes (``legacy = 1``): they still form the one chain all
# tenants shared and are checked as such, up to its newest record, whose mark moves from
# ``audit_head`` to ``audit_legacy_head``. A tenant's own chain starts after its last such
# record and its first link is that mark's hash, so the old trail cannot be cut or rewritten
# without breaking every tenant's chain (facelens.govern.audit).
_PER_TENANT = """
    CREATE TABLE audit_v5 (
        tenant       TEXT NOT NULL,
        seq          {bigint} NOT NULL,
        time         TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        action       TEXT NOT NULL,
        gallery      TEXT,
        probe_sha256 TEXT,
        candidates   TEXT NOT NULL DEFAULT '[]',
        threshold    {real},
        model        TEXT,
        decision     TEXT NOT NULL DEFAULT '{{}}',
        prev_hash    TEXT NOT NULL,
        hash         TEXT NOT NULL,
        legacy       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, seq)
    );
    INSERT INTO audit_v5(tenant, seq, time, key_id, action, gallery, probe_sha256, candidates,
        threshold, model, decision, prev_hash, hash, legacy)
        SELECT tenant, seq, time, key_id, action, gallery, probe_sha256, candidates, threshold,
            model, decision, prev_hash, hash, 1 FROM audit;
    DROP TABLE audit;
    ALTER TABLE audit_v5 RENAME TO audit;
    CREATE INDEX audit_legacy ON audit(seq) WHERE legacy = 1;
    UPDATE govern_state SET key = 'audit_legacy_head' WHERE key = 'audit_head';
"""

_TYPES = {
    "sqlite": {"blob": "BLOB", "bigint": "INTEGER", "real": "REAL"},
    "postgresql": {"blob": "BYTEA", "bigint": "BIGINT", "real": "DOUBLE PRECISION"},
}

MIGRATIONS: dict[str, tuple[str, ...]] = {
    dialect: (
        _KEYS_AND_AUDIT.format(**types),
        _STATE,
        _RETENTION,
        _ALERTS.format(**types),
        _PER_TENANT.format(**types),
    )
    for dialect, types in _TYPES.items()
}


def ensure_schema(store: Tables) -> None:
    """Create or upgrade govern's tables in ``store`` (once per open store)."""
    from facelens.archive.store import ensure_archive_schema

    store.apply_migrations(COMPONENT, MIGRATIONS[store.dialect])
    ensure_archive_schema(store)  # erasing a person erases the archive's faces named as them
