"""Portable gallery files: identities, consent records and samples, never source photos.

Format (JSON, UTF-8)::

    {"format": "facelens-gallery", "version": 1, "exported_at": "...", "gallery": "default",
     "identities": [{"id", "name", "metadata", "created_at", "updated_at",
                     "consents": [{"purpose", "granted_by", "granted_at", "expires_at",
                                   "recorded_by"}],
                     "samples": [{"id", "model", "dim", "embedding": "<base64 float32 LE>",
                                  "quality": {...}, "image_sha256", "box", "created_at"}],
                     "chips": [{"image_sha256", "png": "<base64 PNG>"}]}]}

``chips`` (the aligned face chips a gallery keeps to re-template, ``Gallery.configure``) is
written only when asked (``export_gallery(..., chips=True)``, ``facelens gallery export
--with-chips``): they are face images. Import keeps them only in a gallery set to keep chips.

Import validates the whole file before writing anything, then writes it in one transaction.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from facelens.errors import GalleryFormatError, InputError
from facelens.files import atomic_write
from facelens.gallery.gallery import RawGallery
from facelens.gallery.records import Consent, Identity, Sample, iso

__all__ = ["FORMAT", "VERSION", "export_gallery", "import_gallery"]

FORMAT = "facelens-gallery"
VERSION = 1


def export_gallery(gallery: RawGallery, path: str | Path, chips: bool = False) -> int:
    """Write every identity of ``gallery`` to ``path`` (atomically). Returns how many.

    ``chips``: also write the aligned face chips the gallery kept (face images: only when
    the receiving side needs them to make templates of another model)."""
    out = []
    for ident in gallery.identities():
        samples = gallery.store.samples(ident.id)
        kept = (
            [
                {"image_sha256": sha, "png": base64.b64encode(data).decode()}
                for sha, data in gallery.store.chips(ident.id)
            ]
            if chips
            else []
        )
        out.append(
            {
                "id": ident.id,
                "name": ident.name,
                "metadata": ident.metadata,
                "created_at": ident.created_at,
                "updated_at": ident.updated_at,
                "consents": [c.to_dict() for c in ident.consents],
                "samples": [
                    {
                        "id": s.id,
                        "model": s.model,
                        "dim": int(s.embedding.size),
                        "embedding": base64.b64encode(s.embedding.astype("<f4").tobytes()).decode(),
                        "quality": s.quality,
                        "image_sha256": s.image_sha256,
                        "box": list(s.box) if s.box else None,
                        "created_at": s.created_at,
                    }
                    for s in samples
                ],
                **({"chips": kept} if kept else {}),
            }
        )
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": iso(gallery.now()),
        "gallery": gallery.name,
        "identities": out,
    }
    atomic_write(path, json.dumps(doc, indent=1))
    return len(out)


def _need(d: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in d or not isinstance(d[key], kind):
        raise GalleryFormatError(f"{where}: field {key!r} missing or not a {kind.__name__}")
    return d[key]


def _parse_chips(d: dict[str, Any], where: str) -> list[tuple[str, bytes]]:
    out = []
    for m, c in enumerate(d.get("chips") or []):
        cw = f"{where}, chip #{m + 1}"
        if not isinstance(c, dict):
            raise GalleryFormatError(f"{cw} is not an object")
        try:
            data = base64.b64decode(_need(c, "png", str, cw), validate=True)
        except ValueError as e:
            raise GalleryFormatError(f"{cw}: not base64 ({e})") from None
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise GalleryFormatError(f"{cw}: not a PNG image")
        out.append((_need(c, "image_sha256", str, cw), data))
    return out


def _parse(
    doc: Any, source: str
) -> tuple[list[tuple[Identity, list[Sample]]], dict[str, list[tuple[str, bytes]]]]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GalleryFormatError(f"{source} is not a facelens gallery export")
    if doc.get("version") != VERSION:
        raise GalleryFormatError(
            f"{source} is format version {doc.get('version')}; this facelens reads {VERSION}"
        )
    items = []
    chips: dict[str, list[tuple[str, bytes]]] = {}
    for n, d in enumerate(_need(doc, "identities", list, source)):
        where = f"{source}: identity #{n + 1}"
        if not isinstance(d, dict):
            raise GalleryFormatError(f"{where} is not an object")
        try:
            consents = tuple(
                Consent(
                    **{k: c.get(k) for k in ("purpose", "granted_by", "granted_at", "expires_at")},
                    recorded_by=c.get("recorded_by") or "",
                )
                for c in _need(d, "consents", list, where)
            )
        except (TypeError, ValueError, AttributeError) as e:
            raise GalleryFormatError(f"{where}: bad consent record ({e})") from None
        ident = Identity(
            id=_need(d, "id", str, where),
            gallery="",
            name=_need(d, "name", str, where),
            metadata=_need(d, "metadata", dict, where),
            created_at=_need(d, "created_at", str, where),
            updated_at=_need(d, "updated_at", str, where),
            consents=consents,
        )
        samples = []
        for m, s in enumerate(_need(d, "samples", list, where)):
            sw = f"{where}, sample #{m + 1}"
            dim = _need(s, "dim", int, sw)
            try:
                vec = np.frombuffer(
                    base64.b64decode(_need(s, "embedding", str, sw), validate=True), "<f4"
                ).astype(np.float32)
            except ValueError as e:
                raise GalleryFormatError(f"{sw}: embedding is not base64 float32 ({e})") from None
            if (
                vec.size != dim
                or not np.all(np.isfinite(vec))
                or abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3
            ):
                raise GalleryFormatError(f"{sw}: embedding is not a {dim}-d unit vector")
            box = s.get("box")
            samples.append(
                Sample(
                    id=_need(s, "id", str, sw),
                    identity_id=ident.id,
                    model=_need(s, "model", str, sw),
                    embedding=vec,
                    quality=_need(s, "quality", dict, sw),
                    image_sha256=_need(s, "image_sha256", str, sw),
                    box=tuple(box) if box else None,
                    created_at=_need(s, "created_at", str, sw),
                )
            )
        items.append((ident, samples))
        chips[ident.id] = _parse_chips(d, where)
    return items, chips


def import_gallery(
    gallery: RawGallery, path: str | Path, on_conflict: str = "error"
) -> tuple[int, int]:
    """Import an export file into ``gallery``: all or nothing. Returns (imported, skipped)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GalleryFormatError(f"{path} is not a facelens gallery export ({e})") from None
    items, chips = _parse(doc, str(path))
    return gallery.store.import_identities(gallery.name, items, on_conflict, chips)
