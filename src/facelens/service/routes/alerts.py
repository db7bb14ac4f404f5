"""``/v1/alerts``: identifications in galleries set to ``confirm=2`` wait here until two
different keys confirm them (EU AI Act Art. 14(5)); only then does the ``identified`` event
reach the service's sinks and live clients. Either key may reject; unanswered alerts expire.
The best shot and the enrolled reference are shown here and nowhere else."""

from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response

from facelens.errors import NotFoundError
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import State, scope

router = gate.router(tags=["alerts"])

Confirmer = Annotated[ApiKey, scope("confirm")]
# alert ids are 16 hex digits: anything much longer is refused, not echoed back
AlertId = Annotated[str, Path(max_length=64)]


@router.get("/v1/alerts", response_model=list[S.AlertOut])
def pending(state: State, key: Confirmer) -> list[dict[str, Any]]:
    """This tenant's alerts waiting for confirmation, oldest first."""
    return [a.to_dict() for a in state.alerts.pending(key.tenant)]


@router.get("/v1/alerts/{alert_id}", response_model=S.AlertOut)
def alert(state: State, alert_id: AlertId, key: Confirmer) -> dict[str, Any]:
    return state.alerts.get(key.tenant, alert_id).to_dict()


@router.get("/v1/alerts/{alert_id}/shot", response_class=Response)
def shot(state: State, alert_id: AlertId, key: Confirmer) -> Response:
    """The track's best shot (PNG), while the alert is pending."""
    png = state.alerts.shot(key.tenant, alert_id)
    if png is None:
        raise NotFoundError("shot of alert", alert_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/v1/alerts/{alert_id}/reference", response_class=Response)
def reference(state: State, alert_id: AlertId, key: Confirmer) -> Response:
    """The enrolled reference (the first chip the gallery kept of the person, PNG), while
    the alert is pending; 404 when the gallery keeps no chips."""
    a = state.alerts.get(key.tenant, alert_id)
    if a.status != "pending":
        raise NotFoundError("reference of alert", alert_id)
    chips = state.store.chips(a.identity_id)
    if not chips:
        raise NotFoundError("reference of alert", alert_id)
    return Response(chips[0][1], media_type="image/png", headers={"Cache-Control": "no-store"})


def _vote(state: State, key: ApiKey, alert_id: str, vote: str) -> dict[str, Any]:
    a, released = state.alerts.vote(key.tenant, alert_id, key.id, vote)
    if released is not None:
        state.deliver(key.tenant, released | {"stream": a.stream, "alert": a.id})
    return a.to_dict()


@router.post("/v1/alerts/{alert_id}/confirm", response_model=S.AlertOut)
def confirm(state: State, alert_id: AlertId, key: Confirmer) -> dict[str, Any]:
    """This key confirms the identification; the second different key's confirmation
    releases the ``identified`` event to the sinks (409: already decided, or this key has
    voted)."""
    return _vote(state, key, alert_id, "confirm")


@router.post("/v1/alerts/{alert_id}/reject", response_model=S.AlertOut)
def reject(state: State, alert_id: AlertId, key: Confirmer) -> dict[str, Any]:
    """This key rejects the identification: nothing is ever sent."""
    return _vote(state, key, alert_id, "reject")
