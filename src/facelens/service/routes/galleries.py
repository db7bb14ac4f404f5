"""``/v1/galleries``: a tenant's galleries, the people enrolled in them, their samples and
consent records, and erasure."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import File, Form, Query, Response, UploadFile
from numpy.typing import NDArray

from facelens.decode.image import ImageMeta
from facelens.gallery import Consent
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import (
    Gone,
    Key,
    State,
    decode,
    governed,
    image_bytes,
    override_reason,
    reserve_images,
    scope,
)
from facelens.service.errors import HttpError
from facelens.service.state import now_iso

router = gate.router()

IDENTITY = "/v1/galleries/{gallery}/identities/{identity_id}"


def _answers(state: State, key: ApiKey, name: str) -> dict[str, Any]:
    """Which templates a search of the tenant's gallery ``name`` uses, and why not the
    default's."""
    from facelens.embed.base import template_tag
    from facelens.errors import NoTemplatesError
    from facelens.gallery.held import search_config

    g = governed(state, key, name)
    if g.count() == 0:
        return {"answers_with": None, "notice": None}
    try:
        config, notice = search_config(state.pipeline.config, g, state.settings.model)
    except NoTemplatesError as e:
        return {"answers_with": None, "notice": str(e)}
    return {"answers_with": template_tag(config.embed, config.models), "notice": notice}


@router.get("/v1/galleries", response_model=list[S.GalleryOut], tags=["galleries"])
def galleries(state: State, key: Key) -> list[dict[str, Any]]:
    """This tenant's galleries, with the templates each one's searches use
    (``answers_with``; another recognizer's than the default when it holds no templates of
    the default, said in ``notice``)."""
    prefix = key.tenant + "/"
    return [
        {
            "name": name[len(prefix) :],
            "identities": state.store.count_identities(name),
            **_answers(state, key, name[len(prefix) :]),
        }
        for name in state.store.galleries()
        if name.startswith(prefix)
    ]


@router.post("/v1/galleries", response_model=S.GalleryOut, status_code=201, tags=["galleries"])
def create_gallery(
    state: State, body: S.GalleryIn, key: Annotated[ApiKey, scope("enroll")]
) -> dict[str, Any]:
    """Create a gallery (idempotent). ``confirm`` and ``keep_chips`` set its settings and
    need an admin key (``confirm: 2``: identifications wait for two people, /v1/alerts)."""
    changes = {
        k: v
        for k, v in (("confirm", body.confirm), ("keep_chips", body.keep_chips))
        if v is not None
    }
    if changes and not key.allows("admin"):
        raise HttpError(403, "forbidden", "changing a gallery's settings needs an admin key")
    g = governed(state, key, body.name, must_exist=False)
    settings = g.configure(**changes) if changes else g.settings()
    return {"name": body.name, "identities": g.count(), "settings": settings}


@router.get(
    "/v1/galleries/{gallery}/identities",
    response_model=list[S.IdentityOut],
    tags=["identities"],
)
def identities(
    state: State,
    gallery: str,
    key: Key,
    response: Response,
    after: Annotated[
        str | None, Query(max_length=200, description="last name of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """People enrolled in a gallery, by name, a page at a time: when there are more, the
    ``X-Next-After`` header holds the ``after`` of the next page."""
    now = datetime.now(UTC)
    page = governed(state, key, gallery).identities(after, limit + 1)
    if len(page) > limit:
        page = page[:limit]
        response.headers["X-Next-After"] = quote(page[-1].name)
    return [i.to_dict(now) for i in page]


@router.post(
    "/v1/galleries/{gallery}/identities",
    response_model=S.EnrollOut,
    status_code=201,
    tags=["identities"],
)
def enroll(
    state: State,
    gallery: str,
    key: Annotated[ApiKey, scope("enroll")],
    gone: Gone,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    images: Annotated[list[UploadFile], File()],
    consent_purpose: Annotated[str | None, Form(max_length=500)] = None,
    consent_granted_by: Annotated[str | None, Form(max_length=200)] = None,
    consent_expires_at: Annotated[str | None, Form(max_length=64)] = None,
    override_face_check: Annotated[str | None, Form(min_length=1, max_length=500)] = None,
) -> dict[str, Any]:
    """Enrol a person (or add samples) from uploaded photos, with their consent.

    A new identity needs ``consent_purpose`` and ``consent_granted_by``. Each photo's
    primary face must pass the quality gate; the others are listed as rejected. Photos added
    to an enrolled person must match their templates at the model's strict threshold, or the
    whole request is refused (409 ``identity_mismatch``); ``override_face_check`` (the reason;
    the key needs the ``enroll:override`` scope) adds them anyway, audited
    ``enroll_override``. A new name that looks like another person's is a 409 too.
    """
    override = override_reason(key, override_face_check)
    # the request is checked before its gallery is created: a refused enrolment leaves
    # nothing behind
    if not images or len(images) > 20:
        raise HttpError(400, "bad_input", "send 1 to 20 images")
    if (consent_purpose or consent_granted_by) and not (consent_purpose and consent_granted_by):
        raise HttpError(400, "bad_input", "consent needs both purpose and granted_by")
    consent = None
    if consent_purpose and consent_granted_by:
        consent = Consent(
            purpose=consent_purpose,
            granted_by=consent_granted_by,
            granted_at=now_iso(),
            expires_at=consent_expires_at or None,
            recorded_by=f"key:{key.id}",
        )
    datas = [image_bytes(state, f, None, f.filename or "image") for f in images]

    def sandboxed(data: str | Path | bytes) -> tuple[NDArray[np.uint8], ImageMeta]:
        assert isinstance(data, bytes)  # uploads only: nothing a caller sends names a file
        return decode(state, data, gone)

    with reserve_images(state, datas, each_may_fail=True):
        g = governed(state, key, gallery, must_exist=False)
        report = g.enroll(state.pipeline, name, datas, consent, decode=sandboxed, override=override)
    r = report.result
    rejected = [
        {
            "image": (images[i].filename or f"image {i + 1}"),
            "reasons": list(getattr(e, "reasons", ())) or [getattr(e, "reason", "")],
        }
        for i, e in zip(report.rejected_at, report.rejected, strict=True)
    ]
    rec = g.last_record
    assert rec is not None
    return {
        "identity": r.identity.to_dict(datetime.now(UTC)),
        "created": r.created,
        "added": r.images,
        "duplicates": r.duplicates,
        "rejected": rejected,
        "audit_seq": rec.seq,
    }


@router.get(
    IDENTITY,
    response_model=S.IdentityOut,
    tags=["identities"],
    responses={404: {"model": S.ErrorOut}},
)
def get_identity(state: State, gallery: str, identity_id: str, key: Key) -> dict[str, Any]:
    return governed(state, key, gallery).get(identity_id).to_dict(datetime.now(UTC))


@router.patch(
    IDENTITY,
    response_model=S.IdentityOut,
    tags=["identities"],
    responses={404: {"model": S.ErrorOut}, 409: {"model": S.ErrorOut}},
)
def patch_identity(
    state: State,
    gallery: str,
    identity_id: str,
    body: S.IdentityPatch,
    key: Annotated[ApiKey, scope("enroll")],
) -> dict[str, Any]:
    """Rename (names are unique in a gallery; audited)."""
    g = governed(state, key, gallery)
    ident = g.get(identity_id) if body.name is None else g.rename(identity_id, body.name)
    return ident.to_dict(datetime.now(UTC))


@router.delete(
    IDENTITY,
    response_model=S.ReceiptOut,
    tags=["identities"],
    responses={404: {"model": S.ErrorOut}},
)
def delete_identity(
    state: State, gallery: str, identity_id: str, key: Annotated[ApiKey, scope("delete")]
) -> dict[str, Any]:
    """Erase a person: every sample, consent record and index entry. The receipt is
    itself recorded in the audit trail."""
    g = governed(state, key, gallery)
    receipt, rec = g.delete(identity_id)
    return receipt.to_dict() | {"audit_seq": rec.seq, "audit_hash": rec.hash}


@router.get(IDENTITY + "/samples", response_model=list[S.SampleOut], tags=["identities"])
def samples(state: State, gallery: str, identity_id: str, key: Key) -> list[dict[str, Any]]:
    """An identity's samples with their quality (never their embeddings)."""
    return [s.to_dict() for s in governed(state, key, gallery).samples(identity_id)]


@router.get(IDENTITY + "/consents", response_model=list[S.ConsentOut], tags=["identities"])
def consents(state: State, gallery: str, identity_id: str, key: Key) -> list[dict[str, Any]]:
    return [c.to_dict() for c in governed(state, key, gallery).get(identity_id).consents]


@router.post(
    IDENTITY + "/consents",
    response_model=S.IdentityOut,
    status_code=201,
    tags=["identities"],
)
def add_consent(
    state: State,
    gallery: str,
    identity_id: str,
    body: S.ConsentIn,
    key: Annotated[ApiKey, scope("enroll")],
) -> dict[str, Any]:
    """Record a new (or renewed) consent (audited ``consent_added``)."""
    g = governed(state, key, gallery)
    c = Consent(
        purpose=body.purpose,
        granted_by=body.granted_by,
        granted_at=now_iso(),
        expires_at=body.expires_at,
        recorded_by=f"key:{key.id}",
    )
    return g.add_consent(identity_id, c).to_dict(datetime.now(UTC))


@router.post(IDENTITY + "/consents/withdraw", response_model=S.IdentityOut, tags=["identities"])
def withdraw_consent(
    state: State, gallery: str, identity_id: str, key: Annotated[ApiKey, scope("enroll")]
) -> dict[str, Any]:
    """The person withdraws consent: every running consent ends now, search stops naming
    them at once, and the next retention purge erases them after the gallery's grace period
    (default 0 days). Audited ``consent_withdrawn``."""
    return governed(state, key, gallery).withdraw_consent(identity_id).to_dict(datetime.now(UTC))
