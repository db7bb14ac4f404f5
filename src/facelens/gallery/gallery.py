"""``RawGallery``: one named gallery of a store, as the store holds it.

Internal. It applies no consent rule, no stop control and writes no audit record: the one way
to a gallery's people for every edge and for the Python API is the governed gallery,
``facelens.Gallery`` (``facelens.govern.GovernedGallery``), which uses this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.errors import NotFoundError
from facelens.gallery.contract import GalleryStore
from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import (
    Consent,
    DeletionReceipt,
    Identity,
    NewSample,
    Sample,
    decode_chip,
)
from facelens.match.decide import Candidate, Identification, IdentifyRule, as_rule, decide_identity
from facelens.match.thresholds import SHIPPED, Calibrations, identify_rule
from facelens.text import check_name, check_text

__all__ = ["EnrollResult", "RawGallery"]


@dataclass(frozen=True)
class EnrollResult:
    """What an enrolment did.

    Attributes:
        identity: the identity after enrolment.
        created: True when the identity is new.
        added: ids of the templates stored (one per image and model: a fusion stores the
            fused template and each part's).
        duplicates: images not stored because they were already enrolled.
    """

    identity: Identity
    created: bool
    added: tuple[str, ...]
    duplicates: int
    images: int = 0  # images stored (what ``identity.sample_count`` counts)


class RawGallery:
    """A named gallery of enrolled people in a store (an SQLite file by default, or
    PostgreSQL), without governance: use ``facelens.Gallery``.

    Search only considers identities whose consent is valid now, with samples of the probe's
    model.

    Example:
        >>> import tempfile, os
        >>> g = RawGallery.open(os.path.join(tempfile.mkdtemp(), "g.db"))
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
    ) -> RawGallery:
        """Open (creating if needed) the gallery ``name`` in the store at ``location``: an
        SQLite file path, or a ``postgresql://`` URL; ``key``: the store's template key
        (``facelens.gallery.protect``)."""
        from facelens.gallery.stores import open_store

        return cls(open_store(location, clock=clock, key=key), name, clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> RawGallery:
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
        expect: str | None = "",
    ) -> EnrollResult:
        """Store ``samples`` under ``name`` in one atomic write (the consent and integrity
        rules are the governed gallery's; ``expect``: see ``GalleryStore.enroll``).

        Raises:
            ValueError: no samples, or an empty name.
        """
        name = check_name(name)
        if not samples:
            raise ValueError("nothing to enrol: no samples")
        existing = self.store.find_identity(self.name, name)
        before = existing.sample_count if existing else 0
        ident, added = self.store.enroll(self.name, name, samples, consent, metadata, expect)
        images = len({s.image_sha256 for s in samples})
        return EnrollResult(
            identity=ident,
            created=existing is None,
            added=tuple(added),
            duplicates=images - (ident.sample_count - before),
            images=ident.sample_count - before,
        )

    def add_consent(self, key: str, consent: Consent, by: str = "id") -> Identity:
        return self.store.add_consent(self.name, self.get(key, by).id, consent)

    def withdraw_consent(self, key: str, by: str = "id") -> Identity:
        """The person withdraws consent: every running consent ends now, search stops naming
        them, and retention erases them after the gallery's grace period."""
        return self.store.withdraw_consents(self.name, self.get(key, by).id)

    def get(self, key: str, by: str = "id") -> Identity:
        """An identity by its id, or by its name (``by="name"``); ``NotFoundError``
        otherwise. Ids and names are told apart: a name never equals an id."""
        if by == "id":
            return self.store.get_identity(self.name, key)
        if by == "name":
            found = self.find(key)
            if found is None:
                raise NotFoundError("identity named", key)
            return found
        raise ValueError(f"by must be 'id' or 'name', got {by!r}")

    def find(self, name: str) -> Identity | None:
        """The identity named ``name`` (as names are stored: NFC), or None."""
        return self.store.find_identity(self.name, check_text(name, "name"))

    def identities(self, after: str | None = None, limit: int | None = None) -> list[Identity]:
        """Everyone enrolled, by name; or a page: at most ``limit``, named after ``after``."""
        return self.store.list_identities(self.name, after, limit)

    def count(self) -> int:
        """How many people are enrolled."""
        return self.store.count_identities(self.name)

    def samples(self, key: str, by: str = "id") -> list[Sample]:
        return self.store.samples(self.get(key, by).id)

    def rename(self, key: str, new_name: str, by: str = "id") -> Identity:
        return self.store.rename(self.name, self.get(key, by).id, new_name)

    def delete(self, key: str, by: str = "id") -> DeletionReceipt:
        """Erase an identity with every sample, kept chip and consent record."""
        return self.store.delete(self.name, self.get(key, by).id)

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

    def chips(self, key: str, by: str = "id") -> list[tuple[str, NDArray[np.uint8]]]:
        """(image SHA-256, RGB chip) of each reference chip kept of an identity."""
        return [(sha, decode_chip(d)) for sha, d in self.store.chips(self.get(key, by).id)]

    def add_templates(self, key: str, samples: Sequence[NewSample], by: str = "id") -> list[str]:
        """Store templates of another model for an identity's already enrolled images
        (``facelens gallery retemplate``)."""
        return self.store.add_samples(self.name, self.get(key, by).id, samples)

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

    def rule(
        self,
        model: str,
        point: str | float | None = None,
        calibrations: Calibrations = SHIPPED,
    ) -> IdentifyRule:
        """The 1:N rule for this gallery's present size (default ``open_set``), from
        ``calibrations`` (a user's model's: ``Pipeline.calibrations``)."""
        identities, samples = self.search_size(model)
        return identify_rule(model, point, identities, samples, calibrations=calibrations)

    def search_size(self, model: str) -> tuple[int, int]:
        """(searchable identities, samples) for ``model``."""
        return self.store.searchable_size(self.name, model)

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)
