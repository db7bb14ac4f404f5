"""``/v1/govern``: the stop control - halt every identification of the tenant (identify
answers 423, streams stop within a second, new ones are refused) until an admin resumes."""

from typing import Annotated, Any

from fastapi import APIRouter

from facelens.govern.keys import ApiKey
from facelens.service import schemas as S
from facelens.service.deps import Key, State, scope

router = APIRouter(tags=["govern"])


@router.get("/v1/govern/status", response_model=S.StopOut)
def stop_status(state: State, key: Key) -> dict[str, Any]:
    """Whether this tenant's identifications are stopped."""
    return state.stop.status(key.tenant).to_dict()


@router.post("/v1/govern/stop", response_model=S.StopOut)
def stop(state: State, body: S.StopIn, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """Halt every identification of this tenant (audited)."""
    return state.stop.stop(key.tenant, by=f"key:{key.id}", reason=body.reason).to_dict()


@router.post("/v1/govern/resume", response_model=S.StopOut)
def resume(state: State, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """Let this tenant's identifications run again (audited)."""
    return state.stop.resume(key.tenant, by=f"key:{key.id}").to_dict()
