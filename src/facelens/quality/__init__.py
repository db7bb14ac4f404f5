"""quality: faces + aligned chips -> quality measures and named reasons to refuse enrolment.

``measure`` gives, per face, the inter-eye distance in pixels, sharpness, a pose estimate from
the landmarks and exposure. ``QualityGate`` turns them into named reasons (``too_small``,
``blurred``, ``profile``, ``head_pitched``, ``too_dark``, ``too_bright``); its thresholds and
where they come from are documented in ``docs/quality.md``.
"""

from facelens.quality.gate import REASONS, QualityGate
from facelens.quality.measures import QualityScores, measure

__all__ = ["REASONS", "QualityGate", "QualityScores", "measure"]
