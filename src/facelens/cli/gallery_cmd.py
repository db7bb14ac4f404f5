"""``facelens gallery ...``: list, show, rename, delete, retemplate, export, import."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from facelens.cli import output
from facelens.cli.common import (
    PipelineOptions,
    find,
    gallery_options,
    identity_argument,
    open_gallery,
    pipeline_options,
    progress_reporter,
    require_gallery,
)

# -- gallery management ---------------------------------------------------------------------


@click.group("gallery")
def gallery_group() -> None:
    """List, show, rename, delete, export and import enrolled people."""


@gallery_group.command("list")
@gallery_options
def gallery_list(gallery_path: Path | str | None, as_json: bool) -> None:
    """List enrolled identities."""
    with require_gallery(gallery_path) as g:
        people = g.identities()
        now = g.now()
    if as_json:
        output.emit_json([p.to_dict(now) for p in people])
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
@identity_argument
@gallery_options
def gallery_show(
    identity: str, by_id: bool, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Show one identity (by name, or by id with --id) with its samples' quality and consent
    records."""
    with require_gallery(gallery_path) as g:
        ident = find(g, identity, by_id)
        samples = g.samples(ident.id)
        now = g.now()
    doc = ident.to_dict(now)
    doc["samples"] = [s.to_dict() for s in samples]
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
@identity_argument
@click.argument("new_name")
@gallery_options
def gallery_rename(
    identity: str, by_id: bool, new_name: str, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Rename an identity (by name, or by id with --id). Audited."""
    with require_gallery(gallery_path) as g:
        ident = g.rename(find(g, identity, by_id).id, new_name)
    if as_json:
        output.emit_json(ident.to_dict(g.now()))
    else:
        output.echo(f"renamed to {ident.name} ({ident.id})")


@gallery_group.command("withdraw")
@identity_argument
@gallery_options
def gallery_withdraw(
    identity: str, by_id: bool, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Record that a person withdrew consent: every running consent ends now, search stops
    naming them, and 'facelens govern purge' erases them after the gallery's consent grace
    period (default 0 days). Audited."""
    with require_gallery(gallery_path) as g:
        ident = g.withdraw_consent(find(g, identity, by_id).id)
    if as_json:
        output.emit_json(ident.to_dict(g.now()))
    else:
        output.echo(f"consent withdrawn for {ident.name} ({ident.id}); not searchable from now")


@gallery_group.command("delete")
@identity_argument
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@gallery_options
def gallery_delete(
    identity: str, by_id: bool, yes: bool, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Erase an identity (by name, or by id with --id) with all its samples and consent
    records. Audited."""
    with require_gallery(gallery_path) as g:
        ident = find(g, identity, by_id)
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
        receipt, _ = g.delete(ident.id)
    doc = receipt.to_dict()
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
    pipeline: PipelineOptions,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Make templates of --model (default: the default recognizer) for everyone enrolled,
    from the chips the gallery kept.

    Needs a gallery set to keep chips ('facelens gallery settings --keep-chips') before
    people were enrolled; those it holds no chip of are listed: they must enrol again to be
    found by the new model. Identities whose consent has lapsed are left alone.
    """
    pipe = pipeline.make()  # no --model: the default recognizer
    with require_gallery(gallery_path) as g:
        n = len(g.identities())
        report = g.retemplate(pipe, progress_reporter(n, "retemplate", progress))
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
@click.option(
    "--confirm",
    type=click.IntRange(1, 2),
    default=None,
    help="People who must confirm an identification before it is acted on: 2 holds each "
    "one as an alert until two API keys confirm it (EU AI Act Art. 14(5)); default 1.",
)
@click.option("--yes", is_flag=True, help="Do not ask before erasing kept chips.")
@gallery_options
def gallery_settings(
    keep_chips: bool | None,
    confirm: int | None,
    yes: bool,
    gallery_path: Path | str | None,
    as_json: bool,
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
        if confirm is not None and confirm != current["confirm"]:
            current = g.configure(confirm=confirm)
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
    with require_gallery(gallery_path) as g:
        n = g.export_to(file, chips=with_chips)
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
        imported, skipped = g.import_from(file, on_conflict)
    if as_json:
        output.emit_json({"imported": imported, "skipped": skipped})
    else:
        output.echo(f"imported {imported} identities" + (f", skipped {skipped}" if skipped else ""))
