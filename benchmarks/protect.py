"""Protected templates: what sealing costs, and whether the per-gallery transform unlinks.

    .venv/bin/python benchmarks/protect.py [--identities 100000] [--write docs/benchmarks.md]

1. **Cost of sealing** (AES-256-GCM on every template, one run): two SQLite stores of the same
   ``--identities`` face-shaped synthetic identities (``benchmarks/scale.py``'s model of LFW's
   between- and within-person spread; one sample each), one with a key and one without (both
   transform templates: every gallery does). Bulk load (``import_identities``, one
   transaction), 200 single enrolments (``RawGallery.enroll``, one transaction each) at that
   size, the first search after opening (reads every template: the cold start; at 1e5 the
   HNSW index is built then), 500 warm searches, and ``rekey`` (re-seal and re-transform
   everything). Each figure as the ratio sealed / plain.
2. **Unlinkability on LFW**: facelens's embeddings of every LFW image
   (``benchmarks/.cache/lfw_all_facelens.npz``, made by ``benchmarks/calibrate.py``) enrolled
   in two galleries of one sealed store, each image an identity. The stored templates, opened
   with the key (the strongest attacker short of the galleries' secrets), are compared across
   the galleries for View 2's 3,000 same-person pairs (image A of the pair from gallery 1,
   image B from gallery 2) and its 3,000 different-person pairs: the ROC AUC of those scores
   (0.5: the same person is no more similar across galleries than two strangers). Within one
   gallery the same pairs give LFW's 10-fold accuracy, which must equal the accuracy of the
   untransformed embeddings.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens import Embeddings
from facelens.eval.lfw import read_pairs
from facelens.eval.metrics import roc_auc, ten_fold
from facelens.gallery import Consent, NewSample
from facelens.gallery.gallery import RawGallery
from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import Identity, Sample
from facelens.gallery.stores import open_store
from scale import CACHE, centres, lfw_spread, samples_of

MODEL = "dlib_resnet_v1"
NOW = "2026-01-01T00:00:00+00:00"
CONSENT = Consent(purpose="benchmark", granted_by="synthetic", granted_at=NOW)


def items(vectors: np.ndarray, prefix: str) -> list[tuple[Identity, list[Sample]]]:
    out = []
    for i, v in enumerate(vectors):
        iid = f"{prefix}{i:08d}"
        ident = Identity(iid, "default", iid, {}, NOW, NOW, 1, (CONSENT,), {MODEL: 1}, 0)
        out.append((ident, [Sample(f"s{iid}", iid, MODEL, v, {}, f"{i:064x}", None, NOW)]))
    return out


def cost(n: int, work: Path) -> list[list[Any]]:
    rng = np.random.default_rng(7)
    sp = lfw_spread()
    c = centres(sp, n, rng)
    enrolled = samples_of(sp, c, rng)
    probes = samples_of(sp, c[rng.integers(0, n, 500)], rng)
    extra = samples_of(sp, centres(sp, 200, rng), rng)
    key = TemplateKey(bytes(range(32)))
    out: dict[str, dict[str, float]] = {}
    with open_store(work / "warmup.db") as warm:  # imports, BLAS and faiss start-up, once
        warm.import_identities("default", items(enrolled[:100], "w"))
        RawGallery(warm).search(Embeddings(probes[:1], MODEL), 5)
    for label, k in (("plain", None), ("sealed", key)):
        path = work / f"{label}.db"
        row: dict[str, float] = {}
        store = open_store(path, key=k)
        t = time.perf_counter()
        store.import_identities("default", items(enrolled, "p"))
        row["bulk load, per identity (µs)"] = (time.perf_counter() - t) / n * 1e6
        g = RawGallery(store)
        times = []
        for i, v in enumerate(extra):
            t = time.perf_counter()
            g.enroll(f"new {i}", [NewSample(v, MODEL, {}, f"{n + i:064x}")], CONSENT)
            times.append(time.perf_counter() - t)
        row["enrol one person (ms, median)"] = statistics.median(times) * 1e3
        store.close()
        store = open_store(path, key=k)  # cold: nothing cached, every template read again
        g = RawGallery(store)
        t = time.perf_counter()
        g.search(Embeddings(probes[:1], MODEL), 5)
        row["first search after opening (s)"] = time.perf_counter() - t
        times = []
        for p in probes:
            t = time.perf_counter()
            g.search(Embeddings(p[None], MODEL), 5)
            times.append(time.perf_counter() - t)
        row["search, warm (ms, median)"] = statistics.median(times) * 1e3
        t = time.perf_counter()
        store.rekey(TemplateKey(bytes(range(1, 33))))
        row["rotate-key: re-seal + re-transform all (s)"] = time.perf_counter() - t
        store.close()
        out[label] = row
        print(label, {k: round(v, 3) for k, v in row.items()}, flush=True)
    rows = []
    for what in out["plain"]:
        a, b = out["plain"][what], out["sealed"][what]
        rows.append([what, f"{a:.3g}", f"{b:.3g}", f"{b / a:.2f}"])
    return rows


def unlinkability(work: Path) -> tuple[list[list[Any]], dict[str, float]]:
    z = np.load(CACHE / "lfw_all_facelens.npz")
    names, index, ok, vecs = z["names"], z["idx"], z["ok"], z["vecs"]
    keys = [(str(n), int(i)) for n, i, o in zip(names, index, ok, strict=True) if o]
    raw = vecs[ok].astype(np.float32)
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    row = {k: j for j, k in enumerate(keys)}
    store = open_store(work / "lfw.db", key=TemplateKey(bytes(range(32))))
    stored = {}
    for gallery in ("site-1", "site-2"):
        store.import_identities(gallery, items(raw, gallery))
        rows = store.fetch(
            "SELECT s.identity_id, s.dim, s.embedding FROM samples s JOIN identities i "
            "ON i.id = s.identity_id WHERE i.gallery = ? ORDER BY s.identity_id",
            (gallery,),
        )
        stored[gallery] = np.stack([store._emb_value(r[2], int(r[1])) for r in rows])
    store.close()
    pairs = read_pairs(data_root() / "lfw" / "pairs.txt")
    usable = [p for p in pairs if (p.name_a, p.index_a) in row and (p.name_b, p.index_b) in row]
    a = np.array([row[(p.name_a, p.index_a)] for p in usable])
    b = np.array([row[(p.name_b, p.index_b)] for p in usable])
    same = np.array([p.same for p in usable])
    folds = np.array([p.fold for p in usable])

    def scores(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", x[a].astype(np.float64), y[b].astype(np.float64))

    untransformed = scores(raw, raw)
    within = scores(stored["site-1"], stored["site-1"])
    across = scores(stored["site-1"], stored["site-2"])
    acc_raw = ten_fold(untransformed, same, folds)
    acc_within = ten_fold(within, same, folds)
    figures = {
        "pairs": len(usable),
        "auc_across": roc_auc(across, same),
        "auc_within": roc_auc(within, same),
        "auc_raw": roc_auc(untransformed, same),
        "acc_raw": acc_raw.mean,
        "acc_within": acc_within.mean,
        "max_score_change": float(np.abs(within - untransformed).max()),
    }
    gen, imp = across[same], across[~same]
    table = [
        [
            "untransformed embeddings",
            f"{figures['auc_raw']:.4f}",
            f"{acc_raw.mean:.4f} ± {acc_raw.std:.4f}",
        ],
        [
            "within one gallery (stored, opened)",
            f"{figures['auc_within']:.4f}",
            f"{acc_within.mean:.4f} ± {acc_within.std:.4f}",
        ],
        [
            "across two galleries (same store, same key)",
            f"{figures['auc_across']:.4f}",
            f"mated {gen.mean():+.3f} ± {gen.std():.3f}, non-mated {imp.mean():+.3f} ± "
            f"{imp.std():.3f}",
        ],
    ]
    return table, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--identities", type=int, default=100_000)
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:  # on the disk the gallery would use
        work = Path(tmp)
        link_rows, fig = unlinkability(work)
        print(fig, flush=True)
        cost_rows = cost(args.identities, work)
    body = f"""## Protected templates (issue 16)

`.venv/bin/python benchmarks/protect.py --identities {args.identities} --write docs/benchmarks.md`
({machine()}).

**What sealing costs** (AES-256-GCM on every template, [privacy](privacy.md)): two SQLite
stores of {args.identities:,} face-shaped synthetic identities in one run, one with a key and
one without (both apply their gallery's transform).

{md_table(["", "plain", "sealed", "sealed / plain"], cost_rows)}

**Unlinkability on LFW** ({fig["pairs"]} View 2 pairs, facelens's embeddings of every LFW
image enrolled in two galleries of one sealed store; stored templates opened with the key):

{md_table(["scores of the pairs", "ROC AUC", "10-fold accuracy / score spread"], link_rows)}

Across galleries the same person is as similar as two strangers (AUC
{fig["auc_across"]:.3f}); within a gallery the decisions are those of the untransformed
embeddings (largest change of a pair's score {fig["max_score_change"]:.1e}, float32
rounding).
"""
    print(body)
    if args.write:
        write_section(ROOT / args.write, "protect", body)


if __name__ == "__main__":
    main()
