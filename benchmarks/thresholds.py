"""The default thresholds, measured on LFW View 1 (the development split).

    .venv/bin/python benchmarks/thresholds.py [--write docs/accuracy.md]

Each image goes through the pipeline as a user's would (HOG upsample 1, the largest face);
a pair where either image has no face counts as "different". View 1's train and test people
are disjoint, so every figure on the test side is held out.

- "balanced" (1:1 default): the threshold that maximises accuracy on ``pairsDevTrain.txt``
  (2,200 pairs).
- "fmr_1e-3" and "strict" (FMR 1e-4, the 1:N default): thresholds whose false-match rate over
  *every* cross-person pair of the pairsDevTrain images (millions of pairs) is 1e-3 and 1e-4.

Each is then applied, unchanged, to ``pairsDevTest.txt`` and to every cross-person pair of its
images. The values go into ``src/facelens/match/thresholds.py`` by hand. Embeddings are cached
in ``benchmarks/.cache`` (delete it after changing the pipeline).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import facelens
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import Pipeline
from facelens.eval import lfw_image, read_pairs


def embed_all(pipe: Pipeline, lfw, keys):  # type: ignore[no-untyped-def]
    out = {}
    t = time.perf_counter()
    for n, (name, idx) in enumerate(sorted(keys)):
        img = facelens.load_image(lfw_image(lfw, name, idx))
        faces = pipe.detect(img)
        out[(name, idx)] = (
            pipe.embed(img, faces[faces.largest()]).vectors[0] if len(faces) else None
        )
        if n % 500 == 0:
            print(f"  {n}/{len(keys)} images, {time.perf_counter() - t:.0f} s", flush=True)
    return out


def cached_embeddings(pipe: Pipeline, lfw, keys):  # type: ignore[no-untyped-def]
    cache = ROOT / "benchmarks" / ".cache" / f"lfw_dev_{pipe.model}_{pipe.detector.name}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        names, idxs, vecs, ok = z["names"], z["idxs"], z["vecs"], z["ok"]
        return {
            (str(n), int(i)): (v if k else None)
            for n, i, v, k in zip(names, idxs, vecs, ok, strict=True)
        }
    emb = embed_all(pipe, lfw, keys)
    ks = sorted(emb)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        names=np.array([k[0] for k in ks]),
        idxs=np.array([k[1] for k in ks]),
        vecs=np.stack([emb[k] if emb[k] is not None else np.zeros(128, np.float32) for k in ks]),
        ok=np.array([emb[k] is not None for k in ks]),
    )
    return emb


def impostor_scores(emb, pairs):  # type: ignore[no-untyped-def]
    """Similarities of every cross-person pair of the images in ``pairs`` (and genuine ones)."""
    keys = sorted({(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs})
    keys = [k for k in keys if emb[k] is not None]
    v = np.stack([emb[k] for k in keys]).astype(np.float32)
    _, person = np.unique([k[0] for k in keys], return_inverse=True)
    iu = np.triu_indices(len(keys), 1)
    s = (v @ v.T)[iu]
    same = person[iu[0]] == person[iu[1]]
    return s[~same], s[same]


def at_fmr(impostors, fmr):  # type: ignore[no-untyped-def]
    """The lowest threshold whose false-match rate is at most ``fmr``."""
    srt = np.sort(impostors)
    k = int(np.floor(len(srt) * fmr))
    return float(np.nextafter(srt[len(srt) - k - 1], np.float32(2))) if k < len(srt) else -1.0


def scores(pairs, emb):  # type: ignore[no-untyped-def]
    s, y, missed = [], [], 0
    for p in pairs:
        a, b = emb[(p.name_a, p.index_a)], emb[(p.name_b, p.index_b)]
        if a is None or b is None:
            missed += 1
            s.append(-1.0)
        else:
            s.append(float(a @ b))
        y.append(p.same)
    return np.array(s), np.array(y), missed


def best_threshold(s, y):  # type: ignore[no-untyped-def]
    cands = np.unique(s)
    mids = (cands[1:] + cands[:-1]) / 2
    acc = [((s >= t) == y).mean() for t in mids]
    return float(mids[int(np.argmax(acc))]), float(max(acc))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    train, test = read_pairs(lfw / "pairsDevTrain.txt"), read_pairs(lfw / "pairsDevTest.txt")
    keys = {(p.name_a, p.index_a) for p in train + test} | {
        (p.name_b, p.index_b) for p in train + test
    }
    pipe = Pipeline()
    emb = cached_embeddings(pipe, lfw, keys)
    s_tr, y_tr, miss_tr = scores(train, emb)
    s_te, y_te, miss_te = scores(test, emb)
    imp_tr, _ = impostor_scores(emb, train)
    imp_te, gen_te = impostor_scores(emb, test)
    t_bal, acc_tr = best_threshold(s_tr, y_tr)
    points = [
        ("balanced", t_bal, "max accuracy, pairsDevTrain"),
        ("fmr_1e-3", at_fmr(imp_tr, 1e-3), "FMR 1e-3, all pairsDevTrain cross pairs"),
        ("strict", at_fmr(imp_tr, 1e-4), "FMR 1e-4, all pairsDevTrain cross pairs"),
    ]
    rows = []
    for name, t, how in points:
        acc_te = float(((s_te >= t) == y_te).mean())
        rows.append(
            [
                name,
                how,
                f"{t:.4f}",
                f"{acc_te:.4f}",
                f"{(imp_te >= t).mean():.2e}",
                f"{(gen_te >= t).mean():.4f}",
            ]
        )
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/thresholds.py "
            f"--write docs/accuracy.md`. Pipeline: detector `{pipe.detector.name}` upsample "
            f"{pipe.config.detect.upsample}, largest face, embedder `{pipe.embedder.name}` "
            f"(model `{pipe.model}`). Missed faces: {miss_tr} of {len(train)} train pairs, "
            f'{miss_te} of {len(test)} test pairs (counted as "different"). Threshold-setting '
            f"set: {len(imp_tr):,} cross-person pairs; held-out set: {len(imp_te):,} cross-person "
            f"and {len(gen_te):,} same-person pairs. Accuracy at the balanced threshold on "
            f"pairsDevTrain: {acc_tr:.4f}.",
            md_table(
                [
                    "operating point",
                    "chosen by",
                    "cosine threshold",
                    "pairsDevTest accuracy (held out)",
                    "FMR on held-out cross pairs",
                    "TAR on held-out same-person pairs",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "dev-threshold", body)


if __name__ == "__main__":
    main()
