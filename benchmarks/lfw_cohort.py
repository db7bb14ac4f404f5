"""Does normalising 1:1 scores against a cohort make LFW verification more accurate?

    .venv/bin/python benchmarks/lfw_cohort.py [--write docs/accuracy.md]

Symmetric score normalisation (S-norm with the top of the cohort, as facelens's open-set
rule does for 1:N): a pair's score becomes ``s(a, b) - w/2 * (top_K(a) + top_K(b))``, where
``top_K(x)`` is the mean of x's K best similarities to a cohort of other people's images. A
face that resembles many strangers gets its scores lowered. The cohort of each View 2 fold
is every image of the people who appear in none of that fold's pairs (View 2's folds share
no person, so a cohort never holds a pair's own people); the threshold is still chosen on
the nine other folds. Both systems, the same images, one run: facelens's default embeddings
and face_recognition's (its score is ``-distance``; its cohort similarities likewise).
Embeddings come from ``benchmarks/calibrate.py``'s cache (computed when absent).

Every (K, w) of the grid is reported, so the best cell is an optimistic figure (chosen on
the test folds); the no-normalisation row is the protocol's own.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from calibrate import Key, lfw_embeddings
from facelens.eval.lfw import read_pairs, read_people
from facelens.eval.metrics import ten_fold

KS = (10, 20, 50, 100, 300)
WEIGHTS = (0.25, 0.5, 1.0)


def similarity(system: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row of ``a`` against each row of ``b``, as the system scores a pair."""
    if system == "face_recognition":
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return -np.sqrt(np.maximum(d2, 0))
    return a @ b.T


def normalised(
    system: str, emb: dict[Key, Any], pairs: list[Any]
) -> tuple[np.ndarray, dict[tuple[int, float], np.ndarray], int]:
    """Raw pair scores and, per (K, w), the S-normalised ones; pairs with a missing face
    score lowest ("different"), as in the protocol's other tables."""
    keys = [k for k, v in emb.items() if v is not None]
    row = {k: i for i, k in enumerate(keys)}
    vec = np.stack([emb[k] for k in keys]).astype(np.float64)
    if system != "face_recognition":
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    person = np.array([k[0] for k in keys])
    ok = np.array([(p.name_a, p.index_a) in row and (p.name_b, p.index_b) in row for p in pairs])
    fold = np.array([p.fold for p in pairs])
    raw = np.full(len(pairs), -10.0)
    out = {(k, w): np.full(len(pairs), -10.0) for k in KS for w in WEIGHTS}
    for f in np.unique(fold):
        sel = np.flatnonzero((fold == f) & ok)
        a = vec[[row[(pairs[i].name_a, pairs[i].index_a)] for i in sel]]
        b = vec[[row[(pairs[i].name_b, pairs[i].index_b)] for i in sel]]
        here = {pairs[i].name_a for i in np.flatnonzero(fold == f)}
        here |= {pairs[i].name_b for i in np.flatnonzero(fold == f)}
        cohort = vec[~np.isin(person, list(here))]
        s = -np.linalg.norm(a - b, axis=1) if system == "face_recognition" else (a * b).sum(1)
        raw[sel] = s
        sa = -np.sort(-similarity(system, a, cohort), axis=1)[:, : max(KS)]
        sb = -np.sort(-similarity(system, b, cohort), axis=1)[:, : max(KS)]
        for k in KS:
            t = sa[:, :k].mean(1) + sb[:, :k].mean(1)
            for w in WEIGHTS:
                out[(k, w)][sel] = s - w / 2 * t
    return raw, out, int((~ok).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    people = read_people(lfw)
    keys = sorted((n, i) for n, idx in people.items() for i in idx)
    pairs = read_pairs(lfw / "pairs.txt")
    systems = lfw_embeddings(lfw, keys, peer=True)
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    rows = []
    for system, emb in systems.items():
        raw, norm, missing = normalised(system, emb, pairs)
        base = ten_fold(raw, same, fold)
        rows.append(
            [
                system,
                "none (the protocol's score)",
                "",
                f"{100 * base.mean:.2f}",
                f"{100 * base.std:.2f}",
                missing,
            ]
        )
        for (k, w), s in norm.items():
            r = ten_fold(s, same, fold)
            rows.append(
                [system, f"S-norm K={k}", w, f"{100 * r.mean:.2f}", f"{100 * r.std:.2f}", missing]
            )
        best = max(rows[-len(norm) :], key=lambda r: float(r[3]))
        print(f"{system}: none {100 * base.mean:.2f}, best {best[1]} w={best[2]} {best[3]}")
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/lfw_cohort.py "
            "--write docs/accuracy.md`. LFW View 2, 10 folds; each fold's cohort: every image "
            "of the people in none of its pairs.",
            md_table(
                [
                    "system",
                    "score",
                    "w",
                    "10-fold accuracy %",
                    "std %",
                    "pairs with a missing face",
                ],
                rows,
            ),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "cohort", body)


if __name__ == "__main__":
    main()
