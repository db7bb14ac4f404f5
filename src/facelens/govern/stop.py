"""The stop control (EU AI Act Art. 14(4)(e)): an operator halts every identification of a
tenant - live streams stop, identify requests are refused - until someone resumes it. Both
are audited; the state lives in the store, so every worker process and command sees it.

Example:
    >>> from facelens.gallery import SqliteStore
    >>> from facelens.govern import AuditLog
    >>> store = SqliteStore(":memory:")
    >>> stop = StopControl(store, AuditLog(store))
    >>> stop.stop("acme", by="key:k1", reason="drill").stopped
    True
    >>> stop.status("acme").reason, stop.status("globex").stopped
    ('drill', False)
    >>> stop.resume("acme", by="key:k1").stopped
    False
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from facelens.errors import InputError
from facelens.gallery.contract import Tables
from facelens.govern.audit import AuditLog
from facelens.govern.schema import ensure_schema
from facelens.text import check_text

__all__ = ["StopControl", "StopStatus"]


@dataclass(frozen=True)
class StopStatus:
    """Whether a tenant's identifications are halted, since when, by whom and why."""

    tenant: str
    stopped: bool
    at: str | None = None
    by: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "stopped": self.stopped,
            "at": self.at,
            "by": self.by,
            "reason": self.reason,
        }


class StopControl:
    """Halt and resume a tenant's identifications (see the module)."""

    def __init__(self, store: Tables, audit: AuditLog) -> None:
        self.store, self.audit = store, audit
        ensure_schema(store)

    @staticmethod
    def _key(tenant: str) -> str:
        if not tenant or len(tenant) > 200:
            raise InputError("tenant", "a tenant name is 1-200 characters")
        return f"stop:{tenant}"

    def status(self, tenant: str) -> StopStatus:
        rows = self.store.fetch(
            "SELECT value FROM govern_state WHERE key = ?", (self._key(tenant),)
        )
        if not rows:
            return StopStatus(tenant, False)
        d = json.loads(str(rows[0][0]))
        return StopStatus(tenant, True, d.get("at"), d.get("by"), d.get("reason", ""))

    def stop(self, tenant: str, by: str, reason: str = "") -> StopStatus:
        """Halt ``tenant``'s identifications (idempotent; the first stop's time is kept)."""
        reason = check_text(reason, "reason", 500)  # echoed in every refusal: plain text
        current = self.status(tenant)
        if current.stopped:
            return current
        at = datetime.now(UTC).isoformat(timespec="seconds")
        value = json.dumps({"at": at, "by": by, "reason": reason})
        with self.store.transaction(bump=False) as db:
            db.execute(
                "INSERT INTO govern_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (self._key(tenant), value),
            )
        self.audit.append(
            tenant=tenant, key_id=by, action="stop", decision={"reason": reason, "at": at}
        )
        return StopStatus(tenant, True, at, by, reason)

    def resume(self, tenant: str, by: str) -> StopStatus:
        """Let ``tenant``'s identifications run again (idempotent)."""
        current = self.status(tenant)
        if not current.stopped:
            return current
        with self.store.transaction(bump=False) as db:
            db.execute("DELETE FROM govern_state WHERE key = ?", (self._key(tenant),))
        self.audit.append(
            tenant=tenant,
            key_id=by,
            action="resume",
            decision={"stopped_at": current.at, "stopped_by": current.by},
        )
        return StopStatus(tenant, False)
