"""``/v1/govern``: the stop control - halt every identification of the tenant (identify
answers 423, streams stop within a second, new ones are refused) until an admin resumes - and
retention: each gallery's policy, and the purge that enforces it."""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Query

from facelens.govern.keys import ApiKey
from facelens.govern.names import split_gallery_key
from facelens.govern.retention import Retention, RetentionPolicy
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import Key, State, governed, scope
from facelens.service.state import ServiceState

router = gate.router(tags=["govern"])


@router.get("/v1/govern/status", response_model=S.StopOut)
def stop_status(state: State, key: Key) -> dict[str, Any]:
    """Whether this tenant's identifications are stopped."""
    return state.stop.status(key.tenant).to_dict()


@router.post("/v1/govern/stop", response_model=S.StopOut)
def stop(state: State, body: S.StopIn, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """Halt every identification of this tenant (audited)."""
    return state.stop.stop(key.tenant, by=key.id, reason=body.reason).to_dict()


@router.post("/v1/govern/resume", response_model=S.StopOut)
def resume(state: State, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """Let this tenant's identifications run again (audited)."""
    return state.stop.resume(key.tenant, by=key.id).to_dict()


# -- retention -------------------------------------------------------------------------------


def _retention(state: ServiceState) -> Retention:
    return Retention(state.store, state.audit)


@router.get("/v1/galleries/{gallery}/retention", response_model=S.RetentionOut)
def get_retention(state: State, gallery: str, key: Key) -> dict[str, Any]:
    """The gallery's retention policy and the next ten people it will make due."""
    stored = governed(state, key, gallery).stored_name
    r = _retention(state)
    upcoming = sorted((d for _, d in r.deadlines(stored)), key=lambda d: d.due_at)
    return {
        "gallery": gallery,
        "policy": asdict(r.policy(stored)),
        "next_deadlines": [d.to_dict() for d in upcoming[:10]],
    }


@router.put("/v1/galleries/{gallery}/retention", response_model=S.RetentionOut)
def put_retention(
    state: State,
    gallery: str,
    body: S.RetentionPolicyIO,
    key: Annotated[ApiKey, scope("admin")],
) -> dict[str, Any]:
    """Change the gallery's retention policy (audited ``retention_policy``)."""
    _retention(state).set_policy(
        governed(state, key, gallery).stored_name,
        RetentionPolicy(body.max_idle_days, body.consent_grace_days),
        key.id,
    )
    return get_retention(state, gallery, key)


@router.post("/v1/govern/purge", response_model=S.PurgeOut)
def purge(
    state: State,
    key: Annotated[ApiKey, scope("admin")],
    dry_run: Annotated[bool, Query(description="only list who is due")] = False,
) -> dict[str, Any]:
    """Erase everyone this tenant's retention policies make due now (the service also does
    this every ``--purge-interval``); each erasure is a ``purge`` record in the audit trail."""
    mine = [g for g in state.store.galleries() if split_gallery_key(g)[0] == key.tenant]
    return _retention(state).purge(key.id, dry_run=dry_run, galleries=mine).to_dict()


@router.get("/v1/govern/report", response_model=S.PrivacyReportOut)
def report(
    state: State,
    key: Annotated[ApiKey, scope("admin")],
    days: Annotated[int, Query(ge=1, le=3660)] = 30,
) -> dict[str, Any]:
    """This tenant's privacy report: per gallery, what is stored, consent status, retention
    deadlines and pending purges, searches per key and day."""
    from facelens.govern.report import privacy_report

    return privacy_report(state.store, tenant=key.tenant, days=days)
