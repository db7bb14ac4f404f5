"""govern: who may do what (API keys and scopes), and the audit trail of what was done.

The audit trail is hash-chained: each record's hash covers its fields and the previous
record's hash, so editing, deleting or reordering any record breaks the chain at that
record (``AuditLog.verify``). ``StopControl`` halts a tenant's identifications until resumed;
``Retention`` erases people a gallery may no longer keep.
"""

from facelens.govern.audit import AuditLog, AuditRecord, ChainStatus
from facelens.govern.governed import GovernedGallery
from facelens.govern.keys import SCOPES, ApiKey, KeyStore
from facelens.govern.retention import PurgeResult, Retention, RetentionPolicy
from facelens.govern.stop import StopControl, StopStatus

__all__ = [
    "SCOPES",
    "ApiKey",
    "AuditLog",
    "AuditRecord",
    "ChainStatus",
    "GovernedGallery",
    "KeyStore",
    "PurgeResult",
    "Retention",
    "RetentionPolicy",
    "StopControl",
    "StopStatus",
]
