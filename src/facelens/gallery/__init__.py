"""gallery: identities, samples and consent -> storage (SQLite by default, or PostgreSQL).

Both stores keep one contract (``GalleryStore``). Enrolment is atomic; search is exact for
small galleries and approximate (HNSW, verified against the store) for large ones; the
portable file (``facelens.gallery.portable``) moves a gallery between stores and never
contains photos. ``facelens.gallery.enrol`` makes the samples of photos.

People reach a gallery only through the governed gallery, ``facelens.Gallery``
(``facelens.govern.GovernedGallery``: consent, stop control, integrity checks, audit); the
stored gallery under it (``facelens.gallery.gallery.RawGallery``) is internal.
"""

from facelens.gallery.ann import AnnConfig
from facelens.gallery.contract import GalleryStore
from facelens.gallery.gallery import EnrollResult
from facelens.gallery.records import Consent, DeletionReceipt, Identity, NewSample, Sample
from facelens.gallery.sqlite import SCHEMA_VERSION, SqliteStore
from facelens.gallery.stores import open_store

__all__ = [
    "SCHEMA_VERSION",
    "AnnConfig",
    "Consent",
    "DeletionReceipt",
    "EnrollResult",
    "GalleryStore",
    "Identity",
    "NewSample",
    "Sample",
    "SqliteStore",
    "open_store",
]
