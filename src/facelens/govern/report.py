"""The privacy report: per gallery, the facts a data-protection impact assessment (GDPR Art. 35)
needs - what is stored, consent status, retention deadlines and pending purges, and who
searched how often.

Example:
    >>> from facelens.gallery import SqliteStore
    >>> store = SqliteStore(":memory:")
    >>> privacy_report(store)["galleries"]
    []
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from facelens.gallery.contract import GalleryStore
from facelens.gallery.records import iso
from facelens.govern.audit import AuditLog
from facelens.govern.names import split_gallery_key
from facelens.govern.retention import Retention

__all__ = ["privacy_report"]

SEARCHES = ("identify", "stream_start", "redact_start")


def privacy_report(
    store: GalleryStore, tenant: str | None = None, days: int = 30, soon_days: int = 30
) -> dict[str, Any]:
    """The report for every gallery of ``store`` (or of one tenant's).

    Args:
        tenant: only this tenant's galleries (the command line's own are tenant ``default``).
        days: searches are counted per key and day over this many days.
        soon_days: consents ending within this many days are counted as ``ending_soon``.
    """
    retention = Retention(store, AuditLog(store))
    now = store.clock()
    at = iso(now)
    soon = iso(now + timedelta(days=soon_days))
    since = iso(now - timedelta(days=days))
    sealed = store.encrypted()
    out = []
    for stored in store.galleries():
        owner, name = split_gallery_key(stored)
        if tenant is not None and owner != tenant:
            continue
        consent = {"valid": 0, "ending_soon": 0, "ended": 0, "no_end": 0}
        people = chips = 0
        deadlines = []
        for ident, due in retention.deadlines(stored):
            people += 1
            chips += ident.chips
            ends = [c.expires_at for c in ident.consents]
            if any(c.valid_at(now) for c in ident.consents):
                consent["valid"] += 1
                if any(e is None for e in ends):
                    consent["no_end"] += 1
                elif max(str(e) for e in ends) <= soon:
                    consent["ending_soon"] += 1
            else:
                consent["ended"] += 1
            deadlines.append(due)
        deadlines.sort(key=lambda d: d.due_at)
        pending = [d for d in deadlines if d.due_at <= at]
        out.append(
            {
                "tenant": owner,
                "gallery": name,
                "people": people,
                "templates": {m: n for m, (_, n) in store.models(stored).items()},
                "chips": chips,
                "keeps_chips": bool(store.gallery_settings(stored)["keep_chips"]),
                "templates_sealed": sealed,
                "templates_transformed": store.transformed(stored),
                "consent": consent,
                "retention": asdict(retention.policy(stored)),
                "next_deadlines": [d.to_dict() for d in deadlines if d.due_at > at][:10],
                "pending_purges": [d.to_dict() for d in pending],
                "searches": _searches(store, owner, name, since),
            }
        )
    return {
        "generated_at": at,
        "days": days,
        "templates_sealed": sealed,
        "key_id": store.key_id() if sealed else None,
        "galleries": out,
    }


def _searches(store: GalleryStore, tenant: str, gallery: str, since: str) -> list[dict[str, Any]]:
    """Searches of a gallery per key and day since ``since`` (identifications, and the starts
    of watches and of redactions that search it)."""
    marks = ",".join("?" * len(SEARCHES))
    rows = store.fetch(
        "SELECT substr(time, 1, 10) AS day, key_id, action, count(*) FROM audit "
        f"WHERE tenant = ? AND gallery = ? AND time >= ? AND action IN ({marks}) "
        "GROUP BY day, key_id, action ORDER BY day, key_id, action",
        (tenant, gallery, since[:10], *SEARCHES),
    )
    return [{"day": r[0], "key": r[1], "action": r[2], "count": int(r[3])} for r in rows]
