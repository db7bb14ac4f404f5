"""Retention: people are erased when the gallery's policy says their data may no longer be kept.

Two rules per gallery (GDPR Art. 5(1)(e) storage limitation; Illinois BIPA 740 ILCS 14/15(a):
destroy within 3 years of the individual's last interaction):

* ``max_idle_days`` (default 1095, three years): a person neither enrolled nor matched for that
  long is erased. The last interaction is the later of the last enrolment and the last
  identification that named them (``GovernedGallery`` records both as they happen); a person
  enrolled before this was recorded counts from their record's last change.
* ``consent_grace_days`` (default 0): a person whose every consent has lapsed or been
  withdrawn is erased that many days later (search stops naming them at once either way).

``Retention.purge`` erases what is due, each erasure a ``purge`` record in the audit chain
holding the deletion receipt and the rule that applied; ``dry_run`` lists what would go. Time
is the store's clock, so tests move it.

Example:
    >>> from facelens.gallery import SqliteStore
    >>> from facelens.govern import AuditLog
    >>> store = SqliteStore(":memory:")
    >>> Retention(store, AuditLog(store)).policy("default")
    RetentionPolicy(max_idle_days=1095, consent_grace_days=0)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from facelens.archive.store import Archive, forget_identity_in
from facelens.errors import InputError, NotFoundError
from facelens.gallery.contract import Db, GalleryStore
from facelens.gallery.records import Identity, iso, parse_time
from facelens.govern.audit import AuditLog
from facelens.govern.names import split_gallery_key
from facelens.govern.schema import ensure_schema

__all__ = ["DuePurge", "PurgeResult", "Retention", "RetentionPolicy"]

MAX_DAYS = 36500


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a gallery keeps a person.

    Attributes:
        max_idle_days: erase after this many days without an enrolment or a match.
        consent_grace_days: erase this many days after the last consent lapsed or was
            withdrawn.
    """

    max_idle_days: int = 1095
    consent_grace_days: int = 0

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_DAYS:
                raise InputError(name, f"{name} must be a whole number of days, 0-{MAX_DAYS}")
        if self.max_idle_days < 1:
            raise InputError("max_idle_days", "max_idle_days must be at least 1")


@dataclass(frozen=True)
class DuePurge:
    """One person the policy says must go, and why.

    Attributes:
        gallery: the stored gallery name (``tenant/name`` for a service gallery).
        identity_id, name: who.
        reason: ``idle`` (no enrolment or match for ``max_idle_days``) or ``consent_ended``.
        since: the last interaction (idle) or the end of the last consent (consent_ended).
        due_at: when the rule made them due.
    """

    gallery: str
    identity_id: str
    name: str
    reason: str
    since: str
    due_at: str

    def to_dict(self) -> dict[str, Any]:
        tenant, public = split_gallery_key(self.gallery)
        return {**asdict(self), "tenant": tenant, "gallery": public}


@dataclass(frozen=True)
class PurgeResult:
    """What a purge erased (or, on a dry run, would erase)."""

    dry_run: bool
    at: str
    due: tuple[DuePurge, ...]
    receipts: tuple[dict[str, Any], ...] = ()
    archive_faces: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": self.at,
            "due": [d.to_dict() for d in self.due],
            "erased": len(self.receipts),
            "receipts": list(self.receipts),
            "archive_faces_erased": self.archive_faces,
        }


class Retention:
    """Retention policies of a store's galleries, the activity they are judged on, and the
    purge that enforces them."""

    def __init__(self, store: GalleryStore, audit: AuditLog) -> None:
        self.store, self.audit = store, audit
        ensure_schema(store)

    # -- policies -----------------------------------------------------------------------------

    def policy(self, gallery: str) -> RetentionPolicy:
        rows = self.store.fetch(
            "SELECT max_idle_days, consent_grace_days FROM retention_policies WHERE gallery = ?",
            (gallery,),
        )
        return RetentionPolicy(int(rows[0][0]), int(rows[0][1])) if rows else RetentionPolicy()

    def set_policy(self, gallery: str, policy: RetentionPolicy, actor: str) -> RetentionPolicy:
        """Change a gallery's policy (audited ``retention_policy``, old and new)."""
        if gallery not in self.store.galleries():
            raise NotFoundError("gallery", split_gallery_key(gallery)[1])
        old = self.policy(gallery)
        with self.store.transaction(bump=False) as db:
            db.execute(
                "INSERT INTO retention_policies(gallery, max_idle_days, consent_grace_days) "
                "VALUES (?, ?, ?) ON CONFLICT(gallery) DO UPDATE SET "
                "max_idle_days = excluded.max_idle_days, "
                "consent_grace_days = excluded.consent_grace_days",
                (gallery, policy.max_idle_days, policy.consent_grace_days),
            )
        tenant, public = split_gallery_key(gallery)
        self.audit.append(
            tenant=tenant,
            key_id=actor,
            action="retention_policy",
            gallery=public,
            decision={"old": asdict(old), "new": asdict(policy)},
        )
        return policy

    # -- activity (written by GovernedGallery inside its audit record's transaction) -----------

    @staticmethod
    def touch(db: Db, gallery: str, identity_ids: list[str], kind: str, at: str) -> None:
        """Record that these people were just enrolled (``kind`` ``enrolled``) or matched."""
        column = {"enrolled": "last_enrolled", "matched": "last_matched"}[kind]
        for iid in dict.fromkeys(identity_ids):
            db.execute(
                f"INSERT INTO person_activity(identity_id, gallery, {column}) VALUES (?, ?, ?) "
                f"ON CONFLICT(identity_id) DO UPDATE SET {column} = excluded.{column}",
                (iid, gallery, at),
            )

    @staticmethod
    def forget(db: Db, identity_id: str) -> None:
        """In the erasure's transaction: the person's activity, and the archive's faces named
        as them (``facelens.archive``)."""
        db.execute("DELETE FROM person_activity WHERE identity_id = ?", (identity_id,))
        forget_identity_in(db, identity_id)

    def _activity(self, gallery: str) -> dict[str, str]:
        rows = self.store.fetch(
            "SELECT identity_id, last_enrolled, last_matched FROM person_activity "
            "WHERE gallery = ?",
            (gallery,),
        )
        return {r[0]: max(t for t in (r[1], r[2]) if t) for r in rows if r[1] or r[2]}

    # -- what is due ---------------------------------------------------------------------------

    def _people(self, gallery: str) -> Iterator[Identity]:
        after: str | None = None
        while True:
            page = self.store.list_identities(gallery, after, 1000)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].name

    def deadlines(self, gallery: str) -> Iterator[tuple[Identity, DuePurge]]:
        """Each person of ``gallery`` with the first rule that will make them due, and when."""
        policy = self.policy(gallery)
        activity = self._activity(gallery)
        for ident in self._people(gallery):
            last = activity.get(ident.id) or ident.updated_at
            idle_due = parse_time(last) + timedelta(days=policy.max_idle_days)
            options = [(idle_due, "idle", last)]
            if ident.consents and all(c.expires_at for c in ident.consents):
                ended = max(str(c.expires_at) for c in ident.consents)
                options.append(
                    (
                        parse_time(ended) + timedelta(days=policy.consent_grace_days),
                        "consent_ended",
                        ended,
                    )
                )
            at, reason, since = min(options)
            yield ident, DuePurge(gallery, ident.id, ident.name, reason, since, iso(at))

    def due(
        self, now: datetime | None = None, galleries: list[str] | None = None
    ) -> list[DuePurge]:
        """Everyone the policies make due at ``now`` (the store's clock by default)."""
        at = iso(now or self.store.clock())
        out: list[DuePurge] = []
        for g in galleries if galleries is not None else self.store.galleries():
            out.extend(d for _, d in self.deadlines(g) if d.due_at <= at)
        return out

    def purge(
        self, actor: str, dry_run: bool = False, galleries: list[str] | None = None
    ) -> PurgeResult:
        """Erase everyone due now; each erasure leaves a ``purge`` record (the receipt and the
        rule) in the audit chain. ``dry_run``: only say who."""
        now = self.store.clock()
        due = self.due(now, galleries)
        if dry_run:
            return PurgeResult(True, iso(now), tuple(due))
        receipts = []
        for d in due:
            try:
                receipt = self.store.delete(d.gallery, d.identity_id)
            except NotFoundError:  # erased meanwhile (by someone else, already audited)
                continue
            tenant, public = split_gallery_key(d.gallery)
            doc = receipt.to_dict()
            rec = self.audit.append(
                tenant=tenant,
                key_id=actor,
                action="purge",
                gallery=public,
                candidates=[d.identity_id],
                decision={
                    "reason": d.reason,
                    "since": d.since,
                    "due_at": d.due_at,
                    "policy": asdict(self.policy(d.gallery)),
                    "receipt": doc,
                },
                also=functools.partial(self.forget, identity_id=d.identity_id),
            )
            receipts.append({**doc, "audit_seq": rec.seq, "audit_hash": rec.hash})
        faces = self._expire_archive(actor, now, galleries)
        return PurgeResult(False, iso(now), tuple(due), tuple(receipts), faces)

    def _expire_archive(self, actor: str, now: datetime, galleries: list[str] | None) -> int:
        """The archive's unnamed faces indexed more than ``max_idle_days`` ago are erased
        (``facelens index`` does not index their unchanged photos again); audited in the
        erasure's transaction."""
        total = 0
        for g in galleries if galleries is not None else self.store.galleries():
            days = self.policy(g).max_idle_days
            archive, before = Archive(self.store, g), iso(now - timedelta(days=days))
            n = archive.expirable(before)
            if n:
                tenant, public = split_gallery_key(g)
                self.audit.append(
                    tenant=tenant,
                    key_id=actor,
                    action="purge_archive",
                    gallery=public,
                    decision={"faces": n, "max_idle_days": days},
                    also=functools.partial(archive.expire_in, indexed_before=before, now=iso(now)),
                )
            total += n
        return total
