"""``facelens index`` and ``facelens cluster``: who is in my photos.

``index`` finds every face in local folders (resumably); ``cluster`` groups the faces of
people not enrolled, keeps the user's corrections, and names a group only as an enrolment
with consent.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import click

from facelens.archive import IndexConfig, Indexer
from facelens.cli import output
from facelens.cli.common import (
    PartialFailure,
    consent_from,
    consent_options,
    find,
    gallery_options,
    identity_argument,
    open_gallery,
    override_option,
    require_gallery,
)
from facelens.cluster import LINKAGE, ClusterConfig, Clusterer
from facelens.cluster.people import Linkage
from facelens.embed import EmbedConfig
from facelens.environment import make_pipeline, model_store
from facelens.govern import GovernedGallery
from facelens.match.thresholds import Calibrations
from facelens.text import check_name

# the default recognizer: chosen on open-set identification, and clustering's stop measured
# for it (docs/accuracy.md, "The defaults, and why" and "Face clustering")
DEFAULT_INDEX_MODEL = EmbedConfig().model


def _rate_bar(total: int) -> Any:
    """A progress line with rate and ETA on a terminal (nothing elsewhere)."""
    if not output.stderr_is_tty() or total == 0:
        return None
    t0 = time.perf_counter()

    def draw(done: int, todo: int, faces: int) -> None:
        dt = max(time.perf_counter() - t0, 1e-6)
        rate = done / dt
        eta = (todo - done) / rate if rate > 0 else 0.0
        width = 30
        fill = int(width * done / max(todo, 1))
        sys.stderr.write(
            f"\rindex [{'#' * fill}{'-' * (width - fill)}] {done}/{todo} files "
            f"{rate:5.1f}/s  ETA {int(eta) // 60}m{int(eta) % 60:02d}s  {faces} faces"
        )
        if done >= todo:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return draw


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--video", is_flag=True, help="Also index videos (sampled frames).")
@click.option(
    "--video-every",
    type=click.FloatRange(0.1, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between the video frames looked at.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Threads, each with its own models (default: one per core).",
)
@click.option(
    "--model",
    default=DEFAULT_INDEX_MODEL,
    show_default=True,
    metavar="NAME",
    help="Recognizer(s) whose templates are kept (a fusion keeps each part's too); "
    "default: the default recognizer.",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="auto|ADDRESS",
    help="Analyse on a Ray cluster ('auto': the one this machine belongs to); needs "
    "pip install 'facelens[ray]'. The photos are read here and sent to the workers.",
)
@gallery_options
def index(
    paths: tuple[str, ...],
    video: bool,
    video_every: float,
    workers: int | None,
    model: str,
    ray_address: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Index every face in the photos under PATHS (local files and folders).

    A second run analyses only new and changed files and forgets deleted ones; a run
    stopped at any moment (even kill -9) resumes where it was.
    """
    from facelens.archive.scan import check_root

    for p in paths:
        check_root(p)  # an address or a missing folder is refused before anything opens
    runner = None
    if ray_address is not None:
        from facelens.archive.distributed import ray_runner

        runner = ray_runner(ray_address, model)
    config = IndexConfig(video_every_s=video_every)
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    gallery = open_gallery(gallery_path, create=True)
    assert gallery is not None
    with gallery:
        archive = gallery.archive()
        indexer = Indexer(archive, lambda: make_pipeline(threads=1, model=model), config)
        plan = indexer.plan(paths, video)
        bar = _rate_bar(len(plan[1]))
        summary = indexer.run(paths, video, progress=bar, runner=runner, plan=plan)
        totals = archive.summary()
    doc = {**summary.to_dict(), "archive": totals}
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(
            f"{summary.seen} files: {summary.indexed} indexed ({summary.changed} changed), "
            f"{summary.unchanged} unchanged, {summary.removed} removed, {summary.faces} faces "
            f"found, {summary.seconds:.1f} s ({doc['files_per_s']} files/s)"
        )
        for f in summary.failed:
            output.warn(f"{f[0]}: {f[1]}")
        output.echo(f"archive: {totals['files']} files, {totals['faces']} faces")
    if summary.failed:
        raise PartialFailure(len(summary.failed))  # exit 3, as every command that reads inputs


@click.group(invoke_without_command=True)
@click.option(
    "--stop",
    type=click.FloatRange(-1, 1),
    default=None,
    help="Join no groups less alike on average (default: the model's measured value).",
)
@click.option("--model", default=None, metavar="TAG", help="Template model to group by.")
@gallery_options
@click.pass_context
def cluster_group(
    ctx: click.Context,
    stop: float | None,
    model: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Group the indexed faces of people not enrolled (no names: ids, faces, photos).

    Corrections (merge, split, move, not-person) are kept and honoured by every later run;
    naming a group enrols the person, with their consent.
    """
    ctx.ensure_object(dict)
    ctx.obj["gallery"] = gallery_path
    if ctx.invoked_subcommand is not None:
        return
    config = ClusterConfig(model=model)
    gallery = require_gallery(gallery_path)
    with gallery:
        cals = Calibrations.of(model_store())
        clusterer = Clusterer(gallery.archive(), config, calibrations=cals)
        if stop is not None:
            base = LINKAGE.get(clusterer.model())
            floor = min(stop - 0.04, base.floor) if base else stop - 0.04
            fill = base.fill if base else floor - 0.1
            config = ClusterConfig(model=model, linkage=Linkage(stop, floor, fill, "--stop"))
            clusterer = Clusterer(clusterer.archive, config, calibrations=cals)
        result = clusterer.run(gallery)
    if as_json:
        output.emit_json(result.to_dict())
        return
    rows = [
        [c.id, len(c.faces), len(c.photos()), ", ".join(Path(p).name for p in c.photos()[:3])]
        for c in result.clusters
    ]
    output.echo(output.table(["cluster", "faces", "photos", "in"], rows))
    poor = sum(1 for _, r in result.unclustered if r == "poor_quality")
    output.echo(
        f"{len(result.clusters)} clusters; {len(result.unclustered)} faces unclustered "
        f"({poor} too poor to judge); {len(result.identified)} faces of enrolled people"
    )


def _clusterer(
    ctx: click.Context, gallery_path: Path | str | None
) -> tuple[GovernedGallery, Clusterer]:
    g = require_gallery(gallery_path or (ctx.obj or {}).get("gallery"))
    return g, Clusterer(g.archive(), calibrations=Calibrations.of(model_store()))


@cluster_group.command("show")
@click.argument("cluster")
@gallery_options
@click.pass_context
def show(ctx: click.Context, cluster: str, gallery_path: Path | str | None, as_json: bool) -> None:
    """CLUSTER's faces and the photos they are in."""
    g, c = _clusterer(ctx, gallery_path)
    with g:
        faces = c.archive.faces(c.members(cluster))
    doc = {"id": cluster, "faces": [f.to_dict() for f in faces]}
    doc["photos"] = sorted({f.path for f in faces})
    if as_json:
        output.emit_json(doc)
        return
    rows = [[f.id, output.fmt_box(f.box), f.path] for f in faces]
    output.echo(output.table(["face", "box", "photo"], rows))


@cluster_group.command("merge")
@click.argument("a")
@click.argument("b")
@gallery_options
@click.pass_context
def merge(
    ctx: click.Context, a: str, b: str, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Clusters A and B are one person."""
    g, c = _clusterer(ctx, gallery_path)
    with g:
        new = c.merge(a, b)
    _done(as_json, {"cluster": new}, f"merged into {new}")


@cluster_group.command("split")
@click.argument("cluster")
@click.argument("faces", nargs=-1, required=True)
@gallery_options
@click.pass_context
def split(
    ctx: click.Context,
    cluster: str,
    faces: tuple[str, ...],
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """FACES of CLUSTER are another person than the rest."""
    g, c = _clusterer(ctx, gallery_path)
    with g:
        rest, part = c.split(cluster, faces)
    _done(as_json, {"rest": rest, "split": part}, f"{rest} and {part}")


@cluster_group.command("move")
@click.argument("face")
@click.option("--to", "to", default=None, metavar="CLUSTER", help="The cluster it belongs to.")
@gallery_options
@click.pass_context
def move(
    ctx: click.Context, face: str, to: str | None, gallery_path: Path | str | None, as_json: bool
) -> None:
    """FACE is not the person of its cluster (and, with --to, is that cluster's)."""
    g, c = _clusterer(ctx, gallery_path)
    with g:
        now = c.move(face, to)
    _done(as_json, {"face_id": face, "cluster": now}, f"{face} -> {now or 'unclustered'}")


@cluster_group.command("not-person")
@click.argument("face")
@identity_argument
@gallery_options
@click.pass_context
def not_person(
    ctx: click.Context,
    face: str,
    identity: str,
    by_id: bool,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """FACE is not the enrolled person IDENTITY (a name, or an id with --id): never named
    as them."""
    g, c = _clusterer(ctx, gallery_path)
    with g:
        ident = find(g, identity, by_id)
        c.not_person(face, ident.id)
    _done(as_json, {"face_id": face, "not": ident.id}, f"{face} is not {ident.name}")


@cluster_group.command("name")
@click.argument("cluster")
@click.argument("name")
@consent_options
@override_option
@gallery_options
@click.pass_context
def name_cmd(
    ctx: click.Context,
    cluster: str,
    name: str,
    purpose: str | None,
    granted_by: str | None,
    consent_expires: str | None,
    override: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Name CLUSTER: enrol NAME from its faces (needs their consent, as any enrolment). The
    name of someone enrolled adds the faces to them: they must match NAME's templates, or
    nothing is added (exit 6)."""
    name = check_name(name)  # before it stands in for who granted consent
    consent = consent_from(name, purpose, granted_by, consent_expires)
    g, c = _clusterer(ctx, gallery_path)
    with g:
        r = c.name(g, cluster, name, consent, override=override)
    doc = {"identity": r.identity.name, "id": r.identity.id, "added": len(r.added)}
    _done(as_json, doc, f"enrolled {r.identity.name} from {cluster} ({len(r.added)} templates)")


def _done(as_json: bool, doc: dict[str, Any], text: str) -> None:
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(text)
