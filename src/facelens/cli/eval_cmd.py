"""``facelens eval``: accuracy on LFW, as users of the pipeline would get it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from facelens.cli import output
from facelens.errors import InputError


def _pipeline_tag(pipe: Any) -> str:
    d = pipe.config.detect
    return f"{pipe.detector.name}:up{d.upsample}:{pipe.model}"


def _embed(
    pipe: Any,
    lfw: Path,
    keys: list[tuple[str, int]],
    cache: Path | None,
    central_box: bool,
    progress: bool,
) -> dict[tuple[str, int], Any]:
    from facelens.eval.cache import load_embeddings, save_embeddings
    from facelens.eval.lfw import embed_lfw

    tag = _pipeline_tag(pipe) + (":central-box" if central_box else "")
    have = load_embeddings(cache, tag) if cache else {}
    todo = [k for k in keys if k not in have]
    if todo:

        def report(done: int, total: int) -> None:
            if progress and (done % 500 == 0 or done == total):
                output.echo(f"embedding LFW images: {done}/{total}", err=True)

        have.update(embed_lfw(pipe, lfw, todo, central_box=central_box, progress=report))
        if cache:
            save_embeddings(cache, have, tag)
    return {k: have[k] for k in keys}


def _lfw_root(data: Path) -> Path:
    root = data if (data / "pairs.txt").exists() else data / "lfw"
    if not (root / "pairs.txt").exists():
        raise InputError(str(data), "no pairs.txt here or in lfw/ (give the LFW folder)")
    return root


@click.group("eval")
def eval_group() -> None:
    """Measure accuracy on LFW with the protocols of docs/accuracy.md."""


@eval_group.command("lfw")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The LFW folder (with pairs.txt and the images).",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write roc.png and det.png to this folder.",
)
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the embeddings in this .npz and reuse them next time.",
)
@click.option(
    "--central-box",
    is_flag=True,
    help="LFW crutch: embed the known central box instead of detecting (a "
    "separately reported variant, not what users get).",
)
@click.option(
    "--limit-folds",
    type=click.IntRange(1, 10),
    default=10,
    help="Use only the first N folds (quick checks; with 1, the calibrated balanced "
    "threshold is used).",
)
@click.option("--progress/--no-progress", default=True, help="Progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary.")
def eval_lfw(
    data: Path,
    plots: Path | None,
    cache: Path | None,
    central_box: bool,
    limit_folds: int,
    progress: bool,
    as_json: bool,
) -> None:
    """LFW View 2: 10-fold accuracy (threshold chosen on 9 folds, measured on the 10th), AUC,
    and TAR at FAR 1e-2 and 1e-3. Faces the detector misses count as a "different" answer."""
    from facelens.cli.common import make_pipeline
    from facelens.eval.lfw import pair_scores, read_pairs, verification_report

    root = _lfw_root(data)
    pairs = [p for p in read_pairs(root / "pairs.txt") if p.fold < limit_folds]
    keys = sorted({(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs})
    pipe = make_pipeline()
    emb = _embed(pipe, root, keys, cache, central_box, progress)
    balanced = None
    if limit_folds == 1:  # no other fold to choose a threshold on: the calibrated one
        from facelens.match.thresholds import resolve_threshold

        balanced = resolve_threshold(
            pipe.model, "balanced", "balanced", calibrations=pipe.calibrations
        )
    report = verification_report(pairs, emb, balanced)
    report["pipeline"] = _pipeline_tag(pipe) + (":central-box" if central_box else "")
    if plots:
        from facelens.eval.plots import plot_roc_det

        scores, same, _, _ = pair_scores(pairs, emb)
        report["plots"] = plot_roc_det({"facelens": (scores, same)}, plots)
    if as_json:
        output.emit_json(report)
        return
    output.echo(f"LFW View 2, {report['pairs']} pairs ({report['pipeline']})")
    output.echo(
        f"  10-fold accuracy  {report['accuracy_mean'] * 100:.2f}% "
        f"+- {report['accuracy_std'] * 100:.2f}"
    )
    output.echo(f"  ROC AUC           {report['auc']:.5f}")
    for far, tar in report["tar_at_far"].items():
        output.echo(f"  TAR at FAR {far:<6} {tar * 100:.2f}%")
    output.echo(
        f"  images without a face: {report['images_without_face']} "
        f"({report['pairs_with_missing_face']} pairs answered 'different')"
    )


@eval_group.command("identify")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The LFW folder.",
)
@click.option(
    "--holdout",
    type=click.IntRange(1),
    default=840,
    show_default=True,
    help="People left out of the gallery (their images are non-mated probes).",
)
@click.option("--seeds", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option(
    "--max-people",
    type=click.IntRange(2),
    default=None,
    help="Use only this many people (chosen with seed 0) for a quick check.",
)
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--progress/--no-progress", default=True)
@click.option("--json", "as_json", is_flag=True)
def eval_identify(
    data: Path,
    holdout: int,
    seeds: int,
    max_people: int | None,
    cache: Path | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Open-set 1:N on LFW: rank-1 and DIR at FPIR 1% and 0.1% (with the thresholds), over
    SEEDS random splits, and what the default identification threshold gives."""
    from facelens.cli.common import make_pipeline
    from facelens.eval.identify import evaluate_open_set, rates_at, split
    from facelens.eval.lfw import read_people
    from facelens.match.thresholds import identify_rule

    root = _lfw_root(data)
    people = read_people(root)
    if max_people is not None and max_people < len(people):
        names = sorted(people)
        pick = np.random.default_rng(0).choice(len(names), max_people, replace=False)
        people = {names[i]: people[names[i]] for i in sorted(pick)}
    if holdout >= len(people):
        raise click.BadParameter(f"must be below the {len(people)} people", param_hint="--holdout")
    keys = sorted((n, i) for n, idx in people.items() for i in idx)
    pipe = make_pipeline()
    emb = _embed(pipe, root, keys, cache, False, progress)
    splits = [split(people, holdout, seed) for seed in range(seeds)]
    gallery_size = len(splits[0].gallery)
    # The shipped default for a gallery of this size (every enrolled person has one sample).
    rule = identify_rule(
        pipe.model, None, gallery_size, gallery_size, calibrations=pipe.calibrations
    )
    runs = [evaluate_open_set(sp, emb, rule=rule) for sp in splits]
    plain = runs if not rule.normalised else [evaluate_open_set(sp, emb) for sp in splits]
    fpirs = list(runs[0].dir_at_fpir)

    def mean(rs: list[Any], field: str) -> dict[str, float]:
        return {f: float(np.mean([getattr(r, field)[f] for r in rs])) for f in fpirs}

    doc: dict[str, Any] = {
        "pipeline": _pipeline_tag(pipe),
        "seeds": seeds,
        "gallery_size": runs[0].gallery_size,
        "mated_probes": runs[0].mated,
        "non_mated_probes": runs[0].non_mated,
        "rank1": float(np.mean([r.rank1 for r in runs])),
        "rank1_std": float(np.std([r.rank1 for r in runs])),
        "score": "normalised" if rule.normalised else "similarity",
        "dir_at_fpir": mean(runs, "dir_at_fpir"),
        "threshold_at_fpir": mean(runs, "thresholds"),
        "similarity_dir_at_fpir": mean(plain, "dir_at_fpir"),
        "similarity_threshold_at_fpir": mean(plain, "thresholds"),
        "default_rule": rule.describe(),
        "default_threshold": rule.threshold,
    }
    # What the shipped default does: FPIR and DIR under the gallery-size-aware rule.
    rates = [rates_at(sp, emb, rule) for sp in splits]
    doc["default_fpir"] = float(np.mean([r[0] for r in rates]))
    doc["default_dir"] = float(np.mean([r[1] for r in rates]))
    if as_json:
        output.emit_json(doc)
        return
    output.echo(
        f"LFW open-set 1:N, gallery {doc['gallery_size']}, {doc['mated_probes']} mated "
        f"and {doc['non_mated_probes']} non-mated probes, {seeds} seeds "
        f"({doc['pipeline']})"
    )
    output.echo(f"  rank-1 (closed set)  {doc['rank1'] * 100:.2f}%")
    for f in fpirs:
        output.echo(
            f"  DIR at FPIR {f:<6}   {doc['dir_at_fpir'][f] * 100:.2f}% "
            f"({doc['score']} score, threshold {doc['threshold_at_fpir'][f]:.4f})"
            + (
                f"; similarity alone {doc['similarity_dir_at_fpir'][f] * 100:.2f}%"
                if rule.normalised
                else ""
            )
        )
    output.echo(
        f"  default rule {rule.name} ({doc['score']} score >= {rule.threshold:.4f}): "
        f"FPIR {doc['default_fpir'] * 100:.2f}%, DIR {doc['default_dir'] * 100:.2f}%"
    )
