"""Reading people from a gallery store: identities with their counts, models and consent
records (a chunk of identities per query, not a query per identity), samples in the model's
own space, and the names' look-alike keys (``facelens.text.name_key``) that keep two names of
a gallery from looking the same. ``PeopleMixin`` is this part of ``SqlStore``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import ConflictError, NotFoundError
from facelens.gallery.codec import TemplateCodec
from facelens.gallery.contract import Db
from facelens.gallery.records import Consent, Identity, Sample
from facelens.text import name_key

__all__ = ["PeopleMixin", "name_conflict"]


class PeopleMixin:
    """Identities, consents and samples read from the store (see the module)."""

    codec: TemplateCodec
    _EMB_SQL: str

    if TYPE_CHECKING:  # what the store supplies

        def _read(self) -> AbstractContextManager[Db]: ...

        def transaction(self, bump: bool = True) -> AbstractContextManager[Db]: ...

        def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def _emb_value(self, stored: Any, dim: int) -> NDArray[np.float32]: ...

    def _identity(self, db: Db, row: Sequence[Any]) -> Identity:
        return self._identities(db, [row])[0]

    def _identities(self, db: Db, rows: Sequence[Sequence[Any]]) -> list[Identity]:
        """Identities from their rows, with their counts and consents read a chunk of
        identities at a time (two queries per chunk, not per identity: every round trip
        counts on a server store)."""
        out: list[Identity] = []
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            ids = [r[0] for r in chunk]
            marks = ",".join("?" * len(ids))
            per_model: dict[str, dict[str, int]] = {i: {} for i in ids}
            images: dict[str, int] = {}
            chips: dict[str, int] = {}
            for kind, iid, m, n in db.execute(
                "SELECT 'm', identity_id, model, count(*) FROM samples "
                f"WHERE identity_id IN ({marks}) GROUP BY identity_id, model "
                "UNION ALL SELECT 'i', identity_id, '', count(DISTINCT image_sha256) FROM samples "
                f"WHERE identity_id IN ({marks}) GROUP BY identity_id "
                "UNION ALL SELECT 'c', identity_id, '', count(*) FROM chips "
                f"WHERE identity_id IN ({marks}) GROUP BY identity_id",
                ids * 3,
            ).fetchall():
                if kind == "m":
                    per_model[iid][str(m)] = int(n)
                elif kind == "i":
                    images[iid] = int(n)
                else:
                    chips[iid] = int(n)
            consents: dict[str, list[Consent]] = {i: [] for i in ids}
            for r in db.execute(
                "SELECT identity_id, id, purpose, granted_by, granted_at, expires_at, recorded_by "
                f"FROM consents WHERE identity_id IN ({marks}) ORDER BY id",
                ids,
            ).fetchall():
                consents[r[0]].append(
                    Consent(
                        id=r[1],
                        purpose=r[2],
                        granted_by=r[3],
                        granted_at=r[4],
                        expires_at=r[5],
                        recorded_by=r[6],
                    )
                )
            out.extend(
                Identity(
                    id=row[0],
                    gallery=row[1],
                    name=row[2],
                    metadata=json.loads(row[3]),
                    created_at=row[4],
                    updated_at=row[5],
                    sample_count=int(images.get(row[0], 0)),
                    consents=tuple(consents[row[0]]),
                    models=dict(sorted(per_model[row[0]].items())),
                    chips=int(chips.get(row[0], 0)),
                )
                for row in chunk
            )
        return out

    _IDENTITY_COLS = "id, gallery, name, metadata, created_at, updated_at"

    def _get(self, db: Db, gallery: str, identity_id: str) -> Identity:
        row = db.execute(
            f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ? AND id = ?",
            (gallery, identity_id),
        ).fetchone()
        if row is None:
            raise NotFoundError("identity", identity_id)
        return self._identity(db, row)

    def get_identity(self, gallery: str, identity_id: str) -> Identity:
        """By id (names and ids are never mixed up); ``NotFoundError`` otherwise."""
        with self._read() as db:
            return self._get(db, gallery, identity_id)

    def find_identity(self, gallery: str, name: str) -> Identity | None:
        """By name (as stored), or None."""
        with self._read() as db:
            row = db.execute(
                f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ? AND name = ?",
                (gallery, name),
            ).fetchone()
            return None if row is None else self._identity(db, row)

    def names_of(self, identity_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Identity id -> (name, stored gallery name) of those of ``identity_ids`` enrolled
        now (a chunk of ids per query)."""
        out: dict[str, tuple[str, str]] = {}
        for start in range(0, len(identity_ids), 500):
            part = list(identity_ids[start : start + 500])
            marks = ",".join("?" * len(part))
            rows = self.fetch(
                f"SELECT id, name, gallery FROM identities WHERE id IN ({marks})", part
            )
            out |= {str(r[0]): (str(r[1]), str(r[2])) for r in rows}
        return out

    def _fill_name_keys(self) -> None:
        """Give every identity stored before names had keys its key (once, at open)."""
        rows = self.fetch("SELECT id, name FROM identities WHERE name_key IS NULL")
        if rows:
            with self.transaction(bump=False) as db:
                for iid, name in rows:
                    db.execute(
                        "UPDATE identities SET name_key = ? WHERE id = ?", (name_key(name), iid)
                    )

    # the identity whose name or id a name would clash with (``?``: except this id, the name,
    # the gallery, the name again, its key)
    _CLASH = (
        "SELECT id, name FROM identities WHERE id <> ? AND (id = ? OR "
        "(gallery = ? AND (name = ? OR name_key = ?))) LIMIT 1"
    )

    def _name_clash(self, db: Db, gallery: str, name: str, except_id: str = "") -> None:
        """``ConflictError`` when ``name`` is taken in ``gallery``, looks like a name there
        (``facelens.text.name_key``), or is an identity's id."""
        row = db.execute(self._CLASH, (except_id, name, gallery, name, name_key(name))).fetchone()
        if row is not None:
            raise name_conflict(name, gallery, row[0], row[1])

    def list_identities(
        self, gallery: str, after: str | None = None, limit: int | None = None
    ) -> list[Identity]:
        """A gallery's identities by name; a page of at most ``limit`` of them with names
        after ``after`` when given."""
        sql = f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ?"
        params: list[Any] = [gallery]
        if after is not None:
            sql += " AND name > ?"
            params.append(after)
        sql += " ORDER BY name"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as db:
            return self._identities(db, db.execute(sql, params).fetchall())

    def samples(self, identity_id: str) -> list[Sample]:
        """An identity's samples, templates in the model's own space (the gallery's
        transform undone)."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT s.id, s.identity_id, s.model, s.dim, {self._EMB_SQL}, s.quality, "
                "s.image_sha256, s.box, s.created_at, i.gallery FROM samples s JOIN identities i "
                "ON i.id = s.identity_id WHERE s.identity_id = ? ORDER BY s.created_at, s.id",
                (identity_id,),
            ).fetchall()
        return [
            Sample(
                id=r[0],
                identity_id=r[1],
                model=r[2],
                embedding=self.codec.inverse(r[9], self._emb_value(r[4], r[3]))[0],
                quality=json.loads(r[5]),
                image_sha256=r[6],
                box=tuple(json.loads(r[7])) if r[7] else None,
                created_at=r[8],
            )
            for r in rows
        ]


def name_conflict(name: str, gallery: str, other_id: str, other_name: str) -> ConflictError:
    """The error for a name that clashes with identity ``other_id`` (named ``other_name``)."""
    if other_id == name:
        return ConflictError(f"{name!r} is an identity's id: a name may never equal an id")
    if other_name == name:
        return ConflictError(f"an identity named {name!r} already exists in gallery {gallery!r}")
    return ConflictError(
        f"{name!r} looks the same as {other_name!r} ({other_id}), already in gallery "
        f"{gallery!r}: names in a gallery must look different (Unicode TS #39 confusables, "
        "case and spacing ignored)"
    )
