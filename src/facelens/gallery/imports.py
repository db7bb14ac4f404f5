"""Importing identities: one planner for every store.

``plan_import`` decides, inside the import's transaction, what goes in: every identity whose
id, name (or a look-alike of it, ``facelens.text.name_key``) or sample ids are already in
the store, or already earlier in the same batch, is a conflict - an error that imports
nothing, or skipped (``on_conflict="skip"``). Names are checked as every name is
(``facelens.text.check_name``). A store then writes the plan its own bulk way
(``SqlStore._write_import``: INSERTs for SQLite, COPY for PostgreSQL), so the conflict rules
exist once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from facelens.errors import ConflictError
from facelens.gallery.records import Identity, Sample
from facelens.text import check_name, name_key

__all__ = ["ImportRow", "plan_import"]

CHUNK = 500  # values per IN (...) list: well within every store's limit on parameters


@dataclass(frozen=True)
class ImportRow:
    """One identity the plan imports: its record (name as stored), name key and samples."""

    identity: Identity
    key: str
    samples: list[Sample]


def _rows(db: Any, sql: str, values: Sequence[str], before: Sequence[Any] = ()) -> Iterator[Any]:
    """Rows of ``sql`` (``{marks}``: an IN list) for ``values``, a chunk at a time."""
    for start in range(0, len(values), CHUNK):
        chunk = list(values[start : start + CHUNK])
        marks = ",".join("?" * len(chunk))
        yield from db.execute(sql.format(marks=marks), [*before, *chunk]).fetchall()


def plan_import(
    db: Any,
    gallery: str,
    items: Sequence[tuple[Identity, list[Sample]]],
    on_conflict: str = "error",
) -> tuple[list[ImportRow], int]:
    """(the identities to write, how many were skipped) for importing ``items`` into
    ``gallery``; ``ConflictError`` naming the first conflict when ``on_conflict`` is
    ``"error"`` (then nothing may be written)."""
    if on_conflict not in ("error", "skip"):
        raise ValueError(f"on_conflict must be 'error' or 'skip', got {on_conflict!r}")
    named = [
        (replace(ident, name=check_name(ident.name, f"imported identity {ident.id}")), samples)
        for ident, samples in items
    ]
    keys = [name_key(ident.name) for ident, _ in named]
    ids = [ident.id for ident, _ in named]
    names = [ident.name for ident, _ in named]
    # what the store holds already: ids anywhere (a name may not equal one either), this
    # gallery's names and their keys, sample ids
    held_ids = {r[0]: (r[1], r[2]) for r in _rows(db, _IDS, [*ids, *names])}
    held_keys: dict[str, tuple[str, str]] = {}
    for column, values in (("name", names), ("name_key", keys)):
        sql = f"SELECT id, name FROM identities WHERE gallery = ? AND {column} IN ({{marks}})"
        for iid, name in _rows(db, sql, values, (gallery,)):
            held_keys.setdefault(name_key(name), (iid, name))
    sample_ids = [s.id for _, samples in named for s in samples]
    taken = {r[0] for r in _rows(db, "SELECT id FROM samples WHERE id IN ({marks})", sample_ids)}
    chosen: list[ImportRow] = []
    skipped = 0
    batch_ids: dict[str, str] = {}  # id -> name, of the identities planned so far
    for (ident, samples), key in zip(named, keys, strict=True):
        why = _conflict(ident, key, samples, held_ids, held_keys, taken, batch_ids, gallery)
        if why is not None:
            if on_conflict == "skip":
                skipped += 1
                continue
            raise ConflictError(f"{why}; nothing imported")
        batch_ids[ident.id] = ident.name
        held_keys[key] = (ident.id, ident.name)
        taken.update(s.id for s in samples)
        chosen.append(ImportRow(ident, key, samples))
    return chosen, skipped


_IDS = "SELECT id, gallery, name FROM identities WHERE id IN ({marks})"


def _conflict(
    ident: Identity,
    key: str,
    samples: Sequence[Sample],
    held_ids: dict[str, tuple[str, str]],
    held_keys: dict[str, tuple[str, str]],
    taken: set[str],
    batch_ids: dict[str, str],
    gallery: str,
) -> str | None:
    """Why ``ident`` cannot be imported, or None."""
    who = f"identity {ident.name!r} ({ident.id})"
    if ident.id in held_ids:
        other_gallery, other_name = held_ids[ident.id]
        return f"{who} already exists as {other_name!r} in gallery {other_gallery!r}"
    if ident.id in batch_ids:
        return f"{who} is in the file twice"
    if ident.name in held_ids or ident.name in batch_ids:
        return f"{who}: its name is an identity's id"
    if key in held_keys:
        other_id, other_name = held_keys[key]
        how = "already exists" if other_name == ident.name else f"looks the same as {other_name!r}"
        return f"{who} {how} ({other_id}) in gallery {gallery!r}"
    used = [s.id for s in samples if s.id in taken]
    if used:
        return f"sample {used[0]} of {ident.name!r} is already stored"
    return None
