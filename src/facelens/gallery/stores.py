"""Opening a store by its location: an SQLite file path, or a PostgreSQL URL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from facelens.gallery.ann import AnnConfig
from facelens.gallery.contract import GalleryStore
from facelens.gallery.protect import TemplateKey

__all__ = ["is_postgres_url", "open_store"]


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(
    location: str | Path,
    clock: Callable[[], datetime] | None = None,
    ann: AnnConfig | None = None,
    key: TemplateKey | None = None,
    read_replica: str | None = None,
) -> GalleryStore:
    """``postgresql://user@host/db`` (PostgreSQL + pgvector) or a path (SQLite, the default);
    ``key`` opens (or, for a store without templates yet, turns on) sealed templates;
    ``read_replica`` (PostgreSQL only): a hot standby that searches read from.

    Example:
        >>> import tempfile, os
        >>> open_store(os.path.join(tempfile.mkdtemp(), "g.db")).galleries()
        []
    """
    if is_postgres_url(location):
        from facelens.gallery.postgres import PostgresStore

        return PostgresStore(
            str(location), clock=clock, ann=ann, key=key, read_replica=read_replica
        )
    if read_replica:
        from facelens.errors import InputError

        raise InputError("read replica", "a read replica needs a postgresql:// gallery")
    from facelens.gallery.sqlite import SqliteStore

    return SqliteStore(location, clock=clock, ann=ann, key=key)
