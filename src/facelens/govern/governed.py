"""One governed gallery: the way every edge (the CLI, the service, the Python API when opened
through it) enrols, searches, renames and erases, each call audited once, here.

The audit record carries what EU AI Act Art. 12(3) asks of remote biometric identification
logs: who acted (the key, or the local user), the reference database (the gallery and the
store's generation at the time), the input that was searched (the probe image's SHA-256),
the candidates and the decision. A route or command cannot forget the audit: it has no other
way to the gallery's people.

Example:
    >>> from facelens.gallery import Gallery, SqliteStore
    >>> from facelens.govern import AuditLog
    >>> store = SqliteStore(":memory:")
    >>> g = GovernedGallery(Gallery(store), AuditLog(store), tenant="default", actor="cli:ada")
    >>> g.identify_many([], rule=0.9, k=3, probe_sha256="0" * 64)
    []
    >>> [r.action for r in AuditLog(store).records("default")]
    ['identify']
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.embed import Embeddings
from facelens.events import Event
from facelens.gallery import Consent, DeletionReceipt, EnrollResult, Gallery, Identity, NewSample
from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import encode_chip, iso
from facelens.gallery.sql import Db
from facelens.govern.audit import AuditLog, AuditRecord
from facelens.govern.confirm import Alert, Alerts
from facelens.govern.retention import PurgeResult, Retention
from facelens.match import Identification
from facelens.match.decide import IdentifyRule, as_rule

if TYPE_CHECKING:
    from facelens.pipeline import Decode, EnrollReport, FaceChoice, Pipeline

__all__ = ["GovernedGallery"]


class GovernedGallery:
    """A gallery whose every enrolment, search, rename and erasure is audited once.

    Args:
        gallery: the gallery (its store holds the audit trail too).
        audit: the store's audit trail.
        tenant: whose gallery (``default`` for the command line's own galleries).
        actor: who acts: ``key:<id>`` for an API key, ``cli:<user>`` for a command.
        public_name: the gallery's name as the actor knows it (the service's galleries are
            stored as ``<tenant>/<name>``).
    """

    def __init__(
        self,
        gallery: Gallery,
        audit: AuditLog,
        *,
        tenant: str,
        actor: str,
        public_name: str | None = None,
    ) -> None:
        self.gallery, self.audit = gallery, audit
        self.tenant, self.actor = tenant, actor
        self.name = public_name or gallery.name
        self.last_record: AuditRecord | None = None

    @classmethod
    def open(
        cls,
        location: str | Path,
        *,
        tenant: str | None = None,
        name: str = "default",
        actor: str | None = None,
        key: TemplateKey | None = None,
    ) -> GovernedGallery:
        """The Python API's way in: the gallery ``name`` (of ``tenant``, as the service names
        it; None: the command line's own) in the store at ``location``, every call audited as
        ``actor`` (default ``python:<user>``). Close it with ``close()``.

        Example:
            >>> import tempfile, os
            >>> g = GovernedGallery.open(os.path.join(tempfile.mkdtemp(), "g.db"))
            >>> g.gallery.identities(), g.audit.records()
            ([], [])
            >>> g.close()
        """
        import getpass

        from facelens.govern.names import gallery_key, split_gallery_key

        stored = gallery_key(tenant, name)
        g = Gallery.open(location, stored, key=key)
        owner, public = split_gallery_key(stored)
        return cls(
            g,
            AuditLog(g.store),
            tenant=owner,
            actor=actor or f"python:{getpass.getuser()}",
            public_name=public,
        )

    def close(self) -> None:
        self.gallery.close()

    def __enter__(self) -> GovernedGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log(
        self,
        action: str,
        touched: tuple[str, list[str]] | None = None,
        forget: str | None = None,
        **fields: Any,
    ) -> AuditRecord:
        """One audit record; in its transaction, the retention bookkeeping: ``touched``
        (``enrolled`` or ``matched``, identity ids) or ``forget`` (an erased identity)."""
        decision = dict(fields.pop("decision", None) or {})
        gallery = self.gallery.name

        def bookkeeping(db: Db) -> None:
            if touched and touched[1]:
                Retention.touch(db, gallery, touched[1], touched[0], iso(self.gallery.clock()))
            if forget:
                Retention.forget(db, forget)

        # the reference database as it was: which gallery, at which generation
        decision["generation"] = self.gallery.store.generation()
        self.last_record = self.audit.append(
            tenant=self.tenant,
            key_id=self.actor,
            action=action,
            gallery=self.name,
            decision=decision,
            also=bookkeeping,
            **fields,
        )
        return self.last_record

    # -- people -----------------------------------------------------------------------------

    def enroll(
        self,
        pipeline: Pipeline,
        name: str,
        images: Sequence[str | Path | bytes],
        consent: Consent | None,
        *,
        face: FaceChoice = "primary",
        gate: bool = True,
        metadata: dict[str, Any] | None = None,
        progress: Any = None,
        decode: Decode | None = None,
    ) -> EnrollReport:
        """``Pipeline.enroll`` into this gallery, audited (the images' SHA-256, never them)."""
        report = pipeline.enroll(
            self.gallery,
            name,
            images,
            consent,
            face=face,
            gate=gate,
            metadata=metadata,
            progress=progress,
            decode=decode,
        )
        r = report.result
        self._log(
            "enroll",
            touched=("enrolled", [r.identity.id]),
            probe_sha256=",".join(_sha256(i) for i in images),
            candidates=[r.identity.id],
            model=pipeline.model,
            decision={
                "created": r.created,
                "added": len(r.added),
                "rejected": len(report.rejected),
            },
        )
        return report

    def enroll_samples(
        self, name: str, samples: Sequence[NewSample], consent: Consent | None
    ) -> EnrollResult:
        """Enrol ``name`` from samples already made (a named cluster of the archive's
        faces), audited as any enrolment (the source images' SHA-256)."""
        r = self.gallery.enroll(name, samples, consent)
        self._log(
            "enroll",
            touched=("enrolled", [r.identity.id]),
            probe_sha256=",".join(sorted({s.image_sha256 for s in samples})),
            candidates=[r.identity.id],
            model=samples[0].model if samples else None,
            decision={"created": r.created, "added": len(r.added), "from": "archive"},
        )
        return r

    def add_consent(self, key: str, consent: Consent) -> Identity:
        """Record a new or renewed consent (audited ``consent_added``: purpose and term)."""
        ident = self.gallery.add_consent(self.gallery.get(key).id, consent)
        self._log(
            "consent_added",
            candidates=[ident.id],
            decision={"purpose": consent.purpose, "expires_at": consent.expires_at},
        )
        return ident

    def withdraw_consent(self, key: str) -> Identity:
        """Every running consent of the person ends now (audited ``consent_withdrawn``)."""
        ident = self.gallery.withdraw_consent(key)
        self._log("consent_withdrawn", candidates=[ident.id])
        return ident

    def rename(self, key: str, new_name: str) -> Identity:
        ident = self.gallery.rename(key, new_name)
        self._log("rename", candidates=[ident.id], decision={"name": ident.name})
        return ident

    def delete(self, key: str) -> tuple[DeletionReceipt, AuditRecord]:
        """Erase a person; the receipt is itself an audit record."""
        receipt = self.gallery.delete(key)
        rec = self._log(
            "delete",
            forget=receipt.identity_id,
            candidates=[receipt.identity_id],
            decision={"receipt": receipt.to_dict()},
        )
        return receipt, rec

    def purge_due(self, dry_run: bool = False) -> PurgeResult:
        """Enforce this gallery's retention policy now (each erasure a ``purge`` record)."""
        return Retention(self.gallery.store, self.audit).purge(
            self.actor, dry_run=dry_run, galleries=[self.gallery.name]
        )

    def confirmation(
        self, stream: str = "", on_held: Callable[[Alert], None] | None = None
    ) -> Callable[[Event, NDArray[np.uint8] | None], None] | None:
        """What a watch of this gallery does with an identification when the gallery wants
        two people to confirm it (setting ``confirm`` 2): hold it as a pending alert, with
        the track's best shot (``Watcher(hold=...)``). None when identifications need no
        confirmation."""
        required = int(self.gallery.settings().get("confirm", 1))
        if required < 2:
            return None
        alerts = Alerts(self.gallery.store, self.audit)

        def hold(event: Event, shot: NDArray[np.uint8] | None) -> None:
            png = None if shot is None else encode_chip(shot)
            alert = alerts.hold(
                self.gallery.name, event.to_dict(), png, self.actor, required, stream
            )
            if on_held is not None:
                on_held(alert)

        return hold

    # -- the period of use of a live identification (Art. 12(3)(a)) --------------------------

    def stream_started(
        self, source: str, model: str, stream_id: str = "", kind: str = "stream"
    ) -> AuditRecord:
        """A watch of ``source`` (its name without credentials) against this gallery began
        (``kind`` ``redact``: a redaction that spares enrolled people searched it). Whoever
        the retention policy makes due is erased first: a watch never starts on people the
        gallery should no longer hold."""
        self.purge_due()
        return self._log(
            f"{kind}_start", model=model, decision={"source": source, "stream": stream_id}
        )

    def stream_stopped(
        self,
        source: str,
        frames: int,
        events: dict[str, int],
        stream_id: str = "",
        why: str = "",
        kind: str = "stream",
    ) -> AuditRecord:
        """That watch ended: how much it saw and what it raised (the identified events are
        the searches whose details go to the event sinks)."""
        return self._log(
            f"{kind}_stop",
            decision={
                "source": source,
                "stream": stream_id,
                "frames": frames,
                "events": dict(events),
                "ended": why,
            },
        )

    # -- search -----------------------------------------------------------------------------

    def identify_many(
        self,
        probes: Sequence[Embeddings] | Embeddings,
        rule: IdentifyRule | float,
        k: int,
        *,
        probe_sha256: str,
        candidates_shown: bool = False,
        model: str | None = None,
    ) -> list[Identification]:
        """Open-set identification of one input's faces, audited as one search: the input's
        hash, every candidate considered, the rule and who was identified."""
        r = as_rule(rule)
        if isinstance(probes, Embeddings):
            found = self.gallery.identify(probes, r, k) if len(probes) else []
        else:
            found = []
        named = [x.identity.identity_id for x in found if x.identity is not None]
        self._log(
            "identify",
            touched=("matched", named),
            probe_sha256=probe_sha256,
            candidates=[c.identity_id for x in found for c in x.candidates],
            threshold=r.threshold,
            model=model or (probes.model if isinstance(probes, Embeddings) else None),
            decision={
                "rule": r.describe(),
                "faces": len(found),
                "identified": named,
                "candidates_shown": candidates_shown,
            },
        )
        return found


def _sha256(src: str | Path | bytes) -> str:
    """An input's SHA-256, read as the decoder reads it (regular files only, bounded)."""
    from facelens.decode.image import DecodeConfig, read_bounded
    from facelens.errors import InputError

    if isinstance(src, bytes):
        return hashlib.sha256(src).hexdigest()
    try:
        data, _ = read_bounded(src, DecodeConfig())
    except InputError:
        return "unreadable"
    return hashlib.sha256(data).hexdigest()
