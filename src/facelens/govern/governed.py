"""The governed gallery: the one way every edge (the command line, the service, streams,
redaction, the archive's naming) and the Python API (``facelens.Gallery``) reaches people's
data.

Here, once: the stop control (an operator's stop refuses every identification), consent
(enrolment needs a consent valid now), the enrolment integrity check (faces added to an
enrolled person must match their templates), retention bookkeeping, and the audit record. Each
call that enrols, searches, changes or erases people leaves exactly one audit record; a
refused call leaves one too (``<action>_refused``: who, what and why, never the photo).

The audit record carries what EU AI Act Art. 12(3) asks of remote biometric identification
logs: who acted (the key, or the local user), the reference database (the gallery and the
store's generation at the time), the input that was searched (the probe image's SHA-256),
the candidates and the decision.

Example:
    >>> import os, tempfile
    >>> g = GovernedGallery.open(os.path.join(tempfile.mkdtemp(), "g.db"), actor="cli:ada")
    >>> g.identify_many([], rule=0.9, k=3, probe_sha256="0" * 64)
    []
    >>> [r.action for r in g.audit.records("default")]
    ['identify']
    >>> g.close()
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.embed import Embeddings
from facelens.errors import (
    ConsentError,
    FacelensError,
    IdentityMismatchError,
    InputError,
    StoppedError,
)
from facelens.events import Event
from facelens.gallery.contract import Db, GalleryStore
from facelens.gallery.enrol import (
    EnrollReport,
    RetemplateReport,
    no_face_error,
    prepare_many,
    samples_from_chip,
)
from facelens.gallery.gallery import EnrollResult, RawGallery
from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import (
    Consent,
    DeletionReceipt,
    Identity,
    NewSample,
    Sample,
    encode_chip,
    iso,
)
from facelens.govern.audit import AuditLog, AuditRecord
from facelens.govern.confirm import Alert, Alerts
from facelens.govern.integrity import FaceCheck, check_faces
from facelens.govern.retention import PurgeResult, Retention
from facelens.govern.stop import StopControl
from facelens.match import Identification
from facelens.match.decide import Candidate, IdentifyRule, as_rule
from facelens.match.thresholds import DEFAULT_IDENTIFY, SHIPPED, Calibrations
from facelens.text import check_text

if TYPE_CHECKING:
    from facelens.archive.store import Archive
    from facelens.pipeline import Decode, FaceChoice, Pipeline

__all__ = ["GovernedGallery"]

# how long a running stream trusts the stop control's last answer (the service's streams
# learned of a stop within a second before the check moved here)
STOP_CHECK_S = 1.0


class GovernedGallery:
    """A gallery whose every enrolment, search, change and erasure is governed and audited
    once (see the module). ``facelens.Gallery`` is this class.

    Args:
        gallery: the stored gallery (internal; its store holds the audit trail too).
        audit: the store's audit trail.
        tenant: whose gallery (``default`` for the command line's own galleries).
        actor: who acts: ``key:<id>`` (or the key id) for an API key, ``cli:<user>`` for a
            command, ``python:<user>`` for the Python API.
        public_name: the gallery's name as the actor knows it (the service's galleries are
            stored as ``<tenant>/<name>``).
    """

    def __init__(
        self,
        gallery: RawGallery,
        audit: AuditLog,
        *,
        tenant: str,
        actor: str,
        public_name: str | None = None,
    ) -> None:
        self._raw, self.audit = gallery, audit
        self._stop = StopControl(gallery.store, audit)
        self.tenant, self.actor = tenant, actor
        self.name = public_name or gallery.name
        self.last_record: AuditRecord | None = None
        self._streams = 0  # periods of use open on this object (stream_started/stopped)
        self._stop_checked = (-1e9, False)

    @classmethod
    def open(
        cls,
        location: str | Path,
        *,
        name: str = "default",
        tenant: str | None = None,
        actor: str | None = None,
        key: TemplateKey | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GovernedGallery:
        """The gallery ``name`` (of ``tenant``, as the service names it; None: the command
        line's own) in the store at ``location`` (an SQLite file, created if needed, or a
        ``postgresql://`` URL), every call audited as ``actor`` (default
        ``python:<user>``). Close it with ``close()`` or use it in a ``with`` block.

        Example:
            >>> import tempfile, os
            >>> g = GovernedGallery.open(os.path.join(tempfile.mkdtemp(), "g.db"))
            >>> g.identities(), g.audit.records()
            ([], [])
            >>> g.close()
        """
        import getpass

        from facelens.govern.names import gallery_key, split_gallery_key

        stored = gallery_key(tenant, name)
        g = RawGallery.open(location, stored, clock=clock, key=key)
        owner, public = split_gallery_key(stored)
        return cls(
            g,
            AuditLog(g.store),
            tenant=owner,
            actor=actor or f"python:{getpass.getuser()}",
            public_name=public,
        )

    @classmethod
    def in_store(
        cls, store: GalleryStore, audit: AuditLog, *, tenant: str, name: str, actor: str
    ) -> GovernedGallery:
        """Tenant ``tenant``'s gallery ``name`` in an open ``store`` (the service's, shared
        by its requests), audited as ``actor`` in ``audit``."""
        from facelens.govern.names import gallery_key

        return cls(
            RawGallery(store, gallery_key(tenant, name)),
            audit,
            tenant=tenant,
            actor=actor,
            public_name=name,
        )

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> GovernedGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the record ---------------------------------------------------------------------------

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
        gallery = self._raw.name

        def bookkeeping(db: Db) -> None:
            if touched and touched[1]:
                Retention.touch(db, gallery, touched[1], touched[0], iso(self._raw.clock()))
            if forget:
                Retention.forget(db, forget)

        # the reference database as it was: which gallery, at which generation
        decision["generation"] = self._raw.store.generation()
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

    @contextmanager
    def _refusals(self, action: str, **fields: Any) -> Iterator[None]:
        """A call that fails with a facelens error leaves one ``<action>_refused`` record
        (who, what and why; hashes, never images) before the error reaches the caller."""
        try:
            yield
        except FacelensError as e:
            decision = dict(fields.pop("decision", None) or {})
            decision |= {"refused": type(e).__name__, "why": str(e)[:500]}
            self._log(f"{action}_refused", decision=decision, **fields)
            raise

    def refused(self, action: str, why: str) -> AuditRecord:
        """Record that an edge refused ``action`` on a rule of its own (a stream source the
        operator does not allow): who, what and why, as the library's own refusals are."""
        return self._log(f"{action}_refused", decision={"refused": "edge", "why": why[:500]})

    def refuse_if_stopped(self, action: str = "identify") -> None:
        """Raise ``StoppedError`` (audited ``<action>_refused``) when an operator has stopped
        this tenant's identifications; an edge calls it before doing any work for a search."""
        with self._refusals(action):
            self._check_stop()

    def _check_stop(self) -> None:
        st = self._stop.status(self.tenant)
        self._stop_checked = (time.monotonic(), st.stopped)
        if st.stopped:
            raise StoppedError(self.tenant, st.at, st.reason)

    # -- reading (no search, no change: not audited) ------------------------------------------

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._raw.clock

    @property
    def stored_name(self) -> str:
        """The gallery's name in its store (``<tenant>/<name>`` for a service tenant's)."""
        return self._raw.name

    def now(self) -> datetime:
        return self._raw.now()

    def exists(self) -> bool:
        """Whether the gallery is in its store yet (it is made by its first enrolment)."""
        return self._raw.name in self._raw.store.galleries()

    def get(self, key: str, *, by: str = "id") -> Identity:
        """An identity by its id (``by="name"``: by its name); ``NotFoundError`` otherwise."""
        return self._raw.get(key, by=by)

    def find(self, name: str) -> Identity | None:
        """The identity named ``name`` (as names are stored), or None."""
        return self._raw.find(name)

    def identities(self, after: str | None = None, limit: int | None = None) -> list[Identity]:
        """Everyone enrolled, by name; or a page: at most ``limit``, named after ``after``."""
        return self._raw.identities(after, limit)

    def count(self) -> int:
        return self._raw.store.count_identities(self._raw.name)

    def samples(self, key: str, *, by: str = "id") -> list[Sample]:
        """An identity's samples (their quality and source hashes)."""
        return self._raw.samples(key, by)

    def settings(self) -> dict[str, Any]:
        """This gallery's settings (``keep_chips``, ``confirm``)."""
        return self._raw.settings()

    def models(self) -> dict[str, tuple[int, int]]:
        """Per template tag in this gallery: (identities with one, templates)."""
        return self._raw.models()

    def search_size(self, model: str) -> tuple[int, int]:
        """(searchable identities, samples) for ``model``."""
        return self._raw.search_size(model)

    def rule(
        self,
        model: str,
        point: str | float | None = None,
        calibrations: Calibrations = SHIPPED,
    ) -> IdentifyRule:
        """The 1:N rule for this gallery's present size (default ``open_set``), from
        ``calibrations`` (a user's model's: ``Pipeline.calibrations``)."""
        return self._raw.rule(model, point, calibrations)

    def encrypted(self) -> bool:
        """Whether the store's templates are sealed at rest."""
        return self._raw.store.encrypted()

    def archive(self) -> Archive:
        """The archive of the owner's photos indexed into this gallery (``facelens index``)."""
        from facelens.archive.store import Archive

        self._raw.store.ensure_gallery(self._raw.name)
        return Archive(self._raw.store, self._raw.name)

    # -- people -------------------------------------------------------------------------------

    def _require_consent(self, name: str, consent: Consent | None) -> Identity | None:
        """The identity named ``name`` (None: a new one), once ``consent`` (None: a stored
        one) is found to cover an enrolment now; ``ConsentError`` otherwise."""
        now = self._raw.clock()
        existing = self._raw.find(name)
        if consent is not None and not consent.valid_at(now):
            raise ConsentError(f"consent for {name!r} expired at {consent.expires_at}")
        if consent is None and (existing is None or not existing.consent_valid_at(now)):
            what = "has no consent valid now" if existing else "has no consent record"
            raise ConsentError(
                f"enrolment of {name!r} refused: the identity {what}. "
                "Record the person's consent (purpose, who granted it) to enrol."
            )
        return existing

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
        progress: Callable[[int, int], None] | None = None,
        override: str | None = None,
        decode: Decode | None = None,
    ) -> EnrollReport:
        """Enrol ``name`` from ``images`` (paths or bytes) with ``pipeline``: consent is
        checked before any image is read; images without a usable face are listed as
        rejected; the rest are stored in one atomic write. Faces added to an enrolled
        person must match their templates (``facelens.govern.integrity``) unless
        ``override`` gives the reason to add them anyway (audited ``enroll_override``).
        Audited ``enroll`` (the images' SHA-256, never them). ``decode``: how an image
        becomes pixels (default ``Pipeline.decode``; the service passes a sandboxed one).

        Raises:
            ConsentError: no consent covers the enrolment (nothing is read).
            EnrollmentError: no image gave a usable face (nothing is stored).
            IdentityMismatchError: a face does not match the enrolled person's templates.
            ConflictError: a new name looks like another's, or is an id.
        """
        with self._refusals("enroll", model=pipeline.model, decision={"images": len(images)}):
            self._require_consent(name, consent)
            samples, rejected, at = prepare_many(pipeline, images, face, gate, progress, decode)
            if not samples:
                raise no_face_error(name, rejected)
        decision = {"rejected": len(rejected)}
        result = self._store(
            name, samples, consent, metadata, decision, override, pipeline.calibrations
        )
        return EnrollReport(result, tuple(rejected), tuple(at))

    def enroll_samples(
        self,
        name: str,
        samples: Sequence[NewSample] | Callable[[], Sequence[NewSample]],
        consent: Consent | None,
        override: str | None = None,
        calibrations: Calibrations = SHIPPED,
    ) -> EnrollResult:
        """Enrol ``name`` from samples already made (a named cluster of the archive's
        faces), governed, checked and audited as any enrolment (naming a group with the name
        of someone enrolled adds samples to them: their faces must match). ``samples`` may
        be a function making them, called once consent is found to cover the enrolment (a
        refusal then costs nothing)."""
        with self._refusals("enroll", decision={"from": "archive"}):
            self._require_consent(name, consent)
            made = samples() if callable(samples) else samples
        return self._store(name, made, consent, None, {"from": "archive"}, override, calibrations)

    def _store(
        self,
        name: str,
        samples: Sequence[NewSample],
        consent: Consent | None,
        metadata: dict[str, Any] | None,
        decision: dict[str, Any],
        override: str | None,
        calibrations: Calibrations,
    ) -> EnrollResult:
        """Store ``samples`` under ``name`` (consent checked again: it may have lapsed
        while the images were read; the faces checked against an enrolled person's), with
        the one ``enroll`` (or ``enroll_override``) record."""
        hashes = ",".join(dict.fromkeys(s.image_sha256 for s in samples))
        model = samples[0].model if samples else None
        action = "enroll"
        with self._refusals("enroll", probe_sha256=hashes, model=model, decision=dict(decision)):
            metadata = _checked_metadata(metadata)
            if override is not None:
                override = check_text(override, "override reason", 500)
                if not override:
                    raise InputError("override", "an override needs a reason")
            existing = self._require_consent(name, consent)
            if existing is not None:
                stored = self._raw.samples(existing.id)
                check = check_faces(existing, stored, samples, calibrations)
                decision = decision | {"face_check": check.to_dict()}
                if not check.passed and override is None:
                    raise _mismatch(existing.name, check)
                if not check.passed:
                    action, decision = "enroll_override", decision | {"override": override}
            r = self._raw.enroll(
                name, samples, consent, metadata, expect=existing.id if existing else None
            )
        self._log(
            action,
            touched=("enrolled", [r.identity.id]),
            probe_sha256=hashes,
            candidates=[r.identity.id],
            model=model,
            decision={"created": r.created, "added": r.images} | decision,
        )
        return r

    def add_consent(self, key: str, consent: Consent, *, by: str = "id") -> Identity:
        """Record a new or renewed consent (audited ``consent_added``: purpose and term)."""
        with self._refusals("consent_added"):
            ident = self._raw.add_consent(self.get(key, by=by).id, consent)
        self._log(
            "consent_added",
            candidates=[ident.id],
            decision={"purpose": consent.purpose, "expires_at": consent.expires_at},
        )
        return ident

    def withdraw_consent(self, key: str, *, by: str = "id") -> Identity:
        """Every running consent of the person ends now (audited ``consent_withdrawn``)."""
        with self._refusals("consent_withdrawn"):
            ident = self._raw.withdraw_consent(self.get(key, by=by).id)
        self._log("consent_withdrawn", candidates=[ident.id])
        return ident

    def rename(self, key: str, new_name: str, *, by: str = "id") -> Identity:
        """Rename a person (audited ``rename``)."""
        with self._refusals("rename"):
            ident = self._raw.rename(self.get(key, by=by).id, new_name)
        self._log("rename", candidates=[ident.id], decision={"name": ident.name})
        return ident

    def delete(self, key: str, *, by: str = "id") -> tuple[DeletionReceipt, AuditRecord]:
        """Erase a person with every sample, kept chip and consent record (and the archive's
        faces named as them); the receipt is itself an audit record."""
        with self._refusals("delete"):
            receipt = self._raw.delete(self.get(key, by=by).id)
        rec = self._log(
            "delete",
            forget=receipt.identity_id,
            candidates=[receipt.identity_id],
            decision={"receipt": receipt.to_dict()},
        )
        return receipt, rec

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings (audited ``settings``); returns them all. ``keep_chips=False``
        erases the kept chips; ``confirm=2`` makes two people confirm identifications."""
        with self._refusals("settings", decision={"changes": changes}):
            settings = self._raw.configure(**changes)
        self._log("settings", decision={"changes": changes})
        return settings

    def retemplate(
        self, pipeline: Pipeline, progress: Callable[[int, int], None] | None = None
    ) -> RetemplateReport:
        """Give every identity templates of ``pipeline``'s model, made from the reference
        chips the gallery kept at enrolment (``configure(keep_chips=True)``). Identities with
        this model's templates are left as they are, those whose consent has lapsed are not
        processed, and those with no usable chip are listed as having to enrol again.
        Audited once (``retemplate``)."""
        added = done = already = 0
        reenrol: list[tuple[str, str]] = []
        lapsed: list[tuple[str, str]] = []
        people = self._raw.identities()
        now = self._raw.clock()
        with self._refusals("retemplate", model=pipeline.model):
            for n, ident in enumerate(people):
                if progress:
                    progress(n + 1, len(people))
                if pipeline.model in ident.models:
                    already += 1
                elif not ident.consent_valid_at(now):
                    lapsed.append((ident.id, ident.name))
                else:
                    samples = [
                        s
                        for sha, chip in self._raw.chips(ident.id)
                        for s in samples_from_chip(pipeline, sha, chip)
                    ]
                    if not samples:
                        reenrol.append((ident.id, ident.name))
                        continue
                    added += len(self._raw.add_templates(ident.id, samples))
                    done += 1
        report = RetemplateReport(
            pipeline.model, added, done, already, tuple(reenrol), tuple(lapsed)
        )
        self._log(
            "retemplate",
            model=pipeline.model,
            decision={"added": added, "identities": done, "must_reenrol": len(reenrol)},
        )
        return report

    def export_to(self, path: str | Path, chips: bool = False) -> int:
        """Write every identity to a portable file (``facelens.gallery.portable``); audited
        ``export``. Returns how many."""
        from facelens.gallery.portable import export_gallery

        with self._refusals("export"):
            n = export_gallery(self._raw, path, chips=chips)
        self._log("export", decision={"identities": n, "chips": chips})
        return n

    def import_from(self, path: str | Path, on_conflict: str = "error") -> tuple[int, int]:
        """Import identities from an exported file, all or nothing; audited ``import``.
        Returns (imported, skipped)."""
        from facelens.gallery.portable import import_gallery

        with self._refusals("import", decision={"on_conflict": on_conflict}):
            imported, skipped = import_gallery(self._raw, path, on_conflict)
        self._log("import", decision={"imported": imported, "skipped": skipped})
        return imported, skipped

    def purge_due(self, dry_run: bool = False) -> PurgeResult:
        """Enforce this gallery's retention policy now (each erasure a ``purge`` record)."""
        return Retention(self._raw.store, self.audit).purge(
            self.actor, dry_run=dry_run, galleries=[self._raw.name]
        )

    def confirmation(
        self, stream: str = "", on_held: Callable[[Alert], None] | None = None
    ) -> Callable[[Event, NDArray[np.uint8] | None], None] | None:
        """What a watch of this gallery does with an identification when the gallery wants
        two people to confirm it (setting ``confirm`` 2): hold it as a pending alert, with
        the track's best shot (``Watcher(hold=...)``). None when identifications need no
        confirmation."""
        required = int(self._raw.settings().get("confirm", 1))
        if required < 2:
            return None
        alerts = Alerts(self._raw.store, self.audit)

        def hold(event: Event, shot: NDArray[np.uint8] | None) -> None:
            png = None if shot is None else encode_chip(shot)
            alert = alerts.hold(self._raw.name, event.to_dict(), png, self.actor, required, stream)
            if on_held is not None:
                on_held(alert)

        return hold

    # -- the period of use of a live identification (Art. 12(3)(a)) --------------------------

    def stream_started(
        self, source: str, model: str, stream_id: str = "", kind: str = "stream"
    ) -> AuditRecord:
        """A watch of ``source`` (its name without credentials) against this gallery began
        (``kind`` ``redact``: a redaction that spares enrolled people searched it); its
        searches (``stream_search``) are covered by this record and the one
        ``stream_stopped`` writes. Refused (``StoppedError``) while identifications are
        stopped. Whoever the retention policy makes due is erased first: a watch never starts
        on people the gallery should no longer hold."""
        self.refuse_if_stopped(f"{kind}_start")
        self.purge_due()
        rec = self._log(
            f"{kind}_start", model=model, decision={"source": source, "stream": stream_id}
        )
        self._streams += 1
        return rec

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
        self._streams = max(0, self._streams - 1)
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

    def stream_search(
        self, probes: Embeddings, k: int, probe_sha256: str | None = None
    ) -> list[list[Candidate]]:
        """A running watch's search: per probe, the ``k`` most similar identities. Only
        between ``stream_started`` and ``stream_stopped`` (the period of use is the record);
        refused with ``StoppedError`` within a second of an operator's stop. With
        ``probe_sha256`` (the frame's SHA-256) the search is one ``stream_search`` record
        too: the input, every candidate considered, the model (a watch decides who a track
        is from several searches; its decisions are the events it raises)."""
        if self._streams <= 0:
            raise RuntimeError("a stream's searches need stream_started first (its record)")
        at, stopped = self._stop_checked
        if time.monotonic() - at >= STOP_CHECK_S or stopped:
            self.refuse_if_stopped("stream_search")
        found = self._raw.search(probes, k)
        if probe_sha256 is not None:
            self._log(
                "stream_search",
                probe_sha256=probe_sha256,
                candidates=[c.identity_id for row in found for c in row],
                model=probes.model,
                decision={"faces": len(found), "k": k},
            )
        return found

    # -- search -------------------------------------------------------------------------------

    def identify(
        self,
        probes: Embeddings,
        threshold: IdentifyRule | str | float | None = None,
        k: int = 5,
        calibrations: Calibrations = SHIPPED,
    ) -> list[Identification]:
        """Open-set identification of ``probes`` (the Python API's search): per probe, up
        to ``k`` candidates and the identity or None (unknown) under ``threshold`` (a rule,
        an operating point, a cosine; default ``open_set`` for this gallery's size, from
        ``calibrations``: a user's model's are ``Pipeline.calibrations``). Audited as one
        search, the input named by the SHA-256 of the probe templates."""
        if isinstance(threshold, IdentifyRule):
            rule = threshold
        else:
            point = DEFAULT_IDENTIFY if threshold is None else threshold
            rule = self.rule(probes.model, point, calibrations)
        digest = hashlib.sha256(np.ascontiguousarray(probes.vectors).tobytes()).hexdigest()
        return self.identify_many(probes, rule, k, probe_sha256=digest, model=probes.model)

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
        hash, every candidate considered, the rule and who was identified. Refused
        (``StoppedError``, audited) while identifications are stopped."""
        r = as_rule(rule)
        model = model or (probes.model if isinstance(probes, Embeddings) else None)
        with self._refusals("identify", probe_sha256=probe_sha256, model=model):
            self._check_stop()
            if isinstance(probes, Embeddings):
                found = self._raw.identify(probes, r, k) if len(probes) else []
            else:
                found = []
        named = [x.identity.identity_id for x in found if x.identity is not None]
        self._log(
            "identify",
            touched=("matched", named),
            probe_sha256=probe_sha256,
            candidates=[c.identity_id for x in found for c in x.candidates],
            threshold=r.threshold,
            model=model,
            decision={
                "rule": r.describe(),
                "faces": len(found),
                "identified": named,
                "candidates_shown": candidates_shown,
            },
        )
        return found


def _mismatch(name: str, check: FaceCheck) -> IdentityMismatchError:
    """The refusal of faces that did not match ``name``'s templates (or could not be
    compared with them)."""
    hint = (
        "An operator who is sure may add them with an override and its reason (CLI "
        "--override-face-check REASON; API override_face_check, with the enroll:override "
        "scope), which is audited."
    )
    if check.why:
        msg = f"cannot check the new faces against {check.why}. Nothing was added. {hint}"
    else:
        shown = ", ".join(f"{src} ({sim:.3f})" for src, sim in check.mismatched[:5])
        more = len(check.mismatched) - 5
        msg = (
            f"{len(check.mismatched)} of {len(check.faces)} face(s) do not match the templates "
            f"of {name!r} at the strict threshold {check.threshold:.4f} of {check.model}: "
            f"{shown}{f' and {more} more' if more > 0 else ''}. Nothing was added. {hint}"
        )
    return IdentityMismatchError(
        msg, name=name, model=check.model, threshold=check.threshold, mismatched=check.mismatched
    )


def _checked_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """An identity's metadata with its keys and text values checked as all typed text."""
    if metadata is None:
        return None
    return {
        check_text(str(k), "metadata key", 100): (
            check_text(v, f"metadata {k}", 1000) if isinstance(v, str) else v
        )
        for k, v in metadata.items()
    }
