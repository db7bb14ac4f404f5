"""The gallery's tables, for each dialect, in one place: the migrations each store runs
(a step per schema version; a released step is never edited, a change is a new step), written
once where the dialects agree (``_NAME_KEYS``). facelens.govern and facelens.archive keep their
own tables' steps (``facelens.govern.schema``, ``facelens.archive.store``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from facelens.errors import GalleryFormatError

__all__ = ["POSTGRESQL", "SQLITE", "statements"]

# each name's look (facelens.text.name_key), so no two names of a gallery look alike (the
# store fills it in when it opens: the key is computed in Python)
_NAME_KEYS = """
    ALTER TABLE identities ADD COLUMN name_key TEXT;
    CREATE INDEX identities_name_key ON identities(gallery, name_key);
"""

# SQLite: each entry migrates from version i to i + 1 (PRAGMA user_version).
SQLITE: tuple[str, ...] = (
    """
    CREATE TABLE galleries (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE identities (
        id          TEXT PRIMARY KEY,
        gallery     TEXT NOT NULL REFERENCES galleries(name) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        metadata    TEXT NOT NULL DEFAULT '{}',
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        UNIQUE (gallery, name)
    );
    CREATE TABLE consents (
        id          INTEGER PRIMARY KEY,
        identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        purpose     TEXT NOT NULL,
        granted_by  TEXT NOT NULL,
        granted_at  TEXT NOT NULL,
        expires_at  TEXT,
        recorded_by TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX consents_identity ON consents(identity_id);
    CREATE TABLE samples (
        id           TEXT PRIMARY KEY,
        identity_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        model        TEXT NOT NULL,
        dim          INTEGER NOT NULL,
        embedding    BLOB NOT NULL,
        quality      TEXT NOT NULL DEFAULT '{}',
        image_sha256 TEXT NOT NULL,
        box          TEXT,
        created_at   TEXT NOT NULL,
        CHECK (length(embedding) = 4 * dim)
    );
    CREATE INDEX samples_identity ON samples(identity_id);
    CREATE INDEX samples_model ON samples(model);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('application', 'facelens'), ('generation', '0');
    """,
    # 2: (was: the API keys and audit trail; those are facelens.govern's own tables now,
    # created by its migrations, facelens.govern.schema, which find them here in older files)
    """
    SELECT 1;
    """,
    # 3: sample sequence numbers and tombstones, so an approximate index can follow changes
    """
    CREATE TABLE sample_seq (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        sample_id  TEXT NOT NULL UNIQUE
    );
    INSERT INTO sample_seq(sample_id) SELECT id FROM samples ORDER BY created_at, id;
    CREATE TABLE sample_tombstones (
        seq        INTEGER PRIMARY KEY,
        generation INTEGER NOT NULL
    );
    CREATE INDEX sample_tombstones_generation ON sample_tombstones(generation);
    CREATE TRIGGER samples_seq_add AFTER INSERT ON samples BEGIN
        INSERT INTO sample_seq(sample_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER samples_seq_del AFTER DELETE ON samples BEGIN
        INSERT INTO sample_tombstones(seq, generation)
            SELECT seq, CAST((SELECT value FROM meta WHERE key = 'generation') AS INTEGER)
            FROM sample_seq WHERE sample_id = OLD.id;
        DELETE FROM sample_seq WHERE sample_id = OLD.id;
    END;
    INSERT INTO meta(key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    """,
    # 4: per-gallery settings, and the aligned chips a gallery may keep to re-template
    """
    ALTER TABLE galleries ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE chips (
        identity_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        image_sha256 TEXT NOT NULL,
        format       TEXT NOT NULL,
        data         BLOB NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (identity_id, image_sha256)
    );
    """,
    # 5: protected templates (facelens.gallery.protect): a template may be sealed (AES-GCM adds
    # 32 bytes), and each gallery keeps its transform secret
    """
    CREATE TABLE samples_v5 (
        id           TEXT PRIMARY KEY,
        identity_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        model        TEXT NOT NULL,
        dim          INTEGER NOT NULL,
        embedding    BLOB NOT NULL,
        quality      TEXT NOT NULL DEFAULT '{}',
        image_sha256 TEXT NOT NULL,
        box          TEXT,
        created_at   TEXT NOT NULL,
        CHECK (length(embedding) IN (4 * dim, 4 * dim + 32))
    );
    INSERT INTO samples_v5 SELECT id, identity_id, model, dim, embedding, quality, image_sha256,
        box, created_at FROM samples;
    DROP TABLE samples;
    ALTER TABLE samples_v5 RENAME TO samples;
    CREATE INDEX samples_identity ON samples(identity_id);
    CREATE INDEX samples_model ON samples(model);
    CREATE TRIGGER samples_seq_add AFTER INSERT ON samples BEGIN
        INSERT INTO sample_seq(sample_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER samples_seq_del AFTER DELETE ON samples BEGIN
        INSERT INTO sample_tombstones(seq, generation)
            SELECT seq, CAST((SELECT value FROM meta WHERE key = 'generation') AS INTEGER)
            FROM sample_seq WHERE sample_id = OLD.id;
        DELETE FROM sample_seq WHERE sample_id = OLD.id;
    END;
    ALTER TABLE galleries ADD COLUMN secret BLOB;
    """,
    _NAME_KEYS,  # 6
)

# PostgreSQL: each entry migrates from version i to i + 1 (table facelens_migrations).
POSTGRESQL: tuple[str, ...] = (
    # 1: the gallery (the SQLite schema 1-3 in PostgreSQL types); facelens.govern's tables
    # (keys, audit trail) are govern's own migrations (facelens.govern.schema)
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE galleries (
        name        TEXT COLLATE "C" PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE identities (
        id          TEXT PRIMARY KEY,
        gallery     TEXT COLLATE "C" NOT NULL REFERENCES galleries(name) ON DELETE CASCADE,
        name        TEXT COLLATE "C" NOT NULL,
        metadata    TEXT NOT NULL DEFAULT '{}',
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        UNIQUE (gallery, name)
    );
    CREATE TABLE consents (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        purpose     TEXT NOT NULL,
        granted_by  TEXT NOT NULL,
        granted_at  TEXT NOT NULL,
        expires_at  TEXT,
        recorded_by TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX consents_identity ON consents(identity_id);
    CREATE TABLE samples (
        id           TEXT PRIMARY KEY,
        identity_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        model        TEXT NOT NULL,
        dim          INTEGER NOT NULL,
        embedding    vector NOT NULL,
        quality      TEXT NOT NULL DEFAULT '{}',
        image_sha256 TEXT NOT NULL,
        box          TEXT,
        created_at   TEXT NOT NULL,
        CHECK (vector_dims(embedding) = dim)
    );
    CREATE INDEX samples_identity ON samples(identity_id);
    CREATE INDEX samples_model ON samples(model);
    CREATE INDEX samples_embedding_128 ON samples
        USING hnsw ((embedding::vector(128)) vector_ip_ops) WITH (m = 16, ef_construction = 64)
        WHERE dim = 128;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES
        ('application', 'facelens'), ('generation', '0'), ('store_id', md5(random()::text));
    """,
    # 2: per-gallery settings, and the aligned chips a gallery may keep to re-template
    """
    ALTER TABLE galleries ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE chips (
        identity_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        image_sha256 TEXT NOT NULL,
        format       TEXT NOT NULL,
        data         BYTEA NOT NULL,
        created_at   TEXT NOT NULL,
        PRIMARY KEY (identity_id, image_sha256)
    );
    """,
    # 3: protected templates (facelens.gallery.protect): a sealed template has no vector
    # column (pgvector cannot search ciphertext), and each gallery keeps its transform secret
    """
    ALTER TABLE samples ALTER COLUMN embedding DROP NOT NULL;
    ALTER TABLE samples ADD COLUMN sealed BYTEA;
    ALTER TABLE samples ADD CONSTRAINT samples_one_form
        CHECK ((embedding IS NULL) <> (sealed IS NULL));
    ALTER TABLE galleries ADD COLUMN secret BYTEA;
    """,
    # 4: staged templates: one enrolled one at a time is written to ``staged`` (outside the
    # HNSW index, searched exactly) and moved into ``embedding`` (the index) in the background,
    # so enrolment does not wait for the index's graph to be updated
    """
    ALTER TABLE samples ADD COLUMN staged vector;
    ALTER TABLE samples DROP CONSTRAINT samples_one_form;
    ALTER TABLE samples ADD CONSTRAINT samples_one_form
        CHECK (num_nonnulls(embedding, sealed, staged) = 1);
    ALTER TABLE samples ADD CONSTRAINT samples_staged_dim
        CHECK (staged IS NULL OR vector_dims(staged) = dim);
    CREATE INDEX samples_staged ON samples (dim) WHERE staged IS NOT NULL;
    """,
    _NAME_KEYS,
)


def statements(script: str) -> Iterator[str]:
    """Split a migration into statements (trigger bodies hold semicolons of their own)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
    if buf.strip():
        raise GalleryFormatError(f"incomplete statement in a migration: {buf.strip()[:60]}")
