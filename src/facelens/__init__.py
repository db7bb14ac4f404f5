"""facelens: privacy-first face recognition.

A pipeline of stages, one package each: ``decode`` -> ``detect`` -> ``align`` -> ``quality`` ->
``embed`` -> ``match``, with the enrolled people in ``gallery``. Importing facelens loads no
model and imports no native library; models load on first use.

Example:
    >>> import facelens
    >>> sorted(facelens.__all__)[:3]
    ['AlignConfig', 'Analysis', 'Candidate']
"""

from facelens.align import AlignConfig
from facelens.api import default_pipeline, detect, embed, identify, load_image, verify
from facelens.decode import DecodeConfig
from facelens.detect import DetectConfig
from facelens.embed import EmbedConfig, Embeddings
from facelens.errors import (
    ConflictError,
    ConsentError,
    EnrollmentError,
    FacelensError,
    GalleryError,
    ImageTooLargeError,
    InputError,
    MissingDependencyError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    PolicyError,
)
from facelens.faces import Faces
from facelens.gallery import Consent, Identity
from facelens.govern.governed import GovernedGallery as Gallery
from facelens.match import Candidate, Identification, Verification
from facelens.models import ModelStore
from facelens.pipeline import Analysis, Pipeline, PipelineConfig
from facelens.quality import QualityGate, QualityScores

__version__ = "0.1.0"

__all__ = [
    "AlignConfig",
    "Analysis",
    "Candidate",
    "ConflictError",
    "Consent",
    "ConsentError",
    "DecodeConfig",
    "DetectConfig",
    "EmbedConfig",
    "Embeddings",
    "EnrollmentError",
    "FacelensError",
    "Faces",
    "Gallery",
    "GalleryError",
    "Identification",
    "Identity",
    "ImageTooLargeError",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "ModelMismatchError",
    "ModelStore",
    "NotFoundError",
    "Pipeline",
    "PipelineConfig",
    "PolicyError",
    "QualityGate",
    "QualityScores",
    "Verification",
    "__version__",
    "default_pipeline",
    "detect",
    "embed",
    "identify",
    "load_image",
    "verify",
]
