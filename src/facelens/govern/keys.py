"""API keys bound to a tenant, with scopes, stored hashed.

A key reads ``fl_<id>_<secret>``: the id finds the row, the secret (32 random bytes) is
checked against ``HMAC-SHA256(salt, secret)``. Only the hash is stored; the key is shown once
when created. Given the audit trail, creating and revoking a key are audited
(``key_created``, ``key_revoked``: which key, its scopes, by whom).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from facelens.errors import ConflictError, InputError, NotFoundError
from facelens.gallery.contract import Tables
from facelens.govern.schema import ensure_schema
from facelens.text import check_text

if TYPE_CHECKING:
    from facelens.govern.audit import AuditLog

__all__ = ["SCOPES", "ApiKey", "KeyStore"]

# "candidates": see the top candidates of a face that was not identified (a stranger's
# "looks like X at 0.80"): a non-match an operator could act on, so it is a scope of its own.
# "confirm": vote on the alerts of galleries that want two people to confirm a match.
# "enroll:override": add faces to an enrolled person although they do not match the
# person's templates (facelens.govern.integrity), with a reason; never implied by "enroll".
SCOPES = (
    "detect",
    "enroll",
    "enroll:override",
    "verify",
    "identify",
    "candidates",
    "confirm",
    "delete",
    "audit:read",
    "admin",
)


@dataclass(frozen=True)
class ApiKey:
    """A key's identity and rights (never its secret)."""

    id: str
    tenant: str
    name: str
    scopes: frozenset[str]
    created_at: str
    revoked_at: str | None = None

    def allows(self, scope: str) -> bool:
        """``admin`` holds every scope of its tenant."""
        return scope in self.scopes or "admin" in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """The key as the CLI and the API show it (never its secret)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _hash(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


class KeyStore:
    """Keys in the facelens store (the gallery's SQLite file); with ``audit``, every key
    created or revoked is recorded there, ``by`` whom."""

    def __init__(self, store: Tables, audit: AuditLog | None = None) -> None:
        self.store, self.audit = store, audit
        ensure_schema(store)

    def create(
        self, tenant: str, scopes: list[str], name: str = "", by: str = "unknown"
    ) -> tuple[ApiKey, str]:
        """A new key; returns it and the full key string (shown once, never stored)."""
        tenant = tenant.strip()
        if not tenant or "/" in tenant:
            raise InputError("tenant", "a tenant name is needed (no '/')")
        name = check_text(name, "key name", 200)
        bad = sorted(set(scopes) - set(SCOPES))
        if bad or not scopes:
            raise InputError(
                "scopes",
                f"unknown scope(s) {bad}; known: {', '.join(SCOPES)}"
                if bad
                else "at least one scope is needed",
            )
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.store.transaction(bump=False) as db:
            if db.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone():
                raise ConflictError("key id collision; try again")
            db.execute(
                "INSERT INTO api_keys(id, tenant, name, salt, hash, scopes, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    tenant,
                    name,
                    salt,
                    _hash(salt, secret),
                    ",".join(sorted(set(scopes))),
                    now,
                ),
            )
        key = ApiKey(key_id, tenant, name, frozenset(scopes), now)
        if self.audit is not None:
            self.audit.append(
                tenant=tenant,
                key_id=by,
                action="key_created",
                decision={"key": key_id, "name": name, "scopes": sorted(set(scopes))},
            )
        return key, f"fl_{key_id}_{secret}"

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key a presented string belongs to, or None (unknown, wrong or revoked)."""
        parts = presented.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != "fl":
            return None
        key_id, secret = parts[1], parts[2]
        rows = self.store.fetch(
            "SELECT id, tenant, name, salt, hash, scopes, created_at, revoked_at "
            "FROM api_keys WHERE id = ?",
            (key_id,),
        )
        row = rows[0] if rows else None
        if row is None or row[7] is not None:
            return None
        if not hmac.compare_digest(_hash(row[3], secret), row[4]):
            return None
        return ApiKey(row[0], row[1], row[2], frozenset(row[5].split(",")), row[6])

    def _rows(self, where: str, params: tuple[Any, ...]) -> list[ApiKey]:
        rows = self.store.fetch(
            "SELECT id, tenant, name, scopes, created_at, revoked_at FROM api_keys "
            f"{where} ORDER BY created_at, id",
            params,
        )
        return [ApiKey(r[0], r[1], r[2], frozenset(r[3].split(",")), r[4], r[5]) for r in rows]

    def get(self, key_id: str, tenant: str | None = None) -> ApiKey:
        """A key by id (of ``tenant`` only, when given: another tenant's is not found)."""
        found = [k for k in self._rows("WHERE id = ?", (key_id,)) if tenant in (None, k.tenant)]
        if not found:
            raise NotFoundError("key", key_id)
        return found[0]

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant:
            return self._rows("WHERE tenant = ?", (tenant,))
        return self._rows("", ())

    def revoke(self, key_id: str, by: str = "unknown", tenant: str | None = None) -> ApiKey:
        """Revoke a key (of ``tenant`` only, when given); a revoked key is not found."""
        key = self.get(key_id, tenant)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.store.transaction(bump=False) as db:
            n = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            ).rowcount
        if n == 0:
            raise NotFoundError("key", key_id)
        if self.audit is not None:
            self.audit.append(
                tenant=key.tenant,
                key_id=by,
                action="key_revoked",
                decision={"key": key_id, "name": key.name, "scopes": sorted(key.scopes)},
            )
        return ApiKey(key.id, key.tenant, key.name, key.scopes, key.created_at, now)
