"""Calibrate the default open-set rule: a threshold on the cohort-normalised score that gives
FPIR 1% at every gallery size, and the gallery size from which it beats the plain similarity.

    .venv/bin/python benchmarks/open_set_rule.py [--write docs/accuracy.md]

Needs the LFW embeddings cached by ``benchmarks/calibrate.py``
(``benchmarks/.cache/lfw_all_facelens.npz``).

Score: ``s1 - WEIGHT * mean(s2 .. s{1+COHORT})`` over a probe's ranked identity similarities.

1. Real galleries (LFW): for each size N, DRAWS draws of N people enrolled from one random
   image each; non-mated probes are every image of the people not drawn; mated probes are
   the other images of the enrolled. The draws use their own seeds (1000+), not the
   evaluation's splits (``facelens eval identify`` uses seeds 0-9). Per N: the threshold at
   FPIR 1% (non-mated probes of all draws pooled), and DIR of the normalised rule and of
   the plain similarity, each at its own FPIR-1% threshold.
2. Beyond LFW's 5,749 people: galleries generated with LFW's between- and within-person
   spread (``benchmarks/scale.py``), 1e4 to 1e6 identities, 4,000 non-mated probes. The
   synthetic tail is lighter than LFW's, so only its *change* from 4,900 identities is
   added to the last real threshold. Also reported: what the shipped rule and the plain
   size-aware similarity threshold accept there (2,000 new samples of enrolled people).

It prints the ``OpenSetCalibration(...)`` entry for ``src/facelens/match/thresholds.py``.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from _report import ROOT, machine, md_table, write_section
from facelens.eval.cache import load_embeddings
from facelens.eval.calibrate import ranked
from facelens.match.thresholds import DEFAULT_FPIR, identify_rule, identify_threshold

CACHE = ROOT / "benchmarks" / ".cache"
COHORT, WEIGHT = 4, 0.5
REAL_SIZES = (10, 30, 100, 200, 300, 500, 1000, 2000, 4900)
SYNTH_SIZES = (4900, 10_000, 100_000, 1_000_000)
DRAWS = 10


def normalised(r: np.ndarray) -> np.ndarray:
    return r[:, 0] - WEIGHT * r[:, 1 : 1 + COHORT].mean(axis=1)


def real(model: str, cache: str) -> list[dict[str, Any]]:
    path = CACHE / f"lfw_all_{cache}.npz"
    z = np.load(path)
    emb = load_embeddings(path, str(z["tag"]))
    people: dict[str, list[np.ndarray]] = {}
    for (name, _), v in sorted(emb.items()):
        if v is not None:
            people.setdefault(name, []).append(v)
    names = sorted(people)
    rows = []
    for n in REAL_SIZES:
        nm_raw, nm_norm, m_raw, m_norm, m_ok = [], [], [], [], []
        for d in range(DRAWS):
            rng = np.random.default_rng(1000 + d)
            multi = [x for x in names if len(people[x]) > 1]
            # small galleries: people with a second image, so there are mated probes
            pool = multi if n <= len(multi) // 2 else names
            pick = set(rng.choice(len(pool), n, replace=False).tolist())
            enrolled = [pool[i] for i in sorted(pick)]
            inside = set(enrolled)
            first = {x: int(rng.integers(len(people[x]))) for x in enrolled}
            g = np.stack([people[x][first[x]] for x in enrolled])
            mated = [(x, v) for x in enrolled for j, v in enumerate(people[x]) if j != first[x]]
            non = np.stack([v for x in names if x not in inside for v in people[x]])
            r, _ = ranked(non, g, 1 + COHORT)
            nm_raw.append(r[:, 0])
            nm_norm.append(normalised(r))
            if mated:
                rm, arg = ranked(np.stack([v for _, v in mated]), g, 1 + COHORT)
                m_raw.append(rm[:, 0])
                m_norm.append(normalised(rm))
                who = [enrolled[a] for a in arg]
                m_ok.append(np.array([w == x for w, (x, _) in zip(who, mated, strict=True)]))
        nr, nn = np.concatenate(nm_raw), np.concatenate(nm_norm)
        mr, mn, ok = np.concatenate(m_raw), np.concatenate(m_norm), np.concatenate(m_ok)
        t_norm = float(np.quantile(nn, 1 - DEFAULT_FPIR))
        t_raw = float(np.quantile(nr, 1 - DEFAULT_FPIR))
        t_ship = identify_threshold(model, n)
        rows.append(
            {
                "n": n,
                "t_norm": t_norm,
                "t_raw": t_raw,
                "dir_norm": float((ok & (mn >= t_norm)).mean()),
                "dir_raw": float((ok & (mr >= t_raw)).mean()),
                "raw_shipped": t_ship,
                "fpir_raw_shipped": float((nr >= t_ship).mean()),
                "dir_raw_shipped": float((ok & (mr >= t_ship)).mean()),
                "non_mated": len(nr),
                "mated": len(mr),
            }
        )
        print(rows[-1], flush=True)
    return rows


def synthetic(model: str) -> tuple[dict[int, float], dict[int, dict[str, float]]]:
    """Thresholds at FPIR 1%, and what the shipped rule and the plain size-aware threshold
    accept of 2,000 enrolled people's new samples and of the 4,000 strangers."""
    from scale import centres, lfw_spread, samples_of

    sp = lfw_spread()
    out, shipped = {}, {}
    for n in SYNTH_SIZES:
        rng = np.random.default_rng(7 + n)
        c = centres(sp, n, rng)
        g = samples_of(sp, c, rng)
        probes = samples_of(sp, centres(sp, 4000, rng), rng)
        mated = samples_of(sp, c[rng.choice(n, 2000, replace=False)], rng)
        del c
        r, _ = ranked(probes, g, 1 + COHORT)
        rm, _ = ranked(mated, g, 1 + COHORT)
        out[n] = float(np.quantile(normalised(r), 1 - DEFAULT_FPIR))
        rule, plain = identify_rule(model, None, n, n), identify_threshold(model, n)
        shipped[n] = {
            "rule_mated": float((rule.scores(rm) >= rule.threshold).mean()),
            "rule_non": float((rule.scores(r) >= rule.threshold).mean()),
            "plain_mated": float((rm[:, 0] >= plain).mean()),
            "plain_non": float((r[:, 0] >= plain).mean()),
        }
        print(n, out[n], shipped[n], flush=True)
    return out, shipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", type=Path)
    from facelens import Pipeline

    ap.add_argument(
        "--model", default=Pipeline().model, help="template tag (default: the default's)"
    )
    ap.add_argument(
        "--cache",
        default="facelens",
        help="which calibrate.py cache: facelens (default) or a model",
    )
    ap.add_argument("--section", default="open-set-rule")
    args = ap.parse_args()
    rows = real(args.model, args.cache)
    # the synthetic galleries are shaped like the default model's LFW templates
    syn, shipped = synthetic(args.model) if args.cache == "facelens" else ({}, {})
    last = rows[-1]
    table = [(r["n"], r["t_norm"]) for r in rows]
    if syn:
        table += [(n, last["t_norm"] + syn[n] - syn[SYNTH_SIZES[0]]) for n in SYNTH_SIZES[1:]]
    switch = next(r["n"] for r in rows if r["dir_norm"] > r["dir_raw"])
    entry = (
        f"OpenSetCalibration(model={args.model!r}, cohort={COHORT}, weight={WEIGHT}, "
        f"min_identities={switch}, table=("
        + ", ".join(f"({n}, {t:.4f})" for n, t in table if n >= switch)
        + "), measured_by=_OPEN_SET)"
    )
    print(entry)
    if args.write:
        body = [
            f"Model `{args.model}`. Measured by `.venv/bin/python benchmarks/open_set_rule.py "
            + (
                "--write docs/accuracy.md`"
                if args.cache == "facelens"
                else f"--model {shlex.quote(args.model)} --cache {args.cache} "
                f"--section {args.section} --write docs/accuracy.md`"
            )
            + f" ({machine()}). Normalised score: best similarity less {WEIGHT} x the mean of "
            f"the next {COHORT} identities' similarities. {DRAWS} draws per size (seeds "
            "1000+, not the evaluation's), thresholds at FPIR 1% on the pooled non-mated "
            "probes; DIR of each score at its own FPIR-1% threshold, and FPIR / DIR of the "
            "plain similarity threshold shipped before (`identify_threshold`, from the "
            "impostor tail).",
            "",
            md_table(
                [
                    "identities",
                    "normalised threshold",
                    "DIR normalised",
                    "DIR similarity",
                    "similarity threshold (FPIR 1%)",
                    "shipped similarity threshold: FPIR / DIR",
                    "non-mated / mated probes",
                ],
                [
                    [
                        f"{r['n']:,}",
                        f"{r['t_norm']:.4f}",
                        f"{r['dir_norm']:.3f}",
                        f"{r['dir_raw']:.3f}",
                        f"{r['t_raw']:.4f}",
                        f"{r['fpir_raw_shipped'] * 100:.2f}% / {r['dir_raw_shipped']:.3f}",
                        f"{r['non_mated']:,} / {r['mated']:,}",
                    ]
                    for r in rows
                ],
            ),
            "",
            "Synthetic LFW-shaped galleries (normalised threshold at FPIR 1%; only the change "
            "from 4,900 identities is used):"
            if syn
            else "No synthetic galleries for this model: beyond LFW's 4,900 people the last "
            "threshold holds.",
            "",
            md_table(
                [
                    "identities",
                    "synthetic threshold",
                    "shipped threshold",
                    "shipped rule accepts: enrolled / strangers",
                    "plain size-aware threshold accepts: enrolled / strangers",
                ],
                [
                    [
                        f"{n:,}",
                        f"{syn[n]:.4f}",
                        f"{t:.4f}",
                        f"{shipped[n]['rule_mated']:.3f} / {shipped[n]['rule_non']:.4f}",
                        f"{shipped[n]['plain_mated']:.3f} / {shipped[n]['plain_non']:.4f}",
                    ]
                    for n, t in table
                    if n in syn
                ],
            )
            if syn
            else "",
            "",
            f"The normalised score wins from {switch:,} identities; below that the default "
            "keeps the plain similarity threshold for the gallery's size. Entry: "
            f"`{entry}`",
        ]
        write_section(ROOT / args.write, args.section, "\n".join(body))


if __name__ == "__main__":
    main()
