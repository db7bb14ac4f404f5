"""archive: folders of the user's own photos (and videos) -> every face in them, indexed.

In: local paths. Out: per file its path, size, modification time and SHA-256; per face its
box, landmarks, quality and templates (one per model the pipeline makes), kept in the gallery's
store (SQLite or PostgreSQL) beside the enrolled people, sealed like them when the store has a
key. A second run redoes only new and changed files and forgets deleted ones; each batch of
files is one transaction, so a run killed at any moment loses at most the batch in flight.

The faces indexed here stay anonymous: they carry no name until a person is enrolled from
them with consent (``facelens.cluster`` groups them; naming a group is enrolment), and they
fall under the gallery's retention policy.

Example:
    >>> from facelens.gallery import SqliteStore
    >>> archive = Archive(SqliteStore(":memory:"), "default")
    >>> archive.summary()
    {'files': 0, 'faces': 0, 'failed': 0}
"""

from facelens.archive.index import FileResult, IndexConfig, Indexer, IndexSummary, analyze_file
from facelens.archive.scan import Candidate, scan
from facelens.archive.store import Archive, ArchiveFace

__all__ = [
    "Archive",
    "ArchiveFace",
    "Candidate",
    "FileResult",
    "IndexConfig",
    "IndexSummary",
    "Indexer",
    "analyze_file",
    "scan",
]
