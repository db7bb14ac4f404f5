"""What the command modules share: exit codes, options, opening galleries, finding images,
progress, and which exit code a facelens error gets."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from facelens import environment as settings
from facelens.cli import output
from facelens.detect import DETECTORS, DetectConfig
from facelens.environment import make_pipeline, model_store
from facelens.errors import (
    EnrollmentError,
    GalleryError,
    InputError,
    MissingDependencyError,
    ModelError,
    NotFoundError,
    PolicyError,
)
from facelens.gallery import Consent, Identity
from facelens.gallery.stores import is_postgres_url
from facelens.govern import GovernedGallery
from facelens.match.thresholds import parse_threshold
from facelens.pipeline import Pipeline
from facelens.runtime import PROVIDERS

__all__ = ["make_pipeline", "model_store", "parse_threshold"]  # re-exported for the command modules

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_GALLERY = 5
EXIT_POLICY = 6
EXIT_NO_FACE = 7
EXIT_MISSING = 8
EXIT_INTERRUPTED = 130

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

# identify analyses photos in batches of at most this many, or of this many RGB values
# (3 x 16 MP): their faces are embedded together.
BATCH_IMAGES = 16
BATCH_VALUES = 3 * 16_000_000

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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

# An input file or folder, as given: click does not check it, so a missing or unreadable
# one is reported by the command as an input error (exit 3) while the others go on.
INPUT_PATH = click.Path(path_type=Path, readable=False)


def _select(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Remember ``--tenant`` / ``--gallery-name`` for ``open_gallery`` (checked here, so a
    bad name is a usage error before anything is opened)."""
    from facelens.govern.names import check_public_name

    if value is not None:
        try:
            check_public_name(value, "tenant" if param.name == "tenant" else "gallery")
        except InputError as e:
            raise click.BadParameter(e.reason, ctx, param) from None
        ctx.meta[f"facelens.{param.name}"] = value
    return value


def json_option(f: F) -> F:
    """``--json``: machine-readable output (``facelens.results`` shapes where they apply)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
    )(f)


def gallery_options(f: F) -> F:
    f = json_option(f)
    f = click.option(
        "--gallery",
        "gallery_path",
        type=GALLERY,
        default=None,
        metavar="PATH|URL",
        help="Gallery file or postgresql:// URL "
        "(default: $FACELENS_GALLERY or ~/.facelens/gallery.db).",
    )(f)
    return tenant_options(f)


def tenant_options(f: F) -> F:
    """``--tenant`` and ``--gallery-name``: which gallery of the store a command uses."""
    f = click.option(
        "--gallery-name",
        "gallery_name",
        default=None,
        expose_value=False,
        callback=_select,
        metavar="NAME",
        help="Which gallery in the store (default: 'default'; with --tenant, that tenant's "
        "gallery of this name, as the service names it).",
    )(f)
    f = click.option(
        "--tenant",
        "tenant",
        default=None,
        expose_value=False,
        callback=_select,
        metavar="NAME",
        help="A service tenant whose gallery this is (default: the command line's own "
        "galleries). Actions are audited in that tenant's trail.",
    )(f)
    return f


@dataclass(frozen=True)
class PipelineOptions:
    """The pipeline a command was asked for (``--detector``, ``--upsample``, ``--provider``,
    ``--threads``, ``--model``): declared once (``pipeline_options``), handed to the command as
    one ``pipeline`` argument."""

    detector: str | None = None
    upsample: int | None = None
    provider: str | None = None
    threads: int | None = None
    model: str | None = None

    def make(self) -> Pipeline:
        return make_pipeline(self.detector, self.upsample, self.provider, self.threads, self.model)


def pipeline_options(f: F) -> F:
    """The five pipeline options, given to the command as ``pipeline: PipelineOptions``."""
    inner = f

    @functools.wraps(inner)
    def command(
        *args: Any,
        detector: str | None,
        upsample: int | None,
        provider: str | None,
        threads: int | None,
        model: str | None,
        **kwargs: Any,
    ) -> Any:
        chosen = PipelineOptions(detector, upsample, provider, threads, model)
        return inner(*args, pipeline=chosen, **kwargs)

    f = cast(F, command)
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


def gallery_path(path: Path | str | None) -> Path | str:
    return path or settings.default_gallery()


def selected_gallery() -> tuple[str | None, str]:
    """(tenant or None, gallery name) chosen with ``--tenant`` / ``--gallery-name``."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return meta.get("facelens.tenant"), meta.get("facelens.gallery_name") or "default"


def open_gallery(path: Path | str | None, create: bool) -> GovernedGallery | None:
    """The selected gallery in the store at ``path``, governed and audited as the local user
    (``cli:<user>``); None when it does not exist (the file, or a tenant's gallery in it)
    and ``create`` is False."""
    import getpass

    p = gallery_path(path)
    if not create and isinstance(p, Path) and not p.exists():
        return None
    tenant, name = selected_gallery()
    g = GovernedGallery.open(
        p, name=name, tenant=tenant, actor=f"cli:{getpass.getuser()}", key=settings.template_key()
    )
    if not create and tenant is not None and not g.exists():
        g.close()
        raise GalleryError(f"tenant {tenant!r} has no gallery {name!r} in {gallery_path_str(p)}")
    return g


def ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items``, made in a background thread up to ``depth`` items ahead of the consumer
    (what the generator raises is raised here, in order; stopping early stops it)."""
    import queue
    import threading

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer, raised there
            q.put(("error", e))

    worker = threading.Thread(target=run, name="ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def identity_argument(f: F) -> F:
    """IDENTITY, a name; with ``--id``, an identity's id (names and ids are never mixed up:
    no name may equal an id, and a command says which it was given)."""
    f = click.option(
        "--id", "by_id", is_flag=True, help="IDENTITY is an identity's id, not its name."
    )(f)
    return click.argument("identity")(f)


def find(g: GovernedGallery, identity: str, by_id: bool) -> Identity:
    """The identity IDENTITY names (``--id``: by id); an id given without ``--id`` is a
    usage error that says so."""
    if by_id:
        return g.get(identity, by="id")
    try:
        return g.get(identity, by="name")
    except NotFoundError:
        try:
            g.get(identity, by="id")
        except NotFoundError:
            raise NotFoundError("identity named", identity) from None
        raise click.UsageError(f"{identity!r} is an identity's id, not a name: add --id") from None


def expand_images(inputs: Sequence[Path]) -> Iterator[Path]:
    """Files as given; folders as the image files in them (recursively, sorted)."""
    for p in inputs:
        if p.is_dir():
            yield from sorted(
                q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield p


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


def gallery_path_str(path: Path | str | None) -> str:
    """The gallery's path or URL as shown to people: a database password never printed."""
    from facelens.urls import redact_credentials

    return redact_credentials(gallery_path(path))


def searching(pipe: Pipeline, gallery: GovernedGallery | None, model: str | None) -> Pipeline:
    """The pipeline to search ``gallery`` with (``searching_noticed``), the notice on stderr."""
    return searching_noticed(pipe, gallery, model)[0]


def searching_noticed(
    pipe: Pipeline, gallery: GovernedGallery | None, model: str | None
) -> tuple[Pipeline, str | None]:
    """The pipeline to search ``gallery`` with (``facelens.gallery.held.search_config``):
    ``pipe``, or, when the gallery holds no templates of the default recognizer, one for the
    recognizer it does hold, with a one-line notice on stderr (also returned). ``--model``
    named a recognizer the gallery has no templates of: ``NoTemplatesError`` (exit 5)."""
    from facelens.gallery.held import search_config

    if gallery is None:
        return pipe, None
    config, notice = search_config(pipe.config, gallery, explicit=model)
    if notice:
        output.warn(notice)
    return (pipe if config is pipe.config else Pipeline(config)), notice


def require_gallery(path: Path | str | None) -> GovernedGallery:
    g = open_gallery(path, create=False)
    if g is None:
        raise GalleryError(f"no gallery at {gallery_path_str(path)}")
    return g


def exit_code(e: BaseException) -> int:
    """The documented exit code of a facelens error."""
    if isinstance(e, EnrollmentError):
        return EXIT_NO_FACE
    if isinstance(e, InputError):
        return EXIT_INPUT
    if isinstance(e, ModelError):
        return EXIT_MODEL
    if isinstance(e, MissingDependencyError):
        return EXIT_MISSING
    if isinstance(e, PolicyError):
        return EXIT_POLICY
    if isinstance(e, GalleryError):
        return EXIT_GALLERY
    return EXIT_INTERNAL


def override_option(f: F) -> F:
    """``--override-face-check REASON``: add faces to an enrolled person although they do
    not match the person's templates (audited ``enroll_override`` with the reason)."""
    return click.option(
        "--override-face-check",
        "override",
        metavar="REASON",
        default=None,
        help="Add the faces to an enrolled person even though they do not match the person's "
        "templates at the strict threshold (refused otherwise, exit 6). Give the reason; it "
        "is kept in the audit trail.",
    )(f)


def consent_options(f: F) -> F:
    """``--consent PURPOSE``, ``--granted-by WHO``, ``--consent-expires DATE``."""
    f = click.option(
        "--consent-expires",
        metavar="DATE",
        default=None,
        help="When the consent lapses (ISO date); default: until withdrawn.",
    )(f)
    f = click.option(
        "--granted-by",
        metavar="WHO",
        default=None,
        help="Who granted consent (default: the person, NAME).",
    )(f)
    f = click.option(
        "--consent",
        "purpose",
        metavar="PURPOSE",
        default=None,
        help="The purpose the person consented to (required for a new identity).",
    )(f)
    return f


def consent_from(
    name: str, purpose: str | None, granted_by: str | None, expires: str | None
) -> Consent | None:
    """The consent record ``consent_options`` describe (None when no purpose is given)."""
    import getpass
    from datetime import UTC, datetime

    if purpose is None:
        if granted_by or expires:
            raise click.UsageError("--granted-by and --consent-expires need --consent PURPOSE")
        return None
    try:
        return Consent(
            purpose=purpose,
            granted_by=granted_by or name,
            granted_at=datetime.now(UTC).isoformat(),
            expires_at=expires,
            recorded_by=getpass.getuser(),
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--consent") from None
