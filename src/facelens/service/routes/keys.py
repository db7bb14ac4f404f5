"""``/v1/keys``: the tenant's API keys (admin): list, create (the key shown once), revoke; and
``/v1/keys/me``, what the caller's own key may do (the web UI shows what it allows). Keys
are stored hashed; creating and revoking one is audited."""

from typing import Annotated, Any

from fastapi import Path, Response

from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import Key, State, scope
from facelens.service.errors import HttpError

router = gate.router(tags=["keys"])

Admin = Annotated[ApiKey, scope("admin")]
KeyId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


def _out(k: ApiKey, caller: ApiKey) -> dict[str, Any]:
    return k.to_dict() | {"current": k.id == caller.id}


@router.get("/v1/keys/me", response_model=S.KeyOut)
def me(key: Key) -> dict[str, Any]:
    """The key this request was made with: its tenant, name and scopes."""
    return _out(key, key)


@router.get("/v1/keys", response_model=list[S.KeyOut])
def keys(state: State, key: Admin) -> list[dict[str, Any]]:
    """This tenant's keys, revoked ones included, oldest first (never their secrets)."""
    return [_out(k, key) for k in state.keys.list(key.tenant)]


@router.post("/v1/keys", response_model=S.NewKeyOut, status_code=201)
def create(state: State, body: S.KeyIn, key: Admin, response: Response) -> dict[str, Any]:
    """A new key of this tenant with these scopes; the answer holds the key itself, which
    is never shown again (audited ``key_created``)."""
    new, secret = state.keys.create(key.tenant, body.scopes, body.name.strip(), by=key.id)
    response.headers["Cache-Control"] = "no-store"
    return {"key": _out(new, key), "secret": secret}


@router.delete("/v1/keys/{key_id}", response_model=S.KeyOut)
def revoke(state: State, key_id: KeyId, key: Admin) -> dict[str, Any]:
    """Revoke a key of this tenant: it stops working at once (audited ``key_revoked``). The
    key of this request cannot revoke itself: sign in with another admin key to replace
    it, so the tenant is never left without one."""
    if key_id == key.id:
        raise HttpError(
            409,
            "conflict",
            "this is the key you are using: create another admin key, sign in with it, "
            "then revoke this one",
        )
    return _out(state.keys.revoke(key_id, by=key.id, tenant=key.tenant), key)
