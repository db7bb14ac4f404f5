"""``facelens thermal decode`` and ``facelens thermal screen``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from facelens import environment as settings
from facelens.cli import output
from facelens.cli.common import INPUT_PATH
from facelens.errors import InputError, PolicyError

if TYPE_CHECKING:
    from facelens.faces import Faces


def _box(value: str | None, what: str) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("use X1,Y1,X2,Y2 in thermal pixels", param_hint=what) from None
    if x2 <= x1 or y2 <= y1:
        raise click.BadParameter("needs X2 > X1 and Y2 > Y1", param_hint=what)
    return (x1, y1, x2, y2)


def _flir_params(emissivity: float | None, distance: float | None) -> Any:
    from facelens.thermal import FlirParameters

    return FlirParameters(emissivity=emissivity, distance_m=distance)


@click.group("thermal")
def thermal_group() -> None:
    """Radiometric thermal frames: decode, and screen skin temperature (clear / refer)."""


@thermal_group.command("decode")
@click.argument("file", type=INPUT_PATH)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the frame as float32 degrees C (.npy).",
)
@click.option(
    "--emissivity",
    type=click.FloatRange(0.01, 1.0),
    default=None,
    help="Object emissivity (FLIR files: default the file's).",
)
@click.option(
    "--distance",
    type=click.FloatRange(0, 1000),
    default=None,
    help="Object distance in metres (FLIR files: default the file's).",
)
@click.option("--json", "as_json", is_flag=True)
def thermal_decode(
    file: Path, out: Path, emissivity: float | None, distance: float | None, as_json: bool
) -> None:
    """Write FILE (FLIR radiometric JPEG, 16-bit PNG/TIFF, .npy) as degrees C."""
    from facelens.thermal import decode_thermal

    frame = decode_thermal(file, params=_flir_params(emissivity, distance))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, frame.celsius.astype(np.float32))
    doc = {
        "file": str(file),
        "out": str(out),
        "shape": list(frame.shape),
        "min_c": round(float(frame.celsius.min()), 2),
        "max_c": round(float(frame.celsius.max()), 2),
        **{k: v for k, v in frame.metadata.items() if isinstance(v, int | float | str)},
    }
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(" ".join(f"{k}={v}" for k, v in doc.items()))


def _frames(files: tuple[Path, ...], params: Any) -> Any:
    """Each file's frame; a 3-D .npy stack is a stream of frames."""
    from facelens.thermal import decode_thermal, from_celsius

    for f in files:
        if f.suffix.lower() == ".npy":
            try:
                arr = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise InputError(str(f), f"not a NumPy array file ({e})") from None
            if arr.ndim == 3:
                for i, frame in enumerate(arr):
                    yield from_celsius(frame, f"{f}[{i}]")
                continue
        yield decode_thermal(f, params=params)


@thermal_group.command("screen")
@click.argument("files", nargs=-1, required=True, type=INPUT_PATH)
@click.option(
    "--blackbody",
    required=False,
    metavar="X1,Y1,X2,Y2",
    help="The reference blackbody's region in thermal pixels (readings are refused without one).",
)
@click.option(
    "--blackbody-temp",
    type=float,
    default=None,
    metavar="C",
    help="The blackbody's set temperature.",
)
@click.option(
    "--ambient",
    type=float,
    default=None,
    metavar="C",
    help="Room temperature reported by the operator (required for a reading).",
)
@click.option(
    "--humidity",
    type=click.FloatRange(0, 100),
    default=None,
    metavar="PERCENT",
    help="Relative humidity reported by the operator (required for a reading).",
)
@click.option(
    "--region",
    default=None,
    metavar="X1,Y1,X2,Y2",
    help="The screening position: one person must stand in it.",
)
@click.option(
    "--refer-at",
    type=float,
    default=37.5,
    show_default=True,
    metavar="C",
    help="Estimated temperature at or above which the person is referred.",
)
@click.option(
    "--visible",
    type=click.Path(path_type=Path),
    default=None,
    help="A visible photo from a camera registered to the thermal one (faces and "
    "eye landmarks are found there).",
)
@click.option(
    "--registration",
    type=click.Path(path_type=Path),
    default=None,
    help='JSON {"visible": [[x, y], ...], "thermal": [[x, y], ...]}: point pairs.',
)
@click.option(
    "--emissivity",
    type=click.FloatRange(0.01, 1.0),
    default=0.98,
    show_default=True,
    help="Skin emissivity (FLIR files).",
)
@click.option(
    "--events",
    "sinks",
    multiple=True,
    metavar="SINK",
    help="Also send each result as a 'screening' event (jsonl:, webhook:, mqtt://).",
)
@click.option("--json", "as_json", is_flag=True)
def thermal_screen(
    files: tuple[Path, ...],
    blackbody: str | None,
    blackbody_temp: float | None,
    ambient: float | None,
    humidity: float | None,
    region: str | None,
    refer_at: float,
    visible: Path | None,
    registration: Path | None,
    emissivity: float,
    sinks: tuple[str, ...],
    as_json: bool,
) -> None:
    """Screen the person in each frame of FILES: ``clear`` or ``refer`` (for a secondary,
    clinical measurement), or a refusal with its reasons. Not a diagnosis.

    Readings need a blackbody in view (--blackbody, --blackbody-temp) and the room's
    temperature and humidity (--ambient, --humidity); the screening region must hold one
    face. Results carry no identity.
    """
    from facelens.events import Event, EventBus, parse_sink
    from facelens.thermal import Blackbody, Environment, ScreeningConfig, ScreeningSession

    bb_box = _box(blackbody, "--blackbody")
    bb = None
    if bb_box is not None:
        if blackbody_temp is None:
            raise click.UsageError("--blackbody needs --blackbody-temp")
        bb = Blackbody(box=bb_box, set_c=blackbody_temp)
    env = Environment(ambient_c=ambient, humidity=None if humidity is None else humidity / 100)
    session = ScreeningSession(ScreeningConfig(refer_at_c=refer_at), bb)
    faces, reg_doc = _visible_faces(visible, registration)
    secret = settings.webhook_secret()
    bus = EventBus([parse_sink(s, secret) for s in sinks])
    results = []
    try:
        for n, frame in enumerate(_frames(files, _flir_params(emissivity, None))):
            r = session.screen(frame, env, faces, _box(region, "--region"))
            doc = {"frame": frame.source, **r.to_dict(), **reg_doc}
            results.append(doc)
            if sinks:
                bus.emit(
                    Event(
                        type="screening",
                        time=datetime.now(UTC).isoformat(timespec="milliseconds"),
                        frame=n,
                        track_id=None,
                        identity=r.identity,
                        source=frame.source,
                        data=r.to_dict(),
                    )
                )
    finally:
        bus.close()
    _show(results, as_json)
    refused = sum(1 for d in results if not d["outcome"])
    if refused:
        # a refusal is the safeguards working, not a crash: scripts see it as exit code 6
        raise PolicyError(f"{refused} of {len(results)} frame(s) refused a reading")


def _visible_faces(
    visible: Path | None, registration: Path | None
) -> tuple[Faces | None, dict[str, Any]]:
    """Faces found in a registered visible camera's photo, mapped to thermal pixels."""
    if visible is None and registration is None:
        return None, {}
    if visible is None or registration is None:
        raise click.UsageError("--visible and --registration go together")
    from facelens.cli.common import make_pipeline
    from facelens.thermal import Registration

    try:
        pts = json.loads(registration.read_text())
        reg = Registration.from_points(pts["visible"], pts["thermal"])
    except (OSError, ValueError, KeyError) as e:
        raise InputError(str(registration), f"not a registration file ({e})") from None
    pipe = make_pipeline()
    image, _ = pipe.decode(visible)
    faces = reg.map_faces(pipe.align(image, pipe.detect_single(image)))
    doc = {"registration_rms_px": round(reg.rms_error_px, 3), "registration_pairs": reg.pairs}
    return faces, doc


def _show(results: list[dict[str, Any]], as_json: bool) -> None:
    """Each frame's outcome, as JSON or one line per frame (with the reading's notes)."""
    if as_json:
        output.emit_json(results)
        return
    for d in results:
        if d["outcome"]:
            output.echo(
                f"{d['frame']}: {d['outcome'].upper()}  {d['estimate_c']} C "
                f"(+- {d['uncertainty_c']}, {d['site']})"
            )
            for note in d["notes"]:
                output.echo(f"  note: {note}")
        else:
            output.echo(f"{d['frame']}: REFUSED  " + "; ".join(d["refused_why"]))
