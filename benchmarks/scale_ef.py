"""Recall@1 against exact search and identify latency as the search depth (``ef_search``)
grows, on a gallery that ``benchmarks/scale.py`` built and left in its work folder.

    .venv/bin/python benchmarks/scale_ef.py --store sqlite|postgres [--n 1e6]
        [--ef 128,192,256,320] [--probes 1000] [--write docs/benchmarks.md]

Same probes as scale.py (its generator and seed): the first half are new samples of enrolled
identities, the second half strangers; recall is reported for both halves. One store opened
per ``ef`` value; 300 warm-up searches first, as in scale.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _report import ROOT, machine, md_table, write_section
from facelens.gallery import AnnConfig, SqliteStore
from scale import (
    MODEL,
    exact_reference,
    gallery_and_probes,
    lfw_spread,
    name,
    pct,
    pg_server,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=("sqlite", "postgres"), required=True)
    ap.add_argument("--n", default="1e6")
    ap.add_argument("--ef", default="128,192,256,320")
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/facelens-scale"))
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    n = int(float(args.n))
    sp = lfw_spread()
    g, q = gallery_and_probes(sp, n)
    exact, _ = exact_reference(g, q)
    del g
    half = len(q) // 2
    pick = np.r_[0 : args.probes // 2, half : half + args.probes // 2]
    if args.store == "sqlite":
        path = args.work / f"sqlite-{n}.db"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run benchmarks/scale.py --sizes {args.n} first")
    else:
        admin = pg_server(args.work)
        head, _, query = admin.partition("?")
        url = f"{head.rsplit('/', 1)[0]}/scale_{n}" + (f"?{query}" if query else "")
    rows = []
    for ef in (int(x) for x in args.ef.split(",")):
        cfg = AnnConfig(ef_search=ef)
        if args.store == "sqlite":
            store = SqliteStore(path, ann=cfg)
        else:
            from facelens.gallery.postgres import PostgresStore

            store = PostgresStore(url, ann=cfg)
        warm = np.random.default_rng(1)
        w = q[warm.integers(0, len(q), 300)] + warm.normal(0, 0.02, (300, 128)).astype(np.float32)
        store.search("default", MODEL, w / np.linalg.norm(w, axis=1, keepdims=True), 5)
        ok, ms = [], []
        for i in pick:
            t0 = time.perf_counter()
            r = store.search("default", MODEL, q[i][None], 5)[0]
            ms.append((time.perf_counter() - t0) * 1000)
            ok.append(bool(r) and r[0].name == name(exact[i]))
        store.close()
        hit = np.array(ok)
        m = len(pick) // 2
        rows.append(
            [
                ef,
                f"{hit.mean():.3f}",
                f"{hit[:m].mean():.3f}",
                f"{hit[m:].mean():.3f}",
                f"{pct(ms, 50):.2f}",
                f"{pct(ms, 99):.2f}",
            ]
        )
        print(rows[-1], flush=True)
    what = (
        f"SQLite + faiss HNSW (m={AnnConfig().m}, ef_construction={AnnConfig().ef_construction})"
        if args.store == "sqlite"
        else "PostgreSQL + pgvector HNSW (m=16, ef_construction=64)"
    )
    body = (
        f"{what}, {n:,} identities, {len(pick)} probes (half strangers). Command: "
        f"`.venv/bin/python benchmarks/scale_ef.py --store {args.store} --n {args.n} --ef "
        f"{args.ef} --write docs/benchmarks.md` ({machine()}).\n\n"
        + md_table(
            ["ef_search", "recall@1", "enrolled", "strangers", "p50 ms", "p99 ms"],
            rows,
        )
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, f"scale-ef-{args.store}", body)


if __name__ == "__main__":
    main()
