"""thermal: radiometric frames -> screening readings (clear / refer), with safeguards.

``decode_thermal`` reads FLIR radiometric JPEGs, 16-bit raw frames with a linear calibration
and float arrays in degrees C. ``find_warm_faces`` and ``Registration`` say where the face is.
``ScreeningSession.screen`` gives a reading at the inner canthus, corrected against a
reference blackbody, or refuses with named reasons (see docs/thermal.md).
"""

from facelens.thermal.locate import Registration, WarmFaceConfig, find_warm_faces
from facelens.thermal.radiometric import (
    THERMAL_LIMITS,
    FlirParameters,
    LinearCalibration,
    ThermalFrame,
    decode_thermal,
    flir_raw_to_celsius,
    from_celsius,
    from_raw16,
)
from facelens.thermal.screen import (
    OUTCOMES,
    REFUSALS,
    Blackbody,
    Environment,
    ScreeningConfig,
    ScreeningResult,
    ScreeningSession,
)

__all__ = [
    "OUTCOMES",
    "REFUSALS",
    "THERMAL_LIMITS",
    "Blackbody",
    "Environment",
    "FlirParameters",
    "LinearCalibration",
    "Registration",
    "ScreeningConfig",
    "ScreeningResult",
    "ScreeningSession",
    "ThermalFrame",
    "WarmFaceConfig",
    "decode_thermal",
    "find_warm_faces",
    "flir_raw_to_celsius",
    "from_celsius",
    "from_raw16",
]
