"""Two-person confirmation (EU AI Act Art. 14(5)): in a gallery set to ``confirm=2`` an
identification raises a pending alert instead of an ``identified`` event, and nothing about
it reaches event sinks (webhooks, MQTT, files, live clients) until two different keys confirm
it. Either may reject it; an alert nobody decides expires. Each vote, the release and the
expiry are audit records (Art. 12(3)(d): who verified the result).

The alert keeps the track's best shot (sealed like the gallery's templates) so the people
confirming can compare it with the enrolled reference; the shot is erased as soon as the
alert is decided or expires.

Example:
    >>> from facelens.gallery import SqliteStore
    >>> store = SqliteStore(":memory:")
    >>> Alerts(store, AuditLog(store)).pending("acme")
    []
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from facelens.errors import ConflictError, InputError, NotFoundError
from facelens.gallery.contract import Tables
from facelens.gallery.records import iso
from facelens.govern.audit import AuditLog
from facelens.govern.names import split_gallery_key
from facelens.govern.schema import ensure_schema

__all__ = ["Alert", "Alerts"]

SHOT = b"alert-shot"
_COLS = (
    "id, tenant, gallery, identity_id, score, source, stream, track_id, event, required, "
    "status, created_at, expires_at, decided_at, shot IS NOT NULL"
)


@dataclass(frozen=True)
class Alert:
    """An identification waiting for people to confirm it.

    Attributes:
        status: ``pending``, ``confirmed`` (released to the sinks), ``rejected``, ``expired``.
        required: how many different keys must confirm.
        votes: (key, ``confirm`` or ``reject``, time) in order.
        event: the ``identified`` event held back (delivered only once confirmed).
    """

    id: str
    tenant: str
    gallery: str
    identity_id: str
    name: str | None
    score: float | None
    source: str
    stream: str
    track_id: int | None
    required: int
    status: str
    created_at: str
    expires_at: str
    decided_at: str | None
    has_shot: bool
    votes: tuple[tuple[str, str, str], ...]
    event: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "gallery": self.gallery,
            "identity_id": self.identity_id,
            "identity": self.name,
            "score": None if self.score is None else round(self.score, 2),
            "source": self.source,
            "stream": self.stream,
            "track_id": self.track_id,
            "required": self.required,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_at": self.decided_at,
            "has_shot": self.has_shot,
            "votes": [{"key": k, "vote": v, "at": t} for k, v, t in self.votes],
        }


class Alerts:
    """The pending alerts of a store (every tenant's; each call names its tenant)."""

    def __init__(self, store: Tables, audit: AuditLog, ttl_s: float = 900.0) -> None:
        self.store, self.audit, self.ttl_s = store, audit, ttl_s
        ensure_schema(store)

    # -- raising ------------------------------------------------------------------------------

    def hold(
        self,
        gallery: str,
        event: dict[str, Any],
        shot_png: bytes | None,
        actor: str,
        required: int = 2,
        stream: str = "",
    ) -> Alert:
        """Keep an ``identified`` event (``Event.to_dict()``) of ``gallery`` (its stored name)
        back as a pending alert, with the track's best shot (PNG)."""
        tenant, public = split_gallery_key(gallery)
        now = self.store.clock()
        aid = uuid.uuid4().hex[:16]
        with self.store.transaction(bump=False) as db:
            db.execute(
                "INSERT INTO alerts(id, tenant, gallery, identity_id, score, source, stream, "
                "track_id, event, shot, required, status, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    aid,
                    tenant,
                    public,
                    event["identity_id"],
                    event.get("score"),
                    event.get("source", ""),
                    stream,
                    event.get("track_id"),
                    json.dumps(event, sort_keys=True),
                    None if shot_png is None else self.store.protect(shot_png, SHOT),
                    int(required),
                    iso(now),
                    iso(now + timedelta(seconds=self.ttl_s)),
                ),
            )
        self.audit.append(
            tenant=tenant,
            key_id=actor,
            action="alert_raised",
            gallery=public,
            candidates=[event["identity_id"]],
            decision={"alert": aid, "required": required, "source": event.get("source")},
        )
        return self.get(tenant, aid)

    # -- reading ------------------------------------------------------------------------------

    def _alert(self, row: tuple[Any, ...]) -> Alert:
        votes = tuple(
            (str(k), str(v), str(t))
            for k, v, t in self.store.fetch(
                "SELECT key_id, vote, at FROM alert_votes WHERE alert_id = ? ORDER BY at, key_id",
                (row[0],),
            )
        )
        event = json.loads(row[8])
        return Alert(
            id=row[0],
            tenant=row[1],
            gallery=row[2],
            identity_id=row[3],
            name=event.get("identity"),
            score=row[4],
            source=row[5],
            stream=row[6],
            track_id=row[7],
            required=int(row[9]),
            status=row[10],
            created_at=row[11],
            expires_at=row[12],
            decided_at=row[13],
            has_shot=bool(row[14]),
            votes=votes,
            event=event,
        )

    def get(self, tenant: str, alert_id: str) -> Alert:
        rows = self.store.fetch(
            f"SELECT {_COLS} FROM alerts WHERE id = ? AND tenant = ?", (alert_id, tenant)
        )
        if not rows:
            raise NotFoundError("alert", alert_id)
        return self._alert(rows[0])

    def pending(self, tenant: str, limit: int = 100) -> list[Alert]:
        """The tenant's alerts waiting for a decision, oldest first (expired ones are
        expired first)."""
        self.expire()
        rows = self.store.fetch(
            f"SELECT {_COLS} FROM alerts WHERE tenant = ? AND status = 'pending' "
            "ORDER BY created_at, id LIMIT ?",
            (tenant, limit),
        )
        return [self._alert(r) for r in rows]

    def shot(self, tenant: str, alert_id: str) -> bytes | None:
        """The best shot (PNG) of a pending alert; None once decided or expired."""
        self.get(tenant, alert_id)
        rows = self.store.fetch("SELECT shot FROM alerts WHERE id = ?", (alert_id,))
        return None if not rows or rows[0][0] is None else self.store.unprotect(rows[0][0], SHOT)

    # -- deciding -----------------------------------------------------------------------------

    def vote(
        self, tenant: str, alert_id: str, key_id: str, vote: str
    ) -> tuple[Alert, dict[str, Any] | None]:
        """Record ``key_id``'s ``confirm`` or ``reject``. Returns the alert and, when this
        vote was the last confirmation needed, the ``identified`` event to deliver now (to
        exactly one caller: the release happens in the vote's own transaction).

        Raises:
            ConflictError: the alert is no longer pending, or this key has voted on it.
        """
        if vote not in ("confirm", "reject"):
            raise InputError("vote", "a vote is confirm or reject")
        self.expire()
        now = iso(self.store.clock())
        released: dict[str, Any] | None = None
        with self.store.transaction(bump=False) as db:
            row = db.execute(
                "SELECT status, required, event, gallery FROM alerts WHERE id = ? AND tenant = ?",
                (alert_id, tenant),
            ).fetchone()
            if row is None:
                raise NotFoundError("alert", alert_id)
            if row[0] != "pending":
                raise ConflictError(f"alert {alert_id} is {row[0]}: it takes no more votes")
            if db.execute(
                "SELECT 1 FROM alert_votes WHERE alert_id = ? AND key_id = ?", (alert_id, key_id)
            ).fetchone():
                raise ConflictError(
                    "this key has already voted on the alert: a second person must confirm"
                )
            db.execute(
                "INSERT INTO alert_votes(alert_id, key_id, vote, at) VALUES (?, ?, ?, ?)",
                (alert_id, key_id, vote, now),
            )
            confirms = db.execute(
                "SELECT count(*) FROM alert_votes WHERE alert_id = ? AND vote = 'confirm'",
                (alert_id,),
            ).fetchone()[0]
            status = "pending"
            if vote == "reject":
                status = "rejected"
            elif int(confirms) >= int(row[1]):
                status = "confirmed"
                released = json.loads(row[2])
            if status != "pending":
                db.execute(
                    "UPDATE alerts SET status = ?, decided_at = ?, shot = NULL WHERE id = ?",
                    (status, now, alert_id),
                )
        alert = self.get(tenant, alert_id)
        self.audit.append(
            tenant=tenant,
            key_id=key_id,
            action=f"alert_{vote}",
            gallery=alert.gallery,
            candidates=[alert.identity_id],
            decision={
                "alert": alert_id,
                "status": status,
                "confirmed_by": [k for k, v, _ in alert.votes if v == "confirm"],
            },
        )
        return alert, released

    def expire(self) -> int:
        """Expire pending alerts past their time (their shots erased); each one audited."""
        now = iso(self.store.clock())
        due = self.store.fetch(
            "SELECT id, tenant, gallery, identity_id FROM alerts "
            "WHERE status = 'pending' AND expires_at <= ?",
            (now,),
        )
        for aid, tenant, gallery, iid in due:
            with self.store.transaction(bump=False) as db:
                n = db.execute(
                    "UPDATE alerts SET status = 'expired', decided_at = ?, shot = NULL "
                    "WHERE id = ? AND status = 'pending'",
                    (now, aid),
                ).rowcount
            if n:
                self.audit.append(
                    tenant=tenant,
                    key_id="service:alerts",
                    action="alert_expired",
                    gallery=gallery,
                    candidates=[iid],
                    decision={"alert": aid},
                )
        return len(due)

    def drop_shots(self) -> int:
        """Erase every pending alert's shot (a key rotation: they were sealed with the old
        key); the alerts stay to be decided without it."""
        with self.store.transaction(bump=False) as db:
            return int(
                db.execute(
                    "UPDATE alerts SET shot = NULL WHERE status = 'pending' AND shot IS NOT NULL"
                ).rowcount
            )
