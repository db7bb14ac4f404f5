"""gallery: identities, samples and consent -> storage (SQLite by default).

``Gallery.open(path)`` opens a named gallery in an SQLite file. Enrolment needs consent and is
atomic; search is exact and vectorised; ``export_gallery`` / ``import_gallery`` move a gallery
as a portable file that never contains photos.
"""

from facelens.gallery.gallery import EnrollResult, Gallery
from facelens.gallery.portable import export_gallery, import_gallery
from facelens.gallery.records import Consent, DeletionReceipt, Identity, NewSample, Sample
from facelens.gallery.sqlite import SCHEMA_VERSION, SqliteStore

__all__ = [
    "SCHEMA_VERSION",
    "Consent",
    "DeletionReceipt",
    "EnrollResult",
    "Gallery",
    "Identity",
    "NewSample",
    "Sample",
    "SqliteStore",
    "export_gallery",
    "import_gallery",
]
