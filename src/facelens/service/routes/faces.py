"""``/v1/detect``, ``/v1/verify`` and ``/v1/galleries/{gallery}/identify``: faces in photos."""

from typing import Annotated, Any

import numpy as np
from fastapi import File, Form, UploadFile

from facelens.govern.keys import ApiKey
from facelens.match.thresholds import parse_threshold
from facelens.results import DetectResult, IdentifyResult, VerifyResult
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import (
    Gone,
    State,
    decode,
    governed_unless_stopped,
    image_bytes,
    rate_limited,
    reserve_images,
    scope,
)

router = gate.router(tags=["faces"])


@router.post("/v1/detect", response_model=S.DetectOut)
def detect(
    state: State,
    key: Annotated[ApiKey, scope("detect")],
    gone: Gone,
    image: Annotated[UploadFile | None, File()] = None,
    image_url: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Faces in an image, with quality measures and enrolment-gate reasons (what
    ``facelens detect --quality --json`` prints of it)."""
    p = state.pipeline
    data = image_bytes(state, image, image_url, "image")
    with reserve_images(state, [data]):
        img, _ = decode(state, data, gone)
        faces = p.align(img, p.detect(img))
        q = p.quality(img, faces)
    h, w = img.shape[:2]
    return DetectResult(w, h, faces, q, p.config.gate).to_dict()


@router.post("/v1/verify", response_model=S.VerifyOut)
def verify(
    state: State,
    key: Annotated[ApiKey, scope("verify")],
    gone: Gone,
    image_a: Annotated[UploadFile | None, File()] = None,
    image_b: Annotated[UploadFile | None, File()] = None,
    threshold: Annotated[str | None, Form(max_length=64)] = None,
    face_a: Annotated[
        int | None,
        Form(
            ge=0,
            le=1000,
            description="which face of image_a, left to right from 0 (default: the largest)",
        ),
    ] = None,
    face_b: Annotated[int | None, Form(ge=0, le=1000, description="which face of image_b")] = None,
) -> dict[str, Any]:
    """Are two faces the same person? By default each image's largest face; ``faces_a`` /
    ``faces_b`` list every face found, left to right, for choosing another (``face_a``,
    ``face_b``). What ``facelens verify --json`` prints."""
    p = state.pipeline
    datas = [
        image_bytes(state, image_a, None, "image_a"),
        image_bytes(state, image_b, None, "image_b"),
    ]
    views, hashes, chosen = [], [], []
    with reserve_images(state, datas):
        for data, name, n in zip(datas, ("image_a", "image_b"), (face_a, face_b), strict=True):
            img, meta = decode(state, data, gone, name)
            face_views, face = p.compared_face(img, n, name)
            del img
            views.append(face_views)
            chosen.append(face)
            hashes.append(meta.sha256)
    # both faces embedded in one call, batched with other requests' faces
    embs = state.inference.embed(
        {k: np.concatenate([x[k] for x in views]) for k in views[0]}, key.tenant
    )
    point = parse_threshold(threshold)
    v = p.verify(embs[0:1], embs[1:2], point)
    named = point if point is not None else p.config.verify_threshold
    result = VerifyResult(
        v, named if isinstance(named, str) else "custom", chosen[0], chosen[1]
    ).to_dict()
    rec = state.audit.append(
        tenant=key.tenant,
        key_id=key.id,
        action="verify",
        probe_sha256=",".join(hashes),
        threshold=v.threshold,
        model=v.model,
        decision={"same": v.same, "similarity": result["similarity"]},
    )
    return result | {"audit_seq": rec.seq}


@router.post(
    "/v1/galleries/{gallery}/identify",
    response_model=S.IdentifyOut,
    responses={
        429: {"model": S.ErrorOut},
        404: {"model": S.ErrorOut},
        423: {"model": S.ErrorOut},
    },
)
def identify(
    state: State,
    gallery: str,
    key: Annotated[ApiKey, scope("identify")],
    gone: Gone,
    image: Annotated[UploadFile | None, File()] = None,
    image_url: Annotated[str | None, Form()] = None,
    threshold: Annotated[str | None, Form(max_length=64)] = None,
    top_k: Annotated[int, Form(ge=1, le=20)] = 3,
) -> dict[str, Any]:
    """Who are the faces in this image (open set: unknown below the threshold)?

    Only decided identities are named. The candidate lists (who each face looks most like,
    identified or not) are given only to a key with the ``candidates`` scope, and the audit
    record says they were shown."""
    g = governed_unless_stopped(state, key, gallery, "identify")
    rate_limited(state, key)
    p, inference, notice = state.searcher(g)
    data = image_bytes(state, image, image_url, "image")
    with reserve_images(state, [data]):
        img, meta = decode(state, data, gone)
        faces = p.align(img, p.detect(img))
        views = p.views(img, faces) if len(faces) else None
        h, w = img.shape[:2]
        del img
    rule = g.rule(p.model, parse_threshold(threshold), p.calibrations)
    show = key.allows("candidates")
    found = g.identify_many(
        inference.embed(views, key.tenant) if views is not None else [],
        rule,
        top_k,
        probe_sha256=meta.sha256,
        candidates_shown=show,
        model=p.model,
    )
    rec = g.last_record
    assert rec is not None
    result = IdentifyResult(w, h, p.model, rule, faces, found, show, notice)
    return result.to_dict() | {"audit_seq": rec.seq}
