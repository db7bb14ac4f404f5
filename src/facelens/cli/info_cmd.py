"""``facelens info``: versions, models, providers, the gallery."""

from __future__ import annotations

from pathlib import Path

import click

from facelens import environment as settings
from facelens.cli import output
from facelens.cli.common import (
    gallery_options,
    gallery_path_str,
    make_pipeline,
    open_gallery,
)
from facelens.match.thresholds import OPERATING_POINTS
from facelens.quality import REASONS
from facelens.runtime import PROVIDERS

# -- info -----------------------------------------------------------------------------------


@click.command()
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

    pipe = make_pipeline(provider=provider)
    # the same document GET /v1/health gives, with what only a local command can tell
    doc = settings.describe(pipe)
    models = doc["models"]
    doc["inference"] |= {
        "converted_model_cache": str(pipe.config.runtime.cache_dir),
        "converter_version": CONVERTER_VERSION,
    }
    doc["operating_points"] = {
        m: {n: p.similarity for n, p in pts.items()} for m, pts in OPERATING_POINTS.items()
    }
    doc["quality_reasons"] = REASONS
    doc["gallery"] = {"path": gallery_path_str(gallery_path)}
    g = open_gallery(gallery_path, create=False)
    if g is not None:
        with g:
            doc["gallery"].update(
                {
                    "identities": len(g.identities()),
                    "searchable": g.search_size(pipe.model)[0],
                    "templates_sealed": g.encrypted(),
                }
            )
    if as_json:
        output.emit_json(doc)
        return
    output.echo(f"facelens {doc['version']} (Python {doc['python']})")
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
