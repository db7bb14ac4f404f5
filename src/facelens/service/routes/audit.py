"""``/v1/audit``: the tenant's audit records, and checking the hash chain."""

from typing import Annotated, Any

from fastapi import Query

from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import State, scope

router = gate.router(tags=["audit"])


@router.get("/v1/audit", response_model=list[S.AuditOut])
def audit(
    state: State,
    key: Annotated[ApiKey, scope("audit:read")],
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a database integer
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """This tenant's audit records, oldest first, after sequence number ``after``."""
    return [r.to_dict() for r in state.audit.records(key.tenant, after, limit)]


@router.get("/v1/audit/verify", response_model=S.ChainOut)
def audit_verify(state: State, key: Annotated[ApiKey, scope("audit:read")]) -> dict[str, Any]:
    """Check the whole hash chain (all tenants' records form one chain); ``checked`` counts
    this tenant's own records (the chain's length would tell others' activity)."""
    st = state.audit.verify()
    own = state.store.fetch("SELECT COUNT(*) FROM audit WHERE tenant = ?", (key.tenant,))
    return {
        "ok": st.ok,
        "checked": int(own[0][0]) if own else 0,
        "first_bad_seq": st.first_bad_seq,
        "problem": st.problem,
    }
