"""``facelens detect``, ``enroll``, ``identify`` and ``verify``: faces in photos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from facelens.cli import output
from facelens.cli.annotate import KNOWN, NEUTRAL, UNKNOWN, draw
from facelens.cli.common import (
    BATCH_IMAGES,
    BATCH_VALUES,
    INPUT_PATH,
    PartialFailure,
    PipelineOptions,
    ahead,
    consent_from,
    consent_options,
    expand_images,
    gallery_options,
    gallery_path_str,
    json_option,
    open_gallery,
    override_option,
    parse_threshold,
    pipeline_options,
    progress_reporter,
    searching_noticed,
)
from facelens.errors import (
    InputError,
)
from facelens.match import Identification
from facelens.match.thresholds import identify_rule
from facelens.pipeline import FaceChoice
from facelens.results import DetectResult, IdentifyResult, VerifyResult
from facelens.text import check_name


@click.command()
@click.argument("images", nargs=-1, required=True, type=INPUT_PATH)
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
@json_option
def detect(
    images: tuple[Path, ...],
    pipeline: PipelineOptions,
    with_quality: bool,
    annotate: Path | None,
    as_json: bool,
) -> None:
    """Find faces in IMAGES (files or folders).

    --json prints one object per image: its size and its faces (box, detector score and,
    with --quality, the quality measures and gate reasons), as the service's /v1/detect.
    """
    pipe = pipeline.make()
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
        if with_quality:
            faces = pipe.align(image, faces)
            q = pipe.quality(image, faces)
        found = DetectResult(w, h, faces, q, pipe.config.gate)
        results.append({"image": str(path), **found.to_dict()})
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
        headers = ["image", "box", "score"]
        if with_quality:
            headers += [h for h, _, _ in QUALITY_COLUMNS] + ["gate"]
        lines: list[list[str]] = []
        for r in results:
            for f in r["faces"]:
                line = [r["image"], output.fmt_box(f["box"]), f"{f['score']:.2f}"]
                if with_quality:
                    measured = f.get("quality") or {}
                    line += [fmt.format(measured[k]) for _, k, fmt in QUALITY_COLUMNS]
                    line.append(", ".join(f.get("gate", [])) or "ok")
                lines.append(line)
        output.echo(output.table(headers, lines))
    if failures:
        raise PartialFailure(failures)


# The quality measures `detect --quality` shows in its table (all of them in --json).
QUALITY_COLUMNS = (
    ("eyes px", "inter_eye_px", "{:.0f}"),
    ("sharpness", "sharpness", "{:.0f}"),
    ("yaw", "yaw_deg", "{:+.0f}"),
    ("pitch", "pitch_deg", "{:+.0f}"),
    ("bright", "brightness", "{:.0f}"),
    ("clipped", "clipped", "{:.2f}"),
)


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


@click.command()
@click.argument("name")
@click.argument("images", nargs=-1, required=True, type=INPUT_PATH)
@consent_options
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
@override_option
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
    override: str | None,
    pipeline: PipelineOptions,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Enrol NAME from IMAGES (files or folders) in the gallery.

    Each image gives one sample (its primary face); images that fail the quality gate are
    listed with the reason. Everything is stored in one atomic write. Images added to someone
    already enrolled must show the same person (their faces must match NAME's templates at
    the strict threshold): otherwise nothing is added (exit 6).
    """
    name = check_name(name)  # before it stands in for who granted consent
    choice = parse_face(face)
    metadata = parse_meta(meta)
    consent = consent_from(name, purpose, granted_by, consent_expires)
    files = list(expand_images(images))
    if not files:
        raise click.UsageError("no image files found in the given paths")
    pipe = pipeline.make()
    gallery = open_gallery(gallery_path, create=True)
    assert gallery is not None
    with gallery:
        report = gallery.enroll(
            pipe,
            name,
            files,
            consent,
            face=choice,
            gate=not no_quality_gate,
            metadata=metadata,
            progress=progress_reporter(len(files), "enroll", progress),
            override=override,
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
                "added": res.images,
                "duplicates": res.duplicates,
                "rejected": rejected,
            }
        )
        return
    verb = "enrolled" if res.created else "updated"
    output.echo(
        f"{verb} {res.identity.name} ({res.identity.id}): {res.images} sample(s) "
        f"added, {res.identity.sample_count} in all"
        + (f", {res.duplicates} duplicate image(s) skipped" if res.duplicates else "")
    )
    for r in rejected:
        output.echo(f"  not used: {r['image']}: {', '.join(r['reasons'])}")


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=INPUT_PATH)
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
    "--candidates",
    "show_candidates",
    is_flag=True,
    help="Also list each face's closest enrolled people (--top-k of them), identified or "
    "not. Off by default: an unknown face's 'looks like X' is a non-match nobody should act "
    "on.",
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
    show_candidates: bool,
    annotate: Path | None,
    progress: bool,
    pipeline: PipelineOptions,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Name the people in INPUTS (image files or folders) from the gallery.

    Prints one row per face: image, box [x1, y1, x2, y2] in pixels, and the identity (the
    enrolled name, or unknown when no one is similar enough). --json prints one object per
    image, as the service's /v1/galleries/{gallery}/identify answers it.
    """
    gallery = open_gallery(gallery_path, create=False)
    if gallery is not None:
        try:  # a stopped tenant's search is refused before any photo is read (audited)
            gallery.refuse_if_stopped("identify")
            # the default's templates, else those the gallery holds (with a notice); a
            # --model it holds none of is NoTemplatesError (exit 5)
            pipe, notice = searching_noticed(pipeline.make(), gallery, pipeline.model)
        except BaseException:
            gallery.close()
            raise
    else:
        pipe, notice = pipeline.make(), None
    size = gallery.search_size(pipe.model) if gallery is not None else (0, 0)
    rule = identify_rule(
        pipe.model, parse_threshold(threshold), *size, calibrations=pipe.calibrations
    )
    _warn_if_nobody(gallery, gallery_path, size[0])
    files = list(expand_images(inputs))
    report = progress_reporter(len(files), "identify", progress)
    results: list[dict[str, Any]] = []
    failures = 0

    def name_faces(path: Path, image: Any, a: Any, sha256: str) -> None:
        h, w = image.shape[:2]
        # each photo searched is one audit record (its hash, candidates, decision)
        ids: list[Any] = (
            gallery.identify_many(
                a.embeddings if a.embeddings is not None else [],
                rule,
                top_k,
                probe_sha256=sha256,
                candidates_shown=show_candidates,
                model=pipe.model,
            )
            if gallery is not None
            else [Identification((), None, rule.threshold, None, rule.name)] * len(a.faces)
        )
        found = IdentifyResult(w, h, pipe.model, rule, a.faces, ids, show_candidates, notice)
        results.append({"image": str(path), **found.to_dict()})
        if annotate:
            labels = [x.identity.name if x.identity else "unknown" for x in ids]
            colours = [KNOWN if x.identity else UNKNOWN for x in ids]
            draw(image, a.faces.xyxy.tolist(), labels, colours, annotate / f"{path.stem}.jpg")

    try:
        for item in _analysed(pipe, files, report):
            if isinstance(item, InputError):
                output.warn(str(item))
                failures += 1
            else:
                name_faces(*item)
    finally:
        if gallery is not None:
            gallery.close()
    if as_json:
        output.emit_json(results)
    else:
        _print_identified(results, show_candidates)
    if failures:
        raise PartialFailure(failures)


def _warn_if_nobody(gallery: Any, gallery_path: Path | str | None, searchable: int) -> None:
    """Say so when every face will be unknown: no one enrolled, or no one searchable now."""
    enrolled = gallery.count() if gallery is not None else 0
    if enrolled == 0:
        output.warn(
            f"no one is enrolled in {gallery_path_str(gallery_path)}: every face is "
            "unknown. Enrol with: facelens enroll NAME IMAGE... --consent PURPOSE"
        )
    elif searchable == 0:
        output.warn(
            f"none of the {enrolled} people enrolled in {gallery_path_str(gallery_path)} can "
            "be searched now (their consent has lapsed or was withdrawn): every face is unknown"
        )


def _analysed(
    pipe: Any, files: list[Path], report: Any
) -> Iterator[tuple[Path, Any, Any, str] | InputError]:
    """(path, image, analysis, SHA-256) of each photo, or the error of one that cannot be
    read. Photos are analysed a few at a time, their faces embedded together (a batch of
    chips runs several times faster than one photo's), within a pixel budget; the next batch
    is decoded and its faces found and aligned in a second thread while this one's are
    embedded (``Pipeline.prepare`` / ``embed_many``: both cores busy, the same answers)."""

    def prepared() -> Iterator[tuple[int, list[tuple[Path, Any, Any, str]] | InputError]]:
        batch: list[tuple[int, Path, Any, str]] = []

        def done() -> tuple[int, list[tuple[Path, Any, Any, str]]]:
            ready = [(p, im, pipe.prepare(im), sha) for _, p, im, sha in batch]
            last = batch[-1][0]
            batch.clear()
            return last, ready

        for n, path in enumerate(files):
            try:
                image, meta = pipe.decode(path)
            except InputError as e:
                yield n, e
                continue
            batch.append((n, path, image, meta.sha256))
            if len(batch) >= BATCH_IMAGES or sum(b[2].size for b in batch) >= BATCH_VALUES:
                yield done()
        if batch:
            yield done()

    reported = 0
    for n, item in ahead(prepared()):
        if isinstance(item, InputError):
            yield item
        else:
            analyses = pipe.embed_many([a for _, _, a, _ in item])
            for (path, image, _, sha), a in zip(item, analyses, strict=True):
                yield path, image, a, sha
        if report:
            for k in range(reported + 1, n + 2):
                report(k, len(files))
        reported = n + 1


def _print_identified(results: list[dict[str, Any]], show_candidates: bool) -> None:
    """identify's table: a row per face."""
    output.echo(
        output.table(
            ["image", "box", "identity", "score"] + (["candidates"] if show_candidates else []),
            [
                [
                    r["image"],
                    output.fmt_box(f["box"]),
                    f["identity"]["name"] if f["identity"] else "unknown",
                    f"{f['identity']['score']:.3f}" if f["identity"] else "",
                ]
                + (
                    [", ".join(f"{c['name']} {c['score']:.3f}" for c in f["candidates"])]
                    if show_candidates
                    else []
                )
                for r in results
                for f in r["faces"]
            ],
        )
    )


@click.command()
@click.argument("image_a", type=INPUT_PATH)
@click.argument("image_b", type=INPUT_PATH)
@click.option(
    "--threshold",
    default=None,
    metavar="NAME|VALUE",
    help="Cosine threshold, operating point (balanced, fmr_1e-3, strict, fmr_1e-5) or fmr=X. "
    "Default 'balanced': LFW's most accurate threshold.",
)
@click.option(
    "--face-a",
    type=click.IntRange(0, 1000),
    default=None,
    metavar="N",
    help="Which face of IMAGE_A to compare, counting from 0 at the left (default: the "
    "largest). --json lists every face found (faces_a).",
)
@click.option(
    "--face-b",
    type=click.IntRange(0, 1000),
    default=None,
    metavar="N",
    help="Which face of IMAGE_B to compare (default: the largest).",
)
@json_option
@pipeline_options
def verify(
    image_a: Path,
    image_b: Path,
    threshold: str | None,
    face_a: int | None,
    face_b: int | None,
    as_json: bool,
    pipeline: PipelineOptions,
) -> None:
    """Say whether IMAGE_A and IMAGE_B show the same person.

    Each image's largest face is compared (when none is found the image is searched once
    more at twice the resolution); an image of several faces is said to have them, and
    --face-a / --face-b choose another (from 0, left to right). --json prints what the
    service's /v1/verify answers.
    """
    pipe = pipeline.make()
    embs, chosen = [], []
    for path, n in ((image_a, face_a), (image_b, face_b)):
        image, _ = pipe.decode(path)
        views, face = pipe.compared_face(image, n, str(path))
        embs.append(pipe.embed_views(views))
        chosen.append(face)
    point = parse_threshold(threshold)
    v = pipe.verify(embs[0], embs[1], point)
    named = point if point is not None else pipe.config.verify_threshold
    result = VerifyResult(v, named if isinstance(named, str) else "custom", chosen[0], chosen[1])
    if as_json:
        output.emit_json({"image_a": str(image_a), "image_b": str(image_b), **result.to_dict()})
        return
    for note in result.notes():
        output.warn(note)
    verdict = "same person" if v.same else "different people"
    output.echo(f"{verdict} (similarity {v.similarity:.3f}, threshold {v.threshold:.3f})")
