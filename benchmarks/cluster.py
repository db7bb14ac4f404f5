"""Face clustering on LFW: the peers' methods, measured (issue 18, groundwork).

    .venv/bin/python benchmarks/cluster.py [--write docs/accuracy.md]

Every LFW image's face (13,233 images of 5,749 people: the 1,680 people with at least two
images, 9,164 images, plus the 4,069 single-image people as distractors), clustered without
labels; scored against the people's names:

- pairwise precision / recall / F: over all pairs of faces put in one cluster / of one person;
- BCubed precision / recall / F: per face, the share of its cluster that is its person, and
  of its person that is in its cluster, averaged over faces.

A face left unclustered (noise) is a cluster of its own. Methods, on the same images:

- dlib's ``chinese_whispers_clustering`` on face_recognition's descriptors (dlib's ResNet,
  unnormalised), with the threshold dlib's example uses (0.5, Euclidean) and
  face_recognition's tolerance (0.6);
- DBSCAN with Immich's default parameters (cosine distance 0.5, at least 3 faces), on
  facelens's unit-length templates of the same images; and the best eps of a sweep, since
  Immich's default was chosen for another model's embeddings.

Embeddings come from ``benchmarks/.cache`` (``lfw_all_face_recognition.npz`` and
``lfw_all_facelens.npz``, made by ``benchmarks/calibrate.py``). facelens's own method is not
built yet; this fixes the yardstick it has to beat (BCubed F >= 0.95 and ahead of both).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _report import ROOT, machine, md_table, write_section

CACHE = ROOT / "benchmarks" / ".cache"


def load() -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]:
    """Person labels, face_recognition's descriptors and facelens's templates of the images
    both found a face in."""
    fr = np.load(CACHE / "lfw_all_face_recognition.npz")
    fl = np.load(CACHE / "lfw_all_facelens.npz")
    if not (np.array_equal(fr["names"], fl["names"]) and np.array_equal(fr["idx"], fl["idx"])):
        raise SystemExit("the two embedding caches list different images: remake them")
    ok = fr["ok"] & fl["ok"]
    _, labels = np.unique(fr["names"][ok], return_inverse=True)
    return labels.astype(np.int64), fr["vecs"][ok].astype(np.float32), fl["vecs"][ok]


def scores(labels: NDArray[np.int64], clusters: NDArray[np.int64]) -> dict[str, float]:
    """Pairwise and BCubed precision / recall / F (noise, -1: a cluster of its own)."""
    c = clusters.copy()
    noise = c < 0
    c[noise] = c.max() + 1 + np.arange(int(noise.sum()))
    # contingency counts: faces per (cluster, person), per cluster, per person
    pair = c * (labels.max() + 1) + labels
    _, inv, n_cp = np.unique(pair, return_inverse=True, return_counts=True)
    n_c = np.bincount(c)[c]
    n_p = np.bincount(labels)[labels]
    both = n_cp[inv]
    bp, br = float(np.mean(both / n_c)), float(np.mean(both / n_p))
    same_both = float(np.sum(n_cp * (n_cp - 1)))
    same_c = float(np.sum(np.bincount(c) * (np.bincount(c) - 1)))
    same_p = float(np.sum(np.bincount(labels) * (np.bincount(labels) - 1)))
    pp = same_both / same_c if same_c else 1.0
    pr = same_both / same_p if same_p else 1.0
    f = lambda p, r: 2 * p * r / (p + r) if p + r else 0.0  # noqa: E731
    return {
        "pairwise_p": pp,
        "pairwise_r": pr,
        "pairwise_f": f(pp, pr),
        "bcubed_p": bp,
        "bcubed_r": br,
        "bcubed_f": f(bp, br),
        "clusters": float(len(np.unique(c))),
    }


def chinese_whispers(vecs: NDArray[np.float32], threshold: float) -> NDArray[np.int64]:
    import dlib

    return np.array(
        dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in vecs], threshold),
        np.int64,
    )


def dbscan(unit: NDArray[np.float32], eps: float, min_pts: int) -> NDArray[np.int64]:
    """DBSCAN over cosine distance (1 - cosine similarity), the neighbourhoods computed a
    block at a time; -1 for noise."""
    n = len(unit)
    neighbours: list[NDArray[np.int64]] = []
    for a in range(0, n, 2048):
        sim = unit[a : a + 2048] @ unit.T
        neighbours.extend(np.flatnonzero(row >= 1.0 - eps) for row in sim)
    core = np.array([len(nb) >= min_pts for nb in neighbours])
    out = np.full(n, -1, np.int64)
    label = 0
    for i in range(n):
        if out[i] >= 0 or not core[i]:
            continue
        out[i] = label
        stack = [i]
        while stack:
            j = stack.pop()
            for m in neighbours[j]:
                if out[m] < 0:
                    out[m] = label
                    if core[m]:
                        stack.append(int(m))
        label += 1
    return out


def run() -> tuple[list[list[Any]], int, int]:
    labels, fr, fl = load()
    rows: list[list[Any]] = []

    def add(method: str, fn: Any) -> None:
        t0 = time.perf_counter()
        clusters = fn()
        s = scores(labels, clusters)
        rows.append(
            [
                method,
                f"{s['pairwise_p']:.3f}",
                f"{s['pairwise_r']:.3f}",
                f"{s['pairwise_f']:.3f}",
                f"{s['bcubed_p']:.3f}",
                f"{s['bcubed_r']:.3f}",
                f"**{s['bcubed_f']:.3f}**",
                f"{s['clusters']:,.0f}",
                f"{time.perf_counter() - t0:.1f}",
            ]
        )
        print(rows[-1], flush=True)

    for t in (0.5, 0.6):
        add(f"dlib chinese_whispers, threshold {t}", lambda t=t: chinese_whispers(fr, t))
    add("DBSCAN, Immich defaults (cosine eps 0.5, 3 faces)", lambda: dbscan(fl, 0.5, 3))
    best: tuple[float, float] = (-1.0, 0.0)
    for eps in (0.03, 0.04, 0.05, 0.06, 0.07, 0.08):
        f = scores(labels, dbscan(fl, eps, 3))["bcubed_f"]
        print("DBSCAN eps", eps, "BCubed F", round(f, 4), flush=True)
        best = max(best, (f, eps))
    add(f"DBSCAN, best eps of a sweep ({best[1]}, 3 faces)", lambda: dbscan(fl, best[1], 3))
    return rows, len(labels), int(labels.max() + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    rows, faces, people = run()
    text = "\n".join(
        [
            "### Face clustering on LFW: the peers (issue 18)",
            "",
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/cluster.py --write "
            f"docs/accuracy.md`. {faces:,} faces of {people:,} people (the images both "
            "face_recognition and facelens found a face in; single-image people included as "
            "distractors). Unclustered faces count as clusters of one.",
            "",
            md_table(
                [
                    "method",
                    "pairwise P",
                    "pairwise R",
                    "pairwise F",
                    "BCubed P",
                    "BCubed R",
                    "BCubed F",
                    "clusters",
                    "s",
                ],
                rows,
            ),
        ]
    )
    print(text)
    if args.write:
        write_section(args.write, "cluster-peers", text)


if __name__ == "__main__":
    main()
