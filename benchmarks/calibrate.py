"""Accuracy on LFW and the calibrated thresholds, facelens and face_recognition in one run.

    .venv/bin/python benchmarks/calibrate.py [--write docs/accuracy.md] [--skip-peer]

1. Every LFW image (13,233) is embedded by facelens's default pipeline (a single-person
   photo: primary face, retried at upsample 1) and by face_recognition's default pipeline
   (HOG upsample 1, the face nearest the centre, 5-point chip, no jitter; distances turned
   into scores as ``-distance``). Embeddings are cached in ``benchmarks/.cache``.
2. LFW View 2 (``pairs.txt``): 10-fold accuracy, AUC, TAR at FAR 1e-2 / 1e-3, ROC and DET
   curves (``docs/img/``).
3. Calibration: every cross-person pair of LFW (tens of millions) gives the impostor tail,
   the threshold for each FMR from 1e-2 to 1e-7. People are split into 10 folds; thresholds
   are also set on the pairs of 9 folds and their FMR measured on the 10th (held back).
4. Open-set identification (``facelens.eval.identify``), 10 seeds: rank-1, DIR at FPIR 1% and
   0.1%, and what each system's default gives (face_recognition: tolerance 0.6; facelens:
   the ``open_set`` rule for the gallery's size, whose decision score is cohort-normalised
   at this size; also shown deciding on the similarity alone, its previous default).

It prints the ``Calibration(...)`` entry for ``src/facelens/match/thresholds.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, data_root, machine, md_table, write_section
from facelens import EmbedConfig, Pipeline, PipelineConfig
from facelens.eval.cache import load_embeddings, save_embeddings
from facelens.eval.calibrate import impostor_scores, tail_thresholds
from facelens.eval.identify import evaluate_open_set, rates_at, split
from facelens.eval.lfw import lfw_image, pair_scores, read_pairs, read_people
from facelens.eval.metrics import roc_auc, tar_at_far, ten_fold, threshold_at_far
from facelens.match.decide import IdentifyRule
from facelens.match.thresholds import SHIPPED, Calibration, identify_rule, identify_threshold

Key = tuple[str, int]
CACHE = ROOT / "benchmarks" / ".cache"


def embed_all(
    label: str, keys: list[Key], fn: Callable[[Path], np.ndarray | None], tag: str, lfw: Path
) -> dict[Key, np.ndarray | None]:
    path = CACHE / f"lfw_all_{label}.npz"
    have = load_embeddings(path, tag)
    todo = [k for k in keys if k not in have]
    t0 = time.perf_counter()
    for n, k in enumerate(todo):
        have[k] = fn(lfw_image(lfw, *k))
        if n % 1000 == 0:
            print(f"{label}: {n}/{len(todo)} {time.perf_counter() - t0:.0f} s", flush=True)
            if n:
                save_embeddings(path, have, tag)
    if todo:
        save_embeddings(path, have, tag)
    return have


def fr_pipeline() -> tuple[Callable[[Path], np.ndarray | None], Any]:
    import face_recognition as fr

    def embed(path: Path) -> np.ndarray | None:
        img = fr.load_image_file(str(path))
        locs = fr.face_locations(img)
        if not locs:
            return None
        h, w = img.shape[:2]
        c = [((t + b) / 2 - h / 2) ** 2 + ((l_ + r) / 2 - w / 2) ** 2 for t, r, b, l_ in locs]
        return np.asarray(fr.face_encodings(img, [locs[int(np.argmin(c))]])[0], np.float32)

    return embed, fr


def facelens_tag(pipe: Pipeline) -> str:
    """What made facelens's cached embeddings (a cache made otherwise is not used)."""
    return f"{pipe.detector.name}:up{pipe.config.detect.upsample}:{pipe.model}:primary"


def cache_label(pipe: Pipeline) -> str:
    """The cache file of a pipeline's LFW templates: ``facelens`` for the default one (what
    open_set_rule.py and scale.py read), the model's name otherwise."""
    return "facelens" if pipe.model == Pipeline().model else pipe.config.embed.model


def lfw_embeddings(
    lfw: Path, keys: list[Key], peer: bool, pipe: Pipeline | None = None
) -> dict[str, dict[Key, Any]]:
    """Every image's embedding (None: no face) by facelens's default pipeline and, with
    ``peer``, face_recognition's (raw descriptors), from the cache or computed now."""
    pipe = pipe or Pipeline()

    def ours(path: Path) -> np.ndarray | None:
        e = pipe.primary_embedding(pipe.decode(path)[0])
        return None if e is None else e.vectors[0]

    tag = facelens_tag(pipe)
    path = CACHE / f"lfw_all_{cache_label(pipe)}.npz"
    if not load_embeddings(path, tag):
        # the same images through the same pipeline, already embedded by recognizers.py
        from recognizers import cached_templates

        known = cached_templates(pipe.model)
        if known is not None and set(known) >= set(keys):
            save_embeddings(path, {k: known[k] for k in keys}, tag)
    systems: dict[str, dict[Key, Any]] = {
        "facelens": embed_all(cache_label(pipe), keys, ours, tag, lfw)
    }
    if peer:
        fn, _ = fr_pipeline()
        raw = embed_all("face_recognition", keys, fn, "face_recognition-1.3.0:hog1:centre", lfw)
        systems["face_recognition"] = raw
    return systems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--model", default=None, help="recognizer (default: the default pipeline's)")
    ap.add_argument("--section", default="calibration", help="docs section to write")
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    people = read_people(lfw)
    keys = sorted((n, i) for n, idx in people.items() for i in idx)
    pairs = read_pairs(lfw / "pairs.txt")
    pipe = Pipeline(
        PipelineConfig(embed=EmbedConfig(model=args.model)) if args.model else PipelineConfig()
    )
    tag = facelens_tag(pipe)
    systems = lfw_embeddings(lfw, keys, peer=not args.skip_peer, pipe=pipe)

    def scores_of(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        emb = systems[name]
        if name == "face_recognition":  # score = -Euclidean distance of raw descriptors
            s = []
            missing = 0
            for p in pairs:
                a, b = emb[(p.name_a, p.index_a)], emb[(p.name_b, p.index_b)]
                if a is None or b is None:
                    missing += 1
                    s.append(-10.0)
                else:
                    s.append(-float(np.linalg.norm(a - b)))
            return (
                np.array(s),
                np.array([p.same for p in pairs]),
                np.array([p.fold for p in pairs]),
                missing,
            )
        return pair_scores(pairs, emb)

    # 2. verification
    rows_v = []
    curves = {}
    fold_thresholds: list[float] = []
    for name in systems:
        s, y, folds, missing = scores_of(name)
        r = ten_fold(s, y, folds)
        if name == "facelens":
            fold_thresholds = list(r.thresholds)
        curves[name] = (s, y)
        no_face = sum(
            1
            for k in {(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs}
            if systems[name][k] is None
        )
        rows_v.append(
            [
                name,
                f"{r.mean * 100:.2f} +- {r.std * 100:.2f}",
                f"{roc_auc(s, y):.5f}",
                f"{tar_at_far(s, y, 1e-2)[0] * 100:.2f}",
                f"{tar_at_far(s, y, 1e-3)[0] * 100:.2f}",
                no_face,
                missing,
            ]
        )
        print(rows_v[-1], flush=True)
    from facelens.eval.plots import plot_roc_det

    img_dir = ROOT / "docs" / "img"
    # the plots show the default pipeline against the peer; another model's run makes none
    plots = plot_roc_det(curves, img_dir) if args.model is None else {}

    # 3. calibration (facelens)
    emb = systems["facelens"]
    counts, best, n_pairs = impostor_scores(emb)
    tail = tail_thresholds(counts, best, n_pairs)
    balanced = float(np.mean(fold_thresholds))
    names = sorted(people)
    rng = np.random.default_rng(0)
    fold_of = dict(zip(names, rng.permutation(len(names)) % 10, strict=True))
    held_rows = []
    held: dict[float, list[float]] = {f: [] for f in tail}
    for k in range(10):
        train = {n for n in names if fold_of[n] != k}
        test = {n for n in names if fold_of[n] == k}
        t_tr = tail_thresholds(*impostor_scores(emb, train))
        s_te = impostor_array(emb, test)
        for fmr, t in t_tr.items():
            if fmr in held and s_te.size * fmr >= 1:
                held[fmr].append(float((s_te >= t).mean()))
    for fmr, t in tail.items():
        got = held.get(fmr, [])
        held_rows.append(
            [
                f"{fmr:g}",
                f"{t:.4f}",
                f"{np.mean(got):.2e} +- {np.std(got):.1e}" if got else "too few pairs",
            ]
        )

    # the calibration measured here answers the open-set defaults below (and is printed, to
    # be pasted into facelens/match/thresholds.py)
    measured = SHIPPED.with_calibration(
        Calibration(
            model=pipe.model,
            balanced=round(balanced, 4),
            tail=tuple((f, round(t, 4)) for f, t in sorted(tail.items(), reverse=True)),
            impostor_pairs=n_pairs,
            measured_by="benchmarks/calibrate.py",
        )
    )

    # 4. open set
    rows_i = []
    n_gallery = len(split(people, 840, 0).gallery)
    # the shipped default rule
    rule = identify_rule(pipe.model, None, n_gallery, n_gallery, calibrations=measured)
    t_plain = identify_threshold(pipe.model, n_gallery, calibrations=measured)
    plain = IdentifyRule(t_plain, name="similarity")
    variants = [(n, n, rule) for n in systems]
    if rule.normalised:  # the same embeddings, decided on the similarity alone
        variants.insert(1, ("facelens (similarity only)", next(iter(systems)), plain))
    for name, system, r in variants:
        e = systems[system]
        runs, dflt = [], []
        for seed in range(args.seeds):
            sp = split(people, 840, seed)
            if system == "face_recognition":  # Euclidean distances of raw descriptors
                runs.append(_fr_open_set(sp, e))
                dflt.append(_fr_rates(sp, e, 0.6))
            else:
                runs.append(evaluate_open_set(sp, e, rule=r))
                dflt.append(rates_at(sp, e, r))
        rows_i.append(
            [
                name,
                runs[0].gallery_size,
                runs[0].mated,
                runs[0].non_mated,
                f"{np.mean([r.rank1 for r in runs]) * 100:.2f}",
                f"{np.mean([r.dir_at_fpir['0.01'] for r in runs]) * 100:.2f}",
                f"{np.mean([r.dir_at_fpir['0.001'] for r in runs]) * 100:.2f}",
                (
                    "tolerance 0.6"
                    if system == "face_recognition"
                    else f"open_set: normalised score >= {r.threshold:.4f}"
                    if r.normalised
                    else f"similarity >= {r.threshold:.4f}"
                ),
                f"{np.mean([d[0] for d in dflt]) * 100:.2f}",
                f"{np.mean([d[1] for d in dflt]) * 100:.2f}",
            ]
        )
        print(rows_i[-1], flush=True)

    snippet = (
        f"Calibration(model={pipe.model!r}, balanced={balanced:.4f}, tail=("
        + ", ".join(f"({f:g}, {t:.4f})" for f, t in tail.items())
        + f"), impostor_pairs={n_pairs}, measured_by=_CALIBRATE)"
    )
    print(snippet)
    body = "\n\n".join(
        [
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/calibrate.py "
            + (f"--model {args.model} --section {args.section} " if args.model else "")
            + ("--skip-peer " if args.skip_peer else "")
            + f"--write docs/accuracy.md`. facelens: `{tag}`; "
            + (
                "face_recognition's rows not run here (`--skip-peer`: its descriptors of all "
                "of LFW take hours on 2 cores; its figures in the same protocol are in the "
                "fast profile's section, `calibration-dlib`). "
                if args.skip_peer
                else "face_recognition 1.3.0: HOG upsample 1, face nearest the centre, 5-point "
                "chip, 1 jitter, score = -distance. "
            )
            + 'Missed faces are answered "different" (verification) or "no match" '
            "(identification).",
            "**LFW View 2 (6,000 pairs, 10-fold)**",
            md_table(
                [
                    "system",
                    "accuracy % (mean +- std)",
                    "AUC",
                    "TAR % at FAR 1e-2",
                    "TAR % at FAR 1e-3",
                    "images without a face",
                    "pairs affected",
                ],
                rows_v,
            ),
            (
                f"![ROC]({Path(plots['roc']).relative_to(ROOT / 'docs')}) "
                f"![DET]({Path(plots['det']).relative_to(ROOT / 'docs')})"
                if plots
                else ""
            ),
            f"**Calibrated thresholds** (model `{pipe.model}`): impostor tail over all "
            f"{n_pairs:,} cross-person pairs of LFW, and the FMR each target gives on held-back "
            "people when the threshold is set on the other 90% (10 person-disjoint folds). "
            f'"balanced" = mean of the 10 folds\' accuracy-maximising thresholds = {balanced:.4f}.',
            md_table(["target FMR", "threshold (all pairs)", "FMR on held-back people"], held_rows),
            f"**Open-set identification** ({args.seeds} seeds; gallery: one image per person, "
            "840 people held out; DIR = identified correctly at the threshold; DIR at FPIR x "
            "uses each row's decision score with the threshold that gives FPIR x on that seed; "
            "the default columns use the shipped threshold):",
            md_table(
                [
                    "system",
                    "gallery",
                    "mated probes",
                    "non-mated probes",
                    "rank-1 %",
                    "DIR % at FPIR 1%",
                    "DIR % at FPIR 0.1%",
                    "default threshold",
                    "FPIR % at default",
                    "DIR % at default",
                ],
                rows_i,
            ),
            f"`src/facelens/match/thresholds.py` entry:\n\n```python\n{snippet}\n```",
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, args.section, body)


def impostor_array(emb: dict[Key, np.ndarray | None], people: set[str]) -> np.ndarray:
    """Every cross-person score among ``people`` (a held-back fold: small enough to keep)."""
    keys = [k for k, v in emb.items() if v is not None and k[0] in people]
    v = np.stack([emb[k] for k in keys]).astype(np.float32)  # type: ignore[misc]
    _, person = np.unique([k[0] for k in keys], return_inverse=True)
    iu = np.triu_indices(len(keys), 1)
    s = (v @ v.T)[iu]
    return s[person[iu[0]] != person[iu[1]]]


def _fr_matrix(sp: Any, e: dict[Key, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    gal = [k for k in sp.gallery if e[k] is not None]
    return np.stack([e[k] for k in gal]), np.array([k[0] for k in gal])  # type: ignore[misc]


def _fr_best(keys: Any, e: Any, g: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = np.full(len(keys), -np.inf)
    who = np.full(len(keys), "", dtype=object)
    pos = [i for i, k in enumerate(keys) if e[k] is not None]
    if pos:
        p = np.stack([e[keys[i]] for i in pos])
        d2 = (p**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2 * p @ g.T
        s = -np.sqrt(np.maximum(d2, 0))
        j = s.argmax(1)
        top[pos] = s[np.arange(len(pos)), j]
        who[pos] = names[j]
    return top, who.astype(str)


def _fr_open_set(sp: Any, e: Any) -> Any:
    from facelens.eval.identify import OpenSetResult

    g, names = _fr_matrix(sp, e)
    m_top, m_who = _fr_best(sp.mated, e, g, names)
    n_top, _ = _fr_best(sp.non_mated, e, g, names)
    right = m_who == np.array([k[0] for k in sp.mated])
    dirs, ths = {}, {}
    for f in (0.01, 0.001):
        t = threshold_at_far(n_top, f)
        ths[f"{f:g}"] = t
        dirs[f"{f:g}"] = float((right & (m_top >= t)).mean())
    return OpenSetResult(float(right.mean()), dirs, ths, len(g), len(sp.mated), len(sp.non_mated))


def _fr_rates(sp: Any, e: Any, tolerance: float) -> tuple[float, float]:
    g, names = _fr_matrix(sp, e)
    m_top, m_who = _fr_best(sp.mated, e, g, names)
    n_top, _ = _fr_best(sp.non_mated, e, g, names)
    right = m_who == np.array([k[0] for k in sp.mated])
    return float((n_top >= -tolerance).mean()), float((right & (m_top >= -tolerance)).mean())


if __name__ == "__main__":
    main()
