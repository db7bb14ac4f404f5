"""What a gallery stores: identities, their consent records and their samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError
from facelens.text import check_text

__all__ = [
    "Consent",
    "DeletionReceipt",
    "Identity",
    "NewSample",
    "Sample",
    "decode_chip",
    "encode_chip",
    "iso",
    "parse_time",
]


def encode_chip(chip: NDArray[np.uint8]) -> bytes:
    """An RGB chip as PNG bytes (lossless: a template made from it later is the same)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(chip[:, :, ::-1]))
    if not ok:
        raise ValueError("the chip could not be encoded")
    return bytes(buf)


def decode_chip(data: bytes) -> NDArray[np.uint8]:
    """PNG bytes (``encode_chip``) -> an RGB chip."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("a stored chip is not a readable image")
    return np.ascontiguousarray(img[:, :, ::-1])


def iso(t: datetime) -> str:
    """A UTC timestamp as stored: ``2026-11-26T05:30:00+00:00`` (sorts as text)."""
    if t.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    try:
        return t.astimezone(UTC).isoformat(timespec="seconds")
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        raise InputError("time", f"{t.isoformat()} is beyond the last UTC time") from None


def parse_time(value: str | date | datetime) -> datetime:
    """A date or ISO 8601 time (date alone = midnight UTC; naive = UTC) as an aware datetime."""
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, date):
        t = datetime(value.year, value.month, value.day)
    else:
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError("time", f"not an ISO 8601 date or time: {value[:64]!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Consent:
    """A person's consent to be enrolled. Its text is checked as all text people type is
    (``facelens.text.check_text``: no control, invisible or bidirectional characters).

    Attributes:
        purpose: what the enrolment is for, in the words shown to the person.
        granted_by: who gave consent: the person, or their legal representative.
        granted_at: when (UTC ISO 8601).
        expires_at: when it lapses (UTC ISO 8601), or None until withdrawn.
        recorded_by: who recorded it (operator, API key id).
        id: store-assigned id, None before storing.
    """

    purpose: str
    granted_by: str
    granted_at: str
    expires_at: str | None = None
    recorded_by: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        if self.id is None:  # a new record (one read back from a store is taken as stored)
            for f, limit in (("purpose", 500), ("granted_by", 200), ("recorded_by", 200)):
                object.__setattr__(self, f, check_text(getattr(self, f), f"consent {f}", limit))
        if not self.purpose.strip():
            raise InputError("consent", "consent needs a purpose")
        if not self.granted_by.strip():
            raise InputError("consent", "consent needs the name of who granted it")
        object.__setattr__(self, "granted_at", iso(parse_time(self.granted_at)))
        if self.expires_at is not None:
            exp = iso(parse_time(self.expires_at))
            if exp <= self.granted_at:
                raise InputError(
                    "consent",
                    f"consent expiry {exp} is not after it was granted ({self.granted_at})",
                )
            object.__setattr__(self, "expires_at", exp)

    def valid_at(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > iso(now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at,
            "expires_at": self.expires_at,
            "recorded_by": self.recorded_by,
        }


@dataclass(frozen=True, eq=False)
class NewSample:
    """A sample ready to store: what enrolment computed from one image (never the image).

    Attributes:
        embedding: (D,) unit vector.
        model: embedding model tag.
        quality: quality measures of the face (name -> value).
        image_sha256: SHA-256 of the source image file.
        box: the face's ``[x1, y1, x2, y2]`` in the source image.
        source: a label for messages (file name); not stored.
        chip: the aligned reference chip of the face (``Aligner.reference_chips``), stored
            only by a gallery set to keep chips (to make templates of another model later).
    """

    embedding: NDArray[np.float32]
    model: str
    quality: dict[str, float]
    image_sha256: str
    box: tuple[float, float, float, float] | None = None
    source: str = ""
    chip: NDArray[np.uint8] | None = None

    def __post_init__(self) -> None:
        e = np.asarray(self.embedding, np.float32).reshape(-1)
        n = float(np.linalg.norm(e))
        if e.size == 0 or not np.isfinite(n) or abs(n - 1.0) > 1e-3:
            raise ValueError(f"sample embedding must be a unit vector, norm is {n:.4f}")
        e.setflags(write=False)
        object.__setattr__(self, "embedding", e)


@dataclass(frozen=True, eq=False)
class Sample:
    """A stored sample."""

    id: str
    identity_id: str
    model: str
    embedding: NDArray[np.float32]
    quality: dict[str, float]
    image_sha256: str
    box: tuple[float, float, float, float] | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """The sample as the CLI and the service show it: never its embedding."""
        return {
            "id": self.id,
            "model": self.model,
            "created_at": self.created_at,
            "image_sha256": self.image_sha256,
            "box": None if self.box is None else [round(float(v), 2) for v in self.box],
            "quality": {k: round(float(v), 2) for k, v in self.quality.items()},
        }


@dataclass(frozen=True)
class Identity:
    """An enrolled person.

    Attributes:
        id: stable id (UUID hex).
        gallery: the gallery it belongs to.
        name: display name, unique within its gallery.
        metadata: free-form JSON object set by the operator.
        created_at: when enrolled.
        updated_at: last change.
        sample_count: number of enrolled images (each may hold templates of several models).
        consents: its consent records, newest last.
        models: the model tags it has templates of, and how many of each.
        chips: how many aligned reference chips the gallery keeps of it.
    """

    id: str
    gallery: str
    name: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    sample_count: int = 0
    consents: tuple[Consent, ...] = field(default=())
    models: dict[str, int] = field(default_factory=dict)
    chips: int = 0

    def consent_valid_at(self, now: datetime) -> bool:
        return any(c.valid_at(now) for c in self.consents)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """The identity as the CLI (``--json``) and the service both show it, with whether
        its consent is valid at ``now``."""
        return {
            "id": self.id,
            "name": self.name,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "samples": self.sample_count,
            "models": dict(self.models),
            "chips": self.chips,
            "consent_valid": self.consent_valid_at(now),
            "consents": [c.to_dict() for c in self.consents],
        }


@dataclass(frozen=True)
class DeletionReceipt:
    """What an erasure removed."""

    identity_id: str
    name: str
    gallery: str
    samples_deleted: int
    consents_deleted: int
    deleted_at: str
    chips_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity_id": self.identity_id,
            "name": self.name,
            "samples_deleted": self.samples_deleted,
            "consents_deleted": self.consents_deleted,
            "chips_deleted": self.chips_deleted,
            "deleted_at": self.deleted_at,
        }
