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
``lfw_all_facelens.npz``, made by ``benchmarks/calibrate.py``).

facelens (``facelens.cluster``) groups what ``facelens index`` stored of LFW
(``benchmarks/_lfw_archive.py``: every face of every image, so the other faces in the
background of LFW photos are in the clustering too, as unlabelled distractors; the labelled
face of an image is the one nearest its centre). Its stop is chosen on half of the people
(names whose hash is even) and reported on the other half and on all; the faces scored are
those of the images all three methods found a face in. Also timed: grouping 100,000
synthetic templates (``--scale``).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _report import ROOT, machine, md_table, write_section

CACHE = ROOT / "benchmarks" / ".cache"


def load() -> tuple[list[str], NDArray[np.bool_], NDArray[np.float32] | None, NDArray[np.float32]]:
    """The LFW images, which ones are scored (every system found a face in them), and
    face_recognition's descriptors (None without its cache: no peer rows) and facelens's
    templates of those."""
    fl = np.load(CACHE / "lfw_all_facelens.npz")
    files = [f"{n}_{int(i):04d}.jpg" for n, i in zip(fl["names"], fl["idx"], strict=True)]
    ok = fl["ok"].copy()
    fr = None
    if (CACHE / "lfw_all_face_recognition.npz").exists():
        frc = np.load(CACHE / "lfw_all_face_recognition.npz")
        if not (
            np.array_equal(frc["names"], fl["names"]) and np.array_equal(frc["idx"], fl["idx"])
        ):
            raise SystemExit("the two embedding caches list different images: remake them")
        ok &= frc["ok"]
        fr = frc["vecs"][ok].astype(np.float32)
    return [f for f, k in zip(files, ok, strict=True) if k], ok, fr, fl["vecs"][ok]


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


def _row(method: str, s: dict[str, float], seconds: float) -> list[Any]:
    return [
        method,
        f"{s['pairwise_p']:.3f}",
        f"{s['pairwise_r']:.3f}",
        f"{s['pairwise_f']:.3f}",
        f"{s['bcubed_p']:.3f}",
        f"{s['bcubed_r']:.3f}",
        f"**{s['bcubed_f']:.3f}**",
        f"{s['clusters']:,.0f}",
        f"{seconds:.1f}",
    ]


def half_a(name: str) -> bool:
    """The people the stop is chosen on (the rest are reported)."""
    return hashlib.sha256(name.encode()).digest()[0] % 2 == 0


class FacelensLfw:
    """LFW as ``facelens index`` stored it: per face its template (``model``), quality
    weight, and which image it is the labelled face of (the face nearest the centre)."""

    def __init__(self, model: str) -> None:
        from _lfw_archive import DB
        from facelens.archive import Archive
        from facelens.cluster import ClusterConfig
        from facelens.gallery import SqliteStore

        if not DB.exists():
            raise SystemExit("index LFW first: .venv/bin/python benchmarks/_lfw_archive.py")
        with SqliteStore(DB) as store:
            archive = Archive(store, "default")
            ids, self.vecs = archive.templates(model)
            faces = {f.id: f for f in archive.faces()}
        self.faces = [faces[i] for i in ids]
        config = ClusterConfig()
        self.weights = np.array([config.weight(f.quality) for f in self.faces])
        best: dict[str, tuple[float, int]] = {}
        for n, f in enumerate(self.faces):
            x1, y1, x2, y2 = f.box
            d = ((x1 + x2) / 2 - 125) ** 2 + ((y1 + y2) / 2 - 125) ** 2
            if f.path not in best or d < best[f.path][0]:
                best[f.path] = (d, n)
        self.image_face = {Path(p).name: n for p, (_, n) in best.items()}

    @staticmethod
    def held() -> dict[str, int]:
        """The template models the indexed LFW holds (faces of each)."""
        from _lfw_archive import DB
        from facelens.archive import Archive
        from facelens.gallery import SqliteStore

        with SqliteStore(DB) as store:
            return Archive(store, "default").models()

    def fill(self, faces: NDArray[np.int64], people: NDArray[np.int64]) -> float:
        """The median similarity of two faces of different people (among ``faces``)."""
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, len(faces), (2, 200_000))
        diff = people[i] != people[j]
        sims = np.einsum("ij,ij->i", self.vecs[faces[i[diff]]], self.vecs[faces[j[diff]]])
        return float(np.median(sims))

    def cluster(self, link: Any, weigh: bool = True) -> NDArray[np.int64]:
        """Cluster labels of every face (too poor to judge: -1, a cluster of its own)."""
        from facelens.cluster import agglomerate, similarity_edges

        keep = np.flatnonzero(self.weights > 0)
        w = np.maximum(self.weights[keep], 0.25) if weigh else np.ones(len(keep))
        edges = similarity_edges(np.ascontiguousarray(self.vecs[keep]), link.floor)
        out = -np.ones(len(self.faces), np.int64)
        out[keep] = agglomerate(len(keep), edges, link.stop, weights=w, fill=link.fill)
        return out


def stop_grid(
    lfw: FacelensLfw, model: str, faces: NDArray[np.int64], people: NDArray[np.int64]
) -> list[float]:
    """Stops worth trying for a model: from the typical unrelated pair's similarity (or the
    model's calibrated 1:1 ``balanced`` threshold, where higher: joining groups the verifier
    calls different is never the answer, and lower stops make graphs of a large share of
    all pairs) to the typical same-person pair's, in steps of 0.01 (the model's own scale)."""
    from facelens.match.thresholds import calibration

    rng = np.random.default_rng(1)
    i, j = rng.integers(0, len(faces), (2, 400_000))
    same = (people[i] == people[j]) & (i != j)
    sims = np.einsum("ij,ij->i", lfw.vecs[faces[i[same]]], lfw.vecs[faces[j[same]]])
    cal = calibration(model)
    lo = max(lfw.fill(faces, people), cal.balanced if cal else -1.0)
    hi = float(np.median(sims))
    return [round(x, 2) for x in np.arange(round(lo, 2), round(hi, 2) + 0.001, 0.01)]


def run() -> tuple[list[list[Any]], int, int, dict[str, Any]]:
    from facelens import Pipeline
    from facelens.cluster.people import Linkage

    default = Pipeline().model
    files, _, fr, fl = load()
    names = [f.rsplit("_", 1)[0] for f in files]
    _, labels_all = np.unique(names, return_inverse=True)
    # the default's templates, and the fast profile's (dlib's ResNet) where the archive was
    # also indexed with it
    ours = {default: FacelensLfw(default)}
    fast = "dlib_resnet_v1+flip"
    if fast != default and fast in FacelensLfw.held():
        ours[fast] = FacelensLfw(fast)
    models = list(ours)
    common = np.array([f in ours[default].image_face for f in files])
    labels = labels_all[common]
    face_of = np.array(
        [ours[default].image_face[f] for f, c in zip(files, common, strict=True) if c]
    )
    a_half = np.array([half_a(n) for n, c in zip(names, common, strict=True) if c])
    rows: list[list[Any]] = []
    info: dict[str, Any] = {"faces_indexed": len(ours[default].faces), "peers": fr is not None}

    def add(method: str, fn: Any) -> NDArray[np.int64]:
        t0 = time.perf_counter()
        clusters = fn()
        rows.append(_row(method, scores(labels, clusters), time.perf_counter() - t0))
        print(rows[-1], flush=True)
        return clusters

    if fr is not None:
        for t in (0.5, 0.6):
            add(
                f"dlib chinese_whispers, threshold {t}", lambda t=t: chinese_whispers(fr, t)[common]
            )
    add("DBSCAN, Immich defaults (cosine eps 0.5, 3 faces)", lambda: dbscan(fl, 0.5, 3)[common])
    best: tuple[float, float] = (-1.0, 0.0)
    for eps in (0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3):
        f = scores(labels, dbscan(fl, eps, 3)[common])["bcubed_f"]
        print("DBSCAN eps", eps, "BCubed F", round(f, 4), flush=True)
        best = max(best, (f, eps))
    add(f"DBSCAN, best eps of a sweep ({best[1]}, 3 faces)", lambda: dbscan(fl, best[1], 3)[common])

    # facelens: the stop chosen on half A of the people, reported on half B and on all
    chosen: dict[str, Linkage] = {}
    for model in models:
        lfw = ours[model]
        label = model
        fill = lfw.fill(face_of[a_half], labels[a_half])
        tried = []
        for stop in stop_grid(lfw, model, face_of[a_half], labels[a_half]):
            link = Linkage(stop, round(stop - 0.04, 3), fill, "LFW half A")
            f = scores(labels[a_half], lfw.cluster(link)[face_of[a_half]])["bcubed_f"]
            print(label, "stop", stop, "half A BCubed F", round(f, 4), flush=True)
            tried.append((f, stop))
        stop = max(tried)[1]
        link = chosen[label] = Linkage(stop, round(stop - 0.04, 3), round(fill, 3), "LFW half A")
        t0 = time.perf_counter()
        clusters = lfw.cluster(link)
        seconds = time.perf_counter() - t0
        s_all = scores(labels, clusters[face_of])
        s_b = scores(labels[~a_half], clusters[face_of[~a_half]])
        rows.append(_row(f"facelens {label}, stop {stop} (chosen on half A), all", s_all, seconds))
        rows.append(_row(f"facelens {label}, stop {stop}, half B only", s_b, seconds))
        print(rows[-2:], flush=True)
        if model == default:
            t0 = time.perf_counter()
            plain = lfw.cluster(link, weigh=False)
            rows.append(
                _row(
                    f"facelens {label}, stop {stop}, quality weights off, all",
                    scores(labels, plain[face_of]),
                    time.perf_counter() - t0,
                )
            )
            info["poor"] = int((lfw.weights == 0).sum())
    info["chosen"] = {k: (float(v.stop), float(v.floor), v.fill) for k, v in chosen.items()}
    return rows, len(labels), len(np.unique(labels)), info


def scale(n: int) -> dict[str, float]:
    """Grouping ``n`` synthetic templates: people of 1-12 faces around LFW-like centres
    (each face = centre + noise, similarities within a person and between people as the
    fused templates have them on LFW)."""
    from facelens import Pipeline
    from facelens.cluster import agglomerate, similarity_edges
    from facelens.cluster.people import LINKAGE

    default = Pipeline().model
    link = LINKAGE[default]
    base = FacelensLfw(default).vecs
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 13, n)
    sizes = sizes[np.cumsum(sizes) <= n]
    sizes = np.append(sizes, n - sizes.sum()) if sizes.sum() < n else sizes
    centres = base[rng.integers(0, len(base), len(sizes))]
    x = np.repeat(centres, sizes, axis=0)
    x = x + rng.normal(scale=0.022, size=x.shape).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = np.ones(len(x))
    t0 = time.perf_counter()
    edges = similarity_edges(x.astype(np.float32), link.floor)
    t1 = time.perf_counter()
    labels = agglomerate(len(x), edges, link.stop, weights=w, fill=link.fill)
    t2 = time.perf_counter()
    return {
        "faces": float(len(x)),
        "people": float(len(sizes)),
        "edges": float(len(edges[0])),
        "graph_s": t1 - t0,
        "linkage_s": t2 - t1,
        "clusters": float(len(np.unique(labels))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument("--scale", type=int, default=100_000, help="synthetic faces to time")
    args = ap.parse_args()
    rows, faces, people, info = run()
    big = scale(args.scale) if args.scale else None
    lines = [
        "### Face clustering on LFW: facelens and the peers, one run (issues 18, 26)",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/cluster.py "
        + ("--scale 0 " if not args.scale else "")
        + "--write docs/accuracy.md` (after `.venv/bin/python benchmarks/_lfw_archive.py` "
        "indexed LFW). "
        f"{faces:,} labelled faces of {people:,} people (the images "
        + (
            "all three found a face in"
            if info["peers"]
            else "facelens found a face in; face_recognition's descriptors were not computed in "
            "this run, so dlib's chinese whispers is not in the table"
        )
        + "; single-image people included as distractors). facelens clusters all "
        f"{info['faces_indexed']:,} faces it indexed (the background faces of LFW photos too, "
        f"unscored); {info.get('poor', 0)} were too poor to judge and stay unclustered. "
        "Unclustered faces count as clusters of one. facelens's stop was chosen on half of the "
        "people and is reported on the other half too; chosen (stop, floor, fill): "
        + ", ".join(f"{k} {v}" for k, v in info["chosen"].items())
        + ".",
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
    if big:
        lines += [
            "",
            f"Grouping {big['faces']:,.0f} synthetic fused templates ({big['people']:,.0f} "
            f"people of 1-12 faces): similarity graph {big['graph_s']:.1f} s "
            f"({big['edges']:,.0f} pairs above the floor), average linkage "
            f"{big['linkage_s']:.1f} s, {big['clusters']:,.0f} clusters.",
        ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "cluster-peers", text)


if __name__ == "__main__":
    main()
