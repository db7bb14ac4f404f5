"""``Gallery``: enrolment rules, search and portability over a store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.errors import ConsentError
from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import (
    Consent,
    DeletionReceipt,
    Identity,
    NewSample,
    Sample,
    check_name,
    decode_chip,
)
from facelens.gallery.sql import GalleryStore
from facelens.match.decide import Candidate, Identification, IdentifyRule, as_rule, decide_identity
from facelens.match.thresholds import identify_rule

__all__ = ["EnrollResult", "Gallery"]


@dataclass(frozen=True)
class EnrollResult:
    """What an enrolment did.

    Attributes:
        identity: the identity after enrolment.
        created: True when the identity is new.
        added: ids of the samples stored.
        duplicates: images not stored because they were already enrolled.
    """

    identity: Identity
    created: bool
    added: tuple[str, ...]
    duplicates: int


class Gallery:
    """A named gallery of enrolled people in a store (an SQLite file by default, or
    PostgreSQL).

    Enrolment needs a valid consent record; search only considers identities whose consent is
    valid now, with samples of the probe's model.

    Example:
        >>> import tempfile, os
        >>> g = Gallery.open(os.path.join(tempfile.mkdtemp(), "g.db"))
        >>> g.identities()
        []
    """

    def __init__(
        self,
        store: GalleryStore,
        name: str = "default",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.clock = clock or store.clock

    @classmethod
    def open(
        cls,
        location: str | Path,
        name: str = "default",
        clock: Callable[[], datetime] | None = None,
        key: TemplateKey | None = None,
    ) -> Gallery:
        """Open (creating if needed) the gallery ``name`` in the store at ``location``: an
        SQLite file path, or a ``postgresql://`` URL; ``key``: the store's template key
        (``facelens.gallery.protect``)."""
        from facelens.gallery.stores import open_store

        return cls(open_store(location, clock=clock, key=key), name, clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- people -----------------------------------------------------------------------------

    def enroll(
        self,
        name: str,
        samples: Sequence[NewSample],
        consent: Consent | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> EnrollResult:
        """Enrol ``samples`` under ``name`` in one atomic write.

        A new identity needs ``consent``; an existing one needs a consent valid now or a new one.

        Raises:
            ConsentError: no valid consent.
            ValueError: no samples, or an empty name.
        """
        name = check_name(name)
        if not samples:
            raise ValueError("nothing to enrol: no samples")
        existing = self.require_consent(name, consent)
        before = existing.sample_count if existing else 0
        ident, added = self.store.enroll(self.name, name, samples, consent, metadata)
        images = len({s.image_sha256 for s in samples})
        return EnrollResult(
            identity=ident,
            created=existing is None,
            added=tuple(added),
            duplicates=images - (ident.sample_count - before),
        )

    def require_consent(self, name: str, consent: Consent | None) -> Identity | None:
        """Check that ``name`` may be enrolled with ``consent`` (None: rely on a stored one).

        Returns the existing identity of that name, or None.

        Raises:
            ConsentError: the consent given has expired, or none is given and the identity has
                no consent valid now.
            ValueError: the name is empty.
        """
        name = check_name(name)
        now = self.clock()
        existing = self.store.find_identity(self.name, name)
        if consent is not None and not consent.valid_at(now):
            raise ConsentError(f"consent for {name!r} expired at {consent.expires_at}")
        if consent is None and (existing is None or not existing.consent_valid_at(now)):
            what = "has no consent valid now" if existing else "has no consent record"
            raise ConsentError(
                f"enrolment of {name!r} refused: the identity {what}. "
                "Record the person's consent (purpose, who granted it) to enrol."
            )
        return existing

    def add_consent(self, key: str, consent: Consent) -> Identity:
        return self.store.add_consent(self.name, key, consent)

    def withdraw_consent(self, key: str) -> Identity:
        """The person withdraws consent: every running consent ends now, search stops naming
        them, and retention erases them after the gallery's grace period."""
        return self.store.withdraw_consents(self.name, key)

    def get(self, key: str) -> Identity:
        """An identity by id or name (``NotFoundError`` otherwise)."""
        return self.store.get_identity(self.name, key)

    def identities(self, after: str | None = None, limit: int | None = None) -> list[Identity]:
        """Everyone enrolled, by name; or a page: at most ``limit``, named after ``after``."""
        return self.store.list_identities(self.name, after, limit)

    def samples(self, key: str) -> list[Sample]:
        return self.store.samples(self.get(key).id)

    def rename(self, key: str, new_name: str) -> Identity:
        return self.store.rename(self.name, key, new_name)

    def delete(self, key: str) -> DeletionReceipt:
        """Erase an identity with every sample, kept chip and consent record."""
        return self.store.delete(self.name, key)

    # -- settings, models and kept chips ----------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """This gallery's settings (``keep_chips``: whether enrolment keeps an aligned
        reference chip of each face, so templates of another model can be made later)."""
        return self.store.gallery_settings(self.name)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings; returns them all. ``keep_chips=False`` erases the kept chips."""
        return self.store.set_gallery_settings(self.name, changes)

    def models(self) -> dict[str, tuple[int, int]]:
        """Per template tag in this gallery: (identities with one, templates)."""
        return self.store.models(self.name)

    def chips(self, key: str) -> list[tuple[str, NDArray[np.uint8]]]:
        """(image SHA-256, RGB chip) of each reference chip kept of an identity."""
        return [(sha, decode_chip(data)) for sha, data in self.store.chips(self.get(key).id)]

    def add_templates(self, key: str, samples: Sequence[NewSample]) -> list[str]:
        """Store templates of another model for an identity's already enrolled images
        (``facelens gallery retemplate``); needs a consent valid now, as any enrolment."""
        ident = self.get(key)
        if not ident.consent_valid_at(self.clock()):
            raise ConsentError(f"{ident.name!r} has no consent valid now: nothing is added")
        return self.store.add_samples(self.name, ident.id, samples)

    # -- search -----------------------------------------------------------------------------

    def search(self, probes: Embeddings, k: int = 5) -> list[list[Candidate]]:
        """Per probe, the k most similar identities (best sample per identity); exact for
        small galleries, approximate and verified for large ones (see the store)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if len(probes) == 0:
            return []
        return self.store.search(self.name, probes.model, probes.vectors, k)

    def identify(
        self, probes: Embeddings, threshold: IdentifyRule | float, k: int = 5
    ) -> list[Identification]:
        """Open-set identification: up to ``k`` candidates, and the identity or None
        (unknown) per probe. ``threshold`` is a similarity threshold or an ``IdentifyRule``
        (``Gallery.rule``, ``facelens.match.thresholds.identify_rule``); the gallery is
        searched as deep as the rule needs."""
        r = as_rule(threshold)
        return [decide_identity(c, r, k) for c in self.search(probes, max(k, r.depth))]

    def rule(self, model: str, point: str | float | None = None) -> IdentifyRule:
        """The 1:N rule for this gallery's present size (default ``open_set``)."""
        identities, samples = self.search_size(model)
        return identify_rule(model, point, identities, samples)

    def search_size(self, model: str) -> tuple[int, int]:
        """(searchable identities, samples) for ``model``."""
        return self.store.searchable_size(self.name, model)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)
