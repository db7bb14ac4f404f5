"""``/v1/thermal/screen``: skin-temperature screening of one radiometric frame."""

import math
from typing import Annotated, Any

from fastapi import File, Form, UploadFile

from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import Gone, State, image_bytes, reserve, sandboxed, scope
from facelens.service.errors import HttpError

router = gate.router(tags=["thermal"])


def _box(v: str | None, what: str) -> tuple[float, float, float, float] | None:
    if not v:
        return None
    try:
        x1, y1, x2, y2 = (float(p) for p in v.split(","))
    except ValueError:
        raise HttpError(400, "bad_input", f"{what}: use x1,y1,x2,y2") from None
    if not all(math.isfinite(c) for c in (x1, y1, x2, y2)):
        raise HttpError(400, "bad_input", f"{what}: coordinates must be finite numbers")
    return (x1, y1, x2, y2)


@router.post("/v1/thermal/screen", response_model=S.ScreeningOut)
def thermal_screen(
    state: State,
    key: Annotated[ApiKey, scope("detect")],
    gone: Gone,
    frame: Annotated[
        UploadFile,
        File(description="FLIR radiometric JPEG, 16-bit PNG or TIFF (centi-kelvin), or .npy"),
    ],
    blackbody: Annotated[str | None, Form(description="x1,y1,x2,y2", max_length=200)] = None,
    blackbody_temp: Annotated[float | None, Form(ge=20, le=50)] = None,
    ambient: Annotated[float | None, Form(ge=-40, le=60)] = None,
    humidity: Annotated[float | None, Form(ge=0, le=100)] = None,
    region: Annotated[str | None, Form(description="x1,y1,x2,y2", max_length=200)] = None,
    refer_at: Annotated[float, Form(ge=35, le=42)] = 37.5,
) -> dict[str, Any]:
    """Screen the one person in the frame's screening region. Never linked to an
    identity; the outcome is only ``clear`` or ``refer`` (not a diagnosis)."""
    from facelens.thermal import Blackbody, Environment, ScreeningConfig, ScreeningSession
    from facelens.thermal.radiometric import decode_thermal_isolated, thermal_cost

    data = image_bytes(state, frame, None, "frame")
    name = (frame.filename or "frame").lower()
    suffix = next(
        (s for s in (".jpg", ".jpeg", ".npy", ".png", ".tif", ".tiff") if name.endswith(s)),
        ".jpg",
    )
    bb_box = _box(blackbody, "blackbody")
    region_box = _box(region, "region")
    # decoded from memory in a decode process, within the thermal size limits, holding the
    # most a frame within them may take of the worker's memory budget
    with reserve(state, thermal_cost()):
        thermal = sandboxed(
            lambda: decode_thermal_isolated(
                state.sandbox, data, suffix=suffix, name="frame", cancelled=gone
            )
        )
    bb = Blackbody(bb_box, blackbody_temp) if bb_box and blackbody_temp is not None else None
    session = ScreeningSession(ScreeningConfig(refer_at_c=refer_at), bb)
    result = session.screen(
        thermal,
        Environment(ambient, None if humidity is None else humidity / 100),
        region=region_box,
    )
    return result.to_dict()
