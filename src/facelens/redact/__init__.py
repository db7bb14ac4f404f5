"""redact: image / video + Faces -> anonymised image / video.

Styles: ``blur``, ``pixelate``, ``box``. Modes: ``all`` faces, or every face ``except``
enrolled people whose consent is valid (the "all" mode never computes an embedding).
Videos are analysed first (detection, cuts and tracking over the whole clip, gaps filled
between detections), then rendered, so a face the detector misses for a frame or two stays
covered. In the ``except`` mode a face stays visible only on the frames where its own face
confirms its track's enrolled identity (``facelens.stream.Follower``): every uncertain frame
is covered. Resolution, frame count and rate are kept and audio is copied (ffmpeg).
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
