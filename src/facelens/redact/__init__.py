"""redact: image / video + Faces -> anonymised image / video.

Styles: ``blur``, ``pixelate``, ``box``. Modes: ``all`` faces, or every face ``except``
enrolled people whose consent is valid (the "all" mode never computes an embedding).
Videos are analysed first (detection and tracking over the whole clip, gaps filled between
detections), then rendered, so a face the detector misses for a frame or two stays covered
and an enrolled person is left visible from their first frame; resolution, frame count and
rate are kept and audio is copied (ffmpeg).
"""

from facelens.redact.image import REDACT_STYLES, RedactConfig, apply_redaction, redact_image
from facelens.redact.video import RedactReport, redact_video

__all__ = [
    "REDACT_STYLES",
    "RedactConfig",
    "RedactReport",
    "apply_redaction",
    "redact_image",
    "redact_video",
]
