"""PostgreSQL only: the HNSW index really answers, schema versions, clear connection errors."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from facelens import Embeddings
from facelens.errors import GalleryError, GalleryFormatError
from facelens.gallery import AnnConfig, Consent, NewSample
from facelens.gallery.gallery import RawGallery
from facelens.gallery.pgvector import vector_text as _vector_text
from facelens.gallery.postgres import PG_SCHEMA_VERSION, PostgresStore

MODEL = "dlib_resnet_v1"
NOW = "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_large_galleries_are_answered_by_the_hnsw_index(pg_url: str, mode: str) -> None:
    """pgvector 0.8 (auto): a half-precision HNSW index, filters inside an iterative index
    scan, full-precision re-rank; forced to pgvector 0.5's ways (legacy): a full-precision
    index, filters after it. The same answers, exact scores, either way."""
    store = PostgresStore(pg_url, ann=AnnConfig(min_samples=50), pgvector=mode)
    assert store.features.version.startswith("0.8")
    assert store.features.halfvec is store.features.iterative_scan is (mode == "auto")
    g = RawGallery(store)
    other = RawGallery(store, "other")  # most of the index belongs to another gallery
    rng = np.random.default_rng(0)
    v = rng.normal(size=(240, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for j, e in enumerate(v):
        target = g if j < 120 else other
        target.enroll(f"P{j:03d}", [NewSample(e, MODEL, {}, f"{j:064x}")], Consent("p", "x", NOW))
    found = g.search(Embeddings(v[:30], MODEL), k=3)
    assert [c[0].name for c in found] == [f"P{j:03d}" for j in range(30)]
    assert all(len(c) == 3 for c in found)
    assert all(c[0].score == pytest.approx(1.0, abs=1e-6) for c in found)  # re-ranked exactly
    # a gallery that is a sliver of the index: most of a probe's nearest samples are another
    # gallery's, and the search still finds k of its own (iterative scan, or a longer list)
    tiny = RawGallery(store, "tiny")
    for j in range(3):
        e = v[j] * -1.0  # far from everyone above
        tiny.enroll(f"T{j}", [NewSample(e, MODEL, {}, f"t{j:063x}")], Consent("p", "x", NOW))
    (few,) = tiny.search(Embeddings(-v[:1], MODEL), k=3)
    assert few[0].name == "T0" and len(few) == 3
    index = "samples_half_128" if mode == "auto" else "samples_embedding_128"
    cast = "halfvec" if mode == "auto" else "vector"
    with psycopg.connect(pg_url) as c:
        names = {r[0] for r in c.execute("SELECT indexname FROM pg_indexes")}
        assert (
            index in names
            and ({"samples_half_128", "samples_embedding_128"} - {index}) & names == set()
        )
        c.execute("SET enable_seqscan = off")  # the planner's choice at 240 rows is not ours
        plan = "\n".join(
            r[0]
            for r in c.execute(
                "EXPLAIN SELECT id FROM samples WHERE dim = 128 AND embedding IS NOT NULL "
                f"ORDER BY embedding::{cast}(128) <#> %s::{cast}(128) LIMIT 5",
                (_vector_text(v[0]),),
            )
        )
    assert index in plan
    store.close()


def test_a_newer_schema_or_a_foreign_database_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO facelens_migrations(version) VALUES (%s)", (PG_SCHEMA_VERSION + 1,))
    with pytest.raises(GalleryFormatError, match="Upgrade facelens"):
        PostgresStore(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP TABLE facelens_migrations")
    with pytest.raises(GalleryFormatError, match="another application"):
        PostgresStore(pg_url)


def test_an_unreachable_server_is_a_clear_error() -> None:
    url = "postgresql://someone:secret@127.0.0.1:1/nowhere?connect_timeout=1"
    with pytest.raises(GalleryError, match="cannot connect") as e:
        PostgresStore(url)
    assert "secret" not in str(e.value)


def test_enrolled_templates_are_searchable_while_staged_and_then_indexed(pg_url: str) -> None:
    """One-at-a-time enrolment writes the template outside the HNSW index (``staged``) and a
    background thread moves it in: a search finds the person at once either way, an erasure
    takes staged templates too, and templates a stopped process left staged are indexed by
    the next store opened."""
    store = PostgresStore(pg_url, ann=AnnConfig(min_samples=20))
    store._kick_indexer = lambda: None  # type: ignore[method-assign]  # nothing moves yet
    g = RawGallery(store)
    rng = np.random.default_rng(3)
    v = rng.normal(size=(60, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for j, e in enumerate(v):
        g.enroll(f"S{j:02d}", [NewSample(e, MODEL, {}, f"{j:064x}")], Consent("p", "x", NOW))
    assert store.staged_count() == 60
    found = g.search(Embeddings(v[:10], MODEL), k=2)  # the HNSW path (60 >= min_samples)
    assert [c[0].name for c in found] == [f"S{j:02d}" for j in range(10)]
    assert all(c[0].score == pytest.approx(1.0, abs=1e-6) for c in found)
    back = g.samples("S05", by="name")[0].embedding  # read back from the staged column, as enrolled
    assert np.abs(back - v[5]).max() < 1e-6
    g.delete("S00", by="name")  # erased while staged
    assert g.search(Embeddings(v[:1], MODEL), k=1)[0][0].name != "S00"
    store.close()  # nothing indexed them: they stay staged, still searchable
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT count(*) FROM samples WHERE staged IS NOT NULL").fetchone()[0]
        assert (
            c.execute("SELECT count(*) FROM samples WHERE embedding IS NOT NULL").fetchone()[0] == 0
        )

    again = PostgresStore(pg_url, ann=AnnConfig(min_samples=20))  # indexes what was left
    g2 = RawGallery(again)
    g2.enroll("Late", [NewSample(-v[0], MODEL, {}, "f" * 64)], Consent("p", "x", NOW))
    again.close()  # waits for this process's indexer
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT count(*) FROM samples WHERE staged IS NOT NULL").fetchone()[0] == 0
        assert (
            c.execute("SELECT count(*) FROM samples WHERE embedding IS NOT NULL").fetchone()[0]
            == 60
        )
    third = PostgresStore(pg_url, ann=AnnConfig(min_samples=20))
    found = RawGallery(third).search(Embeddings(np.stack([v[7], -v[0]]), MODEL), k=1)
    assert [c[0].name for c in found] == ["S07", "Late"]
    # back-pressure: past staged_max waiting templates, enrolment updates the graph itself
    third._kick_indexer = lambda: None  # type: ignore[method-assign]
    third.staged_max = 3
    w = rng.normal(size=(5, 128)).astype(np.float32)
    for j, e in enumerate(w / np.linalg.norm(w, axis=1, keepdims=True)):
        RawGallery(third).enroll(
            f"B{j}", [NewSample(e, MODEL, {}, f"b{j:063x}")], Consent("p", "x", NOW)
        )
    assert third.staged_count() == 3
    third.close()


def test_a_failed_pipelined_enrolment_leaves_nothing_and_the_store_usable(pg_url: str) -> None:
    """Enrolment is pipelined (writes sent without waiting for each): a write the server
    refuses still fails the call and rolls back the whole enrolment."""
    store = PostgresStore(pg_url)
    g = RawGallery(store)
    v = np.zeros(128, np.float32)
    v[0] = 1.0
    store._emb_params = lambda e: (None, None, "[1,2]")  # type: ignore[method-assign]
    with pytest.raises(psycopg.errors.CheckViolation):
        g.enroll("Broken", [NewSample(v, MODEL, {}, "a" * 64)], Consent("p", "x", NOW))
    del store._emb_params
    assert g.identities() == []
    r = g.enroll("Fine", [NewSample(v, MODEL, {}, "b" * 64)], Consent("p", "x", NOW))
    assert r.created and [i.name for i in g.identities()] == ["Fine"]
    assert r.identity.consents[0].id is not None
    assert g.get("Fine", by="name") == r.identity  # described from what was written, as read back
    store.close()
