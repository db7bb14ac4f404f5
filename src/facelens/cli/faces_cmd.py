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
    ahead,
    consent_from,
    consent_options,
    expand_images,
    gallery_options,
    gallery_path_str,
    governed,
    make_pipeline,
    open_gallery,
    parse_threshold,
    pipeline_options,
    progress_reporter,
    searching,
)
from facelens.errors import (
    EnrollmentError,
    InputError,
)
from facelens.match.thresholds import identify_rule
from facelens.pipeline import FaceChoice


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
    consent = consent_from(name, purpose, granted_by, consent_expires)
    files = list(expand_images(images))
    if not files:
        raise click.UsageError("no image files found in the given paths")
    pipe = make_pipeline(detector, upsample, provider, threads, model)
    gallery = open_gallery(gallery_path, create=True)
    assert gallery is not None
    with gallery:
        report = governed(gallery).enroll(
            pipe,
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
    gallery = open_gallery(gallery_path, create=False)
    pipe = searching(make_pipeline(detector, upsample, provider, threads, model), gallery, model)
    audited = governed(gallery) if gallery is not None else None
    size = gallery.search_size(pipe.model) if gallery is not None else (0, 0)
    rule = identify_rule(pipe.model, parse_threshold(threshold), *size)
    enrolled = gallery.store.count_identities(gallery.name) if gallery is not None else 0
    if enrolled == 0:
        output.warn(
            f"no one is enrolled in {gallery_path_str(gallery_path)}: every face is "
            "unknown. Enrol with: facelens enroll NAME IMAGE... --consent PURPOSE"
        )
    elif size[0] == 0:
        output.warn(
            f"none of the {enrolled} people enrolled in {gallery_path_str(gallery_path)} can "
            "be searched now (their consent has lapsed or was withdrawn): every face is unknown"
        )
    files = list(expand_images(inputs))
    report = progress_reporter(len(files), "identify", progress)
    results: list[dict[str, Any]] = []
    failures = 0

    def name_faces(path: Path, image: Any, a: Any, sha256: str) -> None:
        h, w = image.shape[:2]
        # each photo searched is one audit record (its hash, candidates, decision)
        ids: list[Any] = (
            audited.identify_many(
                a.embeddings if a.embeddings is not None else [],
                rule,
                top_k,
                probe_sha256=sha256,
                candidates_shown=show_candidates,
                model=pipe.model,
            )
            if audited is not None
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
                    # the decided identity's similarity; an unknown face's best similarity
                    # only with --candidates
                    "score": round(ident.candidates[0].score, 3)
                    if ident and ident.candidates and (best or show_candidates)
                    else None,
                    "threshold": round(rule.threshold, 4),
                    "rule": rule.name if rule.normalised else "similarity",
                    "decision_score": None
                    if ident is None or ident.decision_score is None
                    else round(ident.decision_score, 4),
                    "candidates": [
                        {"name": c.name, "identity_id": c.identity_id, "score": round(c.score, 3)}
                        for c in (ident.candidates if ident and show_candidates else ())
                    ],
                }
            )
            labels.append(best.name if best else "unknown")
            colours.append(KNOWN if best else UNKNOWN)
        if annotate:
            draw(image, a.faces.xyxy.tolist(), labels, colours, annotate / f"{path.stem}.jpg")

    # Photos are analysed a few at a time, their faces embedded together (a batch of chips
    # runs several times faster than one photo's), within a pixel budget; the next batch is
    # decoded and its faces found and aligned in a second thread while this one's are
    # embedded and searched (both cores busy).
    def prepared() -> Iterator[tuple[int, Any]]:
        batch: list[tuple[int, Path, Any, str]] = []

        def done() -> tuple[int, Any]:
            ready = [(n, p, im, sha, pipe.prepare(im)) for n, p, im, sha in batch]
            batch.clear()
            return ready[-1][0], ready

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

    try:
        reported = 0
        for n, item in ahead(prepared()):
            if isinstance(item, InputError):
                output.warn(str(item))
                failures += 1
            else:
                analyses = pipe.embed_many([a for *_, a in item])
                for (_, path, image, sha256, _), a in zip(item, analyses, strict=True):
                    name_faces(path, image, a, sha256)
            if report:
                for done_n in range(reported + 1, n + 2):
                    report(done_n, len(files))
            reported = n + 1
    finally:
        if gallery is not None:
            gallery.close()
    if as_json:
        output.emit_json(results)
    else:
        output.echo(
            output.table(
                ["image", "box", "identity", "score"] + (["candidates"] if show_candidates else []),
                [
                    [
                        r["image"],
                        output.fmt_box(r["box"]),
                        r["identity"] or "unknown",
                        "" if r["score"] is None else f"{r['score']:.3f}",
                    ]
                    + (
                        [", ".join(f"{c['name']} {c['score']:.3f}" for c in r["candidates"])]
                        if show_candidates
                        else []
                    )
                    for r in results
                ],
            )
        )
    if failures:
        raise PartialFailure(failures)


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
