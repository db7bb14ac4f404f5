"""Every recognizer, variant and fusion on LFW, degraded LFW and open-set identification, with
what each costs per face; and the default they choose by the rule of docs/accuracy.md.

    .venv/bin/python benchmarks/recognizers.py [--write docs/accuracy.md]

Needs the chips of ``benchmarks/_lfw_chips.py`` (every LFW image as a single-person photo
through YuNet, clean and degraded): a variant costs only its own forward passes here.

Systems, each image handled as the pipeline handles a single-person photo (primary face,
retries), through YuNet:

- every recognizer of the registry, float32 and int8 (``dlib_resnet_v1``,
  ``dlib_resnet_v1_int8``, ``sface_2021dec``, ``sface_2021dec_int8``), each on the chip alone
  (``none``) and with its mirror image (``flip``: the mean of the two unit templates);
- the weighted fusion of every dlib variant with every SFace variant, each part with and
  without its mirror view (whether the flip view pays is asked of each model separately: SFace
  costs several times dlib's ResNet per chip), the SFace weight chosen on half A of LFW's
  people (below), never on the figures reported;
  for reference, the float32 fusion with flip at the weights shipped before (0.15) and at
  equal weights.

Figures:

1. LFW View 2 (``pairs.txt``), official 10-fold accuracy.
2. Degraded LFW: the same 6,000 pairs with the *second* image of each pair degraded (see
   ``_lfw_chips.degrade``): ``small`` (face about 40 px wide), ``blur`` (sigma 2.5 px),
   ``jpeg20``, ``rot30`` (turned 30 degrees). 10-fold accuracy of each.
3. Open-set identification on the 4,909-person split (840 people held out, 10 seeds): DIR at
   FPIR 1% on the cohort-normalised decision score (the shipped rule's form at this size);
   and the same on a split made of half B's people only (420 held out), which no fusion
   weight was chosen on. Half A / half B: ``half_a`` (a hash of the name), as clustering's
   stop is chosen.
4. ms per chip at batch 1 and 32 on 2 threads (``recognizer_speed.chip_ms``, measured in
   this run; the flip view counts twice, a fusion the sum of its parts).

Then the rule (docs/accuracy.md, "How the default recognizer is chosen") is applied to the
table and its verdict printed and written.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import _lfw_chips as lc
from _report import ROOT, data_root, machine, md_table, write_section
from facelens import EmbedConfig
from facelens.embed import make_embedder
from facelens.embed.fusion import fusion_tag
from facelens.eval.cache import load_embeddings, save_embeddings
from facelens.eval.identify import evaluate_open_set, split
from facelens.eval.lfw import read_pairs, read_people
from facelens.eval.metrics import ten_fold
from facelens.match.decide import IdentifyRule
from facelens.models import MODELS, ModelStore
from facelens.runtime import RuntimeConfig
from recognizer_speed import chip_ms, sample_chips

CACHE = ROOT / "benchmarks" / ".cache"
Key = tuple[str, int]
VARIANTS = lc.VARIANTS
DLIB = ["dlib_resnet_v1", "dlib_resnet_v1_int8"]
SFACE = ["sface_2021dec", "sface_2021dec_int8"]
AUGMENT = ("none", "flip")
WEIGHTS = [round(w, 2) for w in np.arange(0.05, 0.951, 0.05)]
RULE = IdentifyRule(0.0, cohort=4, weight=0.5, fallback=1.0)  # the shipped rule's score
TODAY = "dlib_resnet_v1+flip"  # today's default, the floor of the degraded columns
LFW_FLOOR = 99.5
TIE = 0.5  # DIR points within which candidates are tied (the cheaper wins)
INT8_DROP = 0.1  # points an int8 build may lose against its parent, in every column


def half_a(name: str) -> bool:
    """The half of LFW's people fusion weights are chosen on (as clustering's stop)."""
    return hashlib.sha256(name.encode()).digest()[0] % 2 == 0


def model_views(model: str, chips: lc.ChipSet) -> dict[str, dict[Key, np.ndarray | None]]:
    """{"plain": {key: unit template}, "mirror": {...}} of one model over one chip set,
    cached per model and variant."""
    spec = MODELS[model]
    tag = f"{lc.TAG}:{model}:{spec.onnx_sha256 or spec.sha256}:c3"
    paths = {v: CACHE / f"rec3_{model}_{chips.variant}_{v}.npz" for v in ("plain", "mirror")}
    have = {v: load_embeddings(p, tag) for v, p in paths.items()}
    if len(have["plain"]) == len(chips.keys) and len(have["mirror"]) == len(chips.keys):
        return have
    e = make_embedder(
        EmbedConfig(model=model, augment="none", batch_size=8 if "sface" in model else 32),
        ModelStore(),
        RuntimeConfig(threads=2, cache_dir=CACHE / "converted"),
    )
    view = f"{e.alignment}{e.chip_size}"
    ok = np.flatnonzero(chips.ok[:])
    plain: dict[Key, np.ndarray | None] = {k: None for k in chips.keys}
    mirror: dict[Key, np.ndarray | None] = {k: None for k in chips.keys}
    t0 = time.perf_counter()
    for a in range(0, len(ok), 256):
        idx = ok[a : a + 256]
        x = np.ascontiguousarray(chips.arrays[view][idx])
        p = e.embed(x).vectors
        m = e.embed(np.ascontiguousarray(x[:, :, ::-1])).vectors
        for j, i in enumerate(idx):
            plain[chips.keys[i]], mirror[chips.keys[i]] = p[j], m[j]
        if a % 2560 == 0:
            rate = (a + len(idx)) / (time.perf_counter() - t0)
            print(f"{model} {chips.variant}: {a + len(idx)}/{len(ok)} ({rate:.0f}/s)", flush=True)
    save_embeddings(paths["plain"], plain, tag)
    save_embeddings(paths["mirror"], mirror, tag)
    return {"plain": plain, "mirror": mirror}


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def augmented(views: dict[str, dict[Key, Any]], mode: str) -> dict[Key, np.ndarray | None]:
    """The template of each face with augmentation ``mode`` (``embed.augment``: the mean of
    the views' unit vectors, made unit)."""
    if mode == "none":
        return views["plain"]
    return {
        k: None if v is None else unit(v + views["mirror"][k]) for k, v in views["plain"].items()
    }


def fused(a: dict[Key, Any], b: dict[Key, Any], w: float) -> dict[Key, np.ndarray | None]:
    """Weighted fusion of two template sets (``embed.fusion``: weight ``w`` on ``b``)."""
    out: dict[Key, np.ndarray | None] = {}
    for k in a:
        x, y = a.get(k), b.get(k)
        out[k] = (
            None
            if x is None or y is None
            else unit(np.r_[unit(x) * np.sqrt(1 - w), unit(y) * np.sqrt(w)])
        )
    return out


def pair_scores(pairs: list[Any], first: dict[Key, Any], second: dict[Key, Any]) -> np.ndarray:
    s = []
    for p in pairs:
        a, b = first.get((p.name_a, p.index_a)), second.get((p.name_b, p.index_b))
        s.append(-1.0 if a is None or b is None else float(a @ b))
    return np.asarray(s)


def open_set_dir(
    people: dict[str, list[int]], t: dict[Key, Any], holdout: int, seeds: int
) -> float:
    return float(
        np.mean(
            [
                evaluate_open_set(split(people, holdout, s), t, rule=RULE).dir_at_fpir["0.01"]
                for s in range(seeds)
            ]
        )
    )


def cached_templates(tag: str, variant: str = "clean") -> dict[Key, np.ndarray | None] | None:
    """The templates of tag ``tag`` (a recognizer with its augmentation, or a fusion) over
    one variant's LFW images, from this benchmark's per-view cache; None when a part was not
    computed. ``calibrate.py`` reads the default's from here instead of embedding LFW again.
    """
    from facelens.embed.base import config_for_tag

    config = config_for_tag(tag, EmbedConfig())
    if config is None:
        return None
    names = config.model.split("+")
    chips = lc.ChipSet(variant, lc.variant_keys(data_root() / "lfw")[variant])
    parts = []
    for name in names:
        spec = MODELS[name]
        want = f"{lc.TAG}:{name}:{spec.onnx_sha256 or spec.sha256}:c3"
        views = {
            v: load_embeddings(CACHE / f"rec3_{name}_{variant}_{v}.npz", want)
            for v in ("plain", "mirror")
        }
        if any(len(x) != len(chips.keys) for x in views.values()):
            return None
        parts.append(augmented(views, config.augment))
    if len(parts) == 1:
        return parts[0]
    assert config.weights is not None and len(parts) == 2
    return fused(parts[0], parts[1], config.weights[1])


@dataclass
class System:
    """One row: a recognizer (or fusion) with an augmentation, its templates and figures."""

    name: str
    tag: str
    parts: tuple[str, ...]
    augment: tuple[str, ...]  # each part's augmentation
    weight: float | None  # SFace's weight in a fusion
    sets: dict[str, dict[Key, Any]]
    candidate: bool = True  # weights chosen by the rule (reference rows are not)
    figures: dict[str, float] = field(default_factory=dict)
    cost: tuple[float, float] = (0.0, 0.0)  # ms per face at batch 1 and 32


def choose(rows: list[System], key: str) -> System:
    """The best ``key`` (a DIR column), ties within TIE points going to the cheaper."""
    best = max(r.figures[key] for r in rows)
    tied = [r for r in rows if r.figures[key] >= best - TIE]
    return min(tied, key=lambda r: r.cost[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    people = read_people(lfw)
    half = {
        "A": {n: i for n, i in people.items() if half_a(n)},
        "B": {n: i for n, i in people.items() if not half_a(n)},
    }
    v2 = read_pairs(lfw / "pairs.txt")
    same = np.array([p.same for p in v2])
    folds = np.array([p.fold for p in v2])
    chipsets = lc.load(lfw)
    models = DLIB + SFACE

    # per-view templates of every model over every variant's chips; an int8 build already
    # more than INT8_DROP below its parent on clean LFW or DIR, with and without flip, is
    # dropped before its degraded variants are embedded (they cannot bring it back)
    views: dict[str, dict[str, Any]] = {
        m: {"clean": model_views(m, chipsets["clean"])} for m in models
    }
    early: dict[str, str] = {}
    for m in models:
        parent = MODELS[m].parent
        if parent:
            lost = []
            for aug in AUGMENT:
                mine, par = (
                    augmented(views[m]["clean"], aug),
                    augmented(views[parent]["clean"], aug),
                )
                lfw_m = ten_fold(pair_scores(v2, mine, mine), same, folds).mean * 100
                lfw_p = ten_fold(pair_scores(v2, par, par), same, folds).mean * 100
                dir_m = open_set_dir(people, mine, 840, args.seeds) * 100
                dir_p = open_set_dir(people, par, 840, args.seeds) * 100
                if max(lfw_p - lfw_m, dir_p - dir_m) > INT8_DROP + 1e-9:
                    lost.append(f"{aug}: LFW {lfw_m - lfw_p:+.2f}, DIR {dir_m - dir_p:+.2f}")
            if len(lost) == len(AUGMENT):
                early[m] = "; ".join(lost)
                print("dropped on clean LFW / DIR:", m, early[m], flush=True)
                continue
        for v in VARIANTS[1:]:
            views[m][v] = model_views(m, chipsets[v])

    def sets_of(m: str, aug: str) -> dict[str, dict[Key, Any]]:
        return {v: augmented(views[m][v], aug) for v in views[m]}

    print("timing", flush=True)
    ms = chip_ms(models, sample_chips())
    systems: list[System] = []

    def tag_of(m: str, aug: str) -> str:
        return m if aug == "none" else f"{m}+{aug}"

    for aug in AUGMENT:
        for m in models:
            tag = tag_of(m, aug)
            systems.append(System(tag, tag, (m,), (aug,), None, sets_of(m, aug)))
    for d_aug, s_aug in [(a, b) for a in AUGMENT for b in AUGMENT]:
        for d in DLIB:
            for s in SFACE:
                if d in early or s in early:
                    continue  # a dropped int8 build is no part of any candidate
                da, sb = sets_of(d, d_aug), sets_of(s, s_aug)
                scores = {
                    w: open_set_dir(half["A"], fused(da["clean"], sb["clean"], w), 420, args.seeds)
                    for w in WEIGHTS
                }
                w = max(scores, key=lambda x: (round(scores[x], 6), -abs(x - 0.5)))
                print(d, d_aug, s, s_aug, "half A DIR by weight:", scores, "->", w, flush=True)
                tags = [tag_of(d, d_aug), tag_of(s, s_aug)]
                for weight, candidate in [(w, True)] + (
                    [(x, False) for x in (0.15, 0.5) if x != w]
                    if (d, s, d_aug, s_aug) == (DLIB[0], SFACE[0], "flip", "flip")
                    else []
                ):
                    tag = fusion_tag(tags, (round(1 - weight, 2), weight))
                    label = f"{tag} ({'chosen on half A' if candidate else 'reference'})"
                    sets = {v: fused(da[v], sb[v], weight) for v in da if v in sb}
                    augs = (d_aug, s_aug)
                    systems.append(System(label, tag, (d, s), augs, weight, sets, candidate))

    nan = float("nan")
    for r in systems:
        for v in VARIANTS:
            r.figures[v] = (
                ten_fold(pair_scores(v2, r.sets["clean"], r.sets[v]), same, folds).mean * 100
                if v in r.sets
                else nan
            )
        r.figures["dir"] = open_set_dir(people, r.sets["clean"], 840, args.seeds) * 100
        r.figures["dir_b"] = open_set_dir(half["B"], r.sets["clean"], 420, args.seeds) * 100
        views_of = [2 if a == "flip" else 1 for a in r.augment]
        r.cost = (
            sum(k * ms[p][0] for k, p in zip(views_of, r.parts, strict=True)),
            sum(k * ms[p][1] for k, p in zip(views_of, r.parts, strict=True)),
        )
        print(r.name, {k: round(v, 2) for k, v in r.figures.items()}, r.cost, flush=True)

    # the rule
    by_tag = {r.tag: r for r in systems if r.candidate}
    today = by_tag[TODAY]
    cols = [*VARIANTS, "dir"]
    int8_ok: dict[tuple[str, str], list[str]] = {}  # (int8 model, augment) -> failing columns
    for m in models:
        spec = MODELS[m]
        if not spec.parent:
            continue
        for aug in AUGMENT:
            mine = by_tag[m if aug == "none" else f"{m}+{aug}"]
            par = by_tag[spec.parent if aug == "none" else f"{spec.parent}+{aug}"]
            int8_ok[(m, aug)] = [
                c
                for c in cols
                if np.isfinite(mine.figures[c])
                and mine.figures[c] < par.figures[c] - INT8_DROP - 1e-9
            ]
    notes = []
    qualifying = []
    for r in systems:
        if not r.candidate:
            continue
        failed = [p for p, a in zip(r.parts, r.augment, strict=True) if int8_ok.get((p, a))]
        why = []
        if failed:
            why.append(f"int8 build {failed[0]} lost more than {INT8_DROP} point to its parent")
        if r.figures["clean"] < LFW_FLOOR - 1e-9:
            why.append(f"LFW {r.figures['clean']:.2f}% < {LFW_FLOOR}%")
        low = [v for v in VARIANTS[1:] if r.figures[v] < today.figures[v] - 1e-9]
        if low:
            why.append("below today's default on " + ", ".join(low))
        if why:
            notes.append(f"{r.tag}: " + "; ".join(why))
        else:
            qualifying.append(r)
    verdict = [
        f"int8 {m}: dropped on clean LFW and DIR alone ({why}; more than {INT8_DROP} point "
        "below its parent with and without flip): its degraded columns were not run, nor "
        "fusions with it"
        for m, why in early.items()
    ]
    for (m, aug), failing in int8_ok.items():
        if m in early:
            continue
        verdict.append(
            f"int8 {m} with {aug}: "
            + (
                "kept (every column within 0.1 point of its parent)"
                if not failing
                else "dropped (" + ", ".join(failing) + " more than 0.1 point below its parent)"
            )
        )
    if qualifying:
        full, b = choose(qualifying, "dir"), choose(qualifying, "dir_b")
        default = full if full is b else b
        verdict.append(
            f"qualifying: {len(qualifying)}; best DIR on the 4,909-person gallery (ties within "
            f"{TIE} point to the cheaper): {full.tag}; on half B: {b.tag}; the default: "
            f"**{default.tag}** (DIR {default.figures['dir']:.1f}%, half B "
            f"{default.figures['dir_b']:.1f}%, LFW {default.figures['clean']:.2f}%, "
            f"{default.cost[1]:.1f} ms per face at batch 32)"
        )
    else:
        verdict.append("no candidate qualifies")
    print("\n".join(verdict + notes), flush=True)

    headers = ["system", "ms/face b1", "ms/face b32", "LFW acc %"]
    headers += [f"{v} acc %" for v in VARIANTS[1:]]
    headers += ["DIR % @FPIR 1% (4,909)", "DIR % half B"]
    rows = [
        [r.name, f"{r.cost[0]:.1f}", f"{r.cost[1]:.1f}"]
        + [f"{r.figures[v]:.2f}" if np.isfinite(r.figures[v]) else "not run" for v in VARIANTS]
        + [f"{r.figures['dir']:.1f}", f"{r.figures['dir_b']:.1f}"]
        for r in systems
    ]
    body = "\n\n".join(
        [
            f"Machine: {machine()}, shared with other work. Command: `.venv/bin/python "
            "benchmarks/recognizers.py --write docs/accuracy.md` (after "
            "`benchmarks/_lfw_chips.py`). YuNet, primary face with retries; LFW View 2, "
            "10-fold; the degraded columns degrade the second image of every pair (small: face "
            f"about {lc.FACE_PX} px wide; blur: sigma 2.5 px; jpeg20: JPEG quality 20; rot30: "
            "turned 30 degrees). Open set: 4,909-person gallery, 840 people held out, "
            f"{args.seeds} seeds, cohort-normalised score; half B: the same on half B's people "
            "only (420 held out). A fusion's SFace weight is chosen on half A's people "
            "(best mean DIR at FPIR 1%, grid 0.05-0.95). ms per face: one chip (two with flip; "
            "a fusion, each part's), 2 threads, measured in this run.",
            md_table(headers, rows),
            'Verdict of the rule (docs/accuracy.md, "How the default recognizer is chosen"):\n\n'
            + "\n".join(f"- {line}" for line in verdict + notes),
        ]
    )
    print(body)
    if args.write:
        write_section(ROOT / args.write, "recognizers", body)


if __name__ == "__main__":
    main()
