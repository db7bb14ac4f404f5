"""gallery: identities, samples and consent -> storage (SQLite by default, or PostgreSQL).

``Gallery.open(location)`` opens a named gallery in an SQLite file or a ``postgresql://``
database; both stores keep one contract (``GalleryStore``). Enrolment needs consent and is
atomic; search is exact for small galleries and approximate (HNSW, verified against the store)
for large ones; ``export_gallery`` / ``import_gallery`` move a gallery between stores as a
portable file that never contains photos.
"""

from facelens.gallery.ann import AnnConfig
from facelens.gallery.gallery import EnrollResult, Gallery
from facelens.gallery.portable import export_gallery, import_gallery
from facelens.gallery.records import Consent, DeletionReceipt, Identity, NewSample, Sample
from facelens.gallery.sql import GalleryStore
from facelens.gallery.sqlite import SCHEMA_VERSION, SqliteStore
from facelens.gallery.stores import open_store

__all__ = [
    "SCHEMA_VERSION",
    "AnnConfig",
    "Consent",
    "DeletionReceipt",
    "EnrollResult",
    "Gallery",
    "GalleryStore",
    "Identity",
    "NewSample",
    "Sample",
    "SqliteStore",
    "export_gallery",
    "import_gallery",
    "open_store",
]
