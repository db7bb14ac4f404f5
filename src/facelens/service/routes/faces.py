"""``/v1/detect``, ``/v1/verify`` and ``/v1/galleries/{gallery}/identify``: faces in photos."""

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile

from facelens.errors import EnrollmentError
from facelens.govern.keys import ApiKey
from facelens.match.thresholds import parse_threshold
from facelens.service import schemas as S
from facelens.service.deps import (
    State,
    decode,
    governed,
    image_bytes,
    not_stopped,
    rate_limited,
    reserve_images,
    scope,
)

router = APIRouter(tags=["faces"])


def _r2(v: float) -> float:
    return round(float(v), 2)


@router.post("/v1/detect", response_model=S.DetectOut)
def detect(
    state: State,
    key: Annotated[ApiKey, scope("detect")],
    image: Annotated[UploadFile | None, File()] = None,
    image_url: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Faces in an image, with quality measures and enrolment-gate reasons."""
    p = state.pipeline
    data = image_bytes(state, image, image_url, "image")
    with reserve_images(state, [data]):
        img, _ = decode(state, data)
        faces = p.align(img, p.detect(img))
        q = p.quality(img, faces)
    h, w = img.shape[:2]
    return {
        "width": w,
        "height": h,
        "faces": [
            {
                "box": [_r2(v) for v in faces.clip(w, h).xyxy[i]],
                "score": _r2(faces.score[i]),
                "quality": {k: _r2(v) for k, v in q.row(i).items()},
                "gate": p.config.gate.reasons(q, i),
            }
            for i in range(len(faces))
        ],
    }


@router.post("/v1/verify", response_model=S.VerifyOut)
def verify(
    state: State,
    key: Annotated[ApiKey, scope("verify")],
    image_a: Annotated[UploadFile | None, File()] = None,
    image_b: Annotated[UploadFile | None, File()] = None,
    threshold: Annotated[str | None, Form(max_length=64)] = None,
) -> dict[str, Any]:
    """Are the primary faces of two images the same person?"""
    p = state.pipeline
    datas = [
        image_bytes(state, image_a, None, "image_a"),
        image_bytes(state, image_b, None, "image_b"),
    ]
    views, hashes = [], []
    with reserve_images(state, datas):
        for data, name in zip(datas, ("image_a", "image_b"), strict=True):
            img, meta = decode(state, data)
            primary = p.primary_views(img)
            del img
            if primary is None:
                raise EnrollmentError(name, ["no_face"])
            views.append(primary)
            hashes.append(meta.sha256)
    # both faces embedded in one call, batched with other requests' faces
    embs = state.inference.embed({k: np.concatenate([x[k] for x in views]) for k in views[0]})
    v = p.verify(embs[0:1], embs[1:2], parse_threshold(threshold))
    rec = state.audit.append(
        tenant=key.tenant,
        key_id=key.id,
        action="verify",
        probe_sha256=",".join(hashes),
        threshold=v.threshold,
        model=v.model,
        decision={"same": v.same, "similarity": _r2(v.similarity)},
    )
    return {
        "same": v.same,
        "similarity": _r2(v.similarity),
        "threshold": _r2(v.threshold),
        "model": v.model,
        "audit_seq": rec.seq,
    }


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
    image: Annotated[UploadFile | None, File()] = None,
    image_url: Annotated[str | None, Form()] = None,
    threshold: Annotated[str | None, Form(max_length=64)] = None,
    top_k: Annotated[int, Form(ge=1, le=20)] = 3,
) -> dict[str, Any]:
    """Who are the faces in this image (open set: unknown below the threshold)?

    Only decided identities are named. The candidate lists (who each face looks most like,
    identified or not) are given only to a key with the ``candidates`` scope, and the audit
    record says they were shown."""
    not_stopped(state, key.tenant)
    rate_limited(state, key)
    g = governed(state, key, gallery)
    p, inference, notice = state.searcher(g.gallery)
    data = image_bytes(state, image, image_url, "image")
    with reserve_images(state, [data]):
        img, meta = decode(state, data)
        faces = p.align(img, p.detect(img))
        views = p.views(img, faces) if len(faces) else None
        h, w = img.shape[:2]
        del img
    rule = g.gallery.rule(p.model, parse_threshold(threshold))
    show = key.allows("candidates")
    found = g.identify_many(
        inference.embed(views) if views is not None else [],
        rule,
        top_k,
        probe_sha256=meta.sha256,
        candidates_shown=show,
        model=p.model,
    )
    answers = [
        {
            "box": [_r2(v) for v in faces.clip(w, h).xyxy[i]],
            "identity": None
            if r.identity is None
            else {
                "identity_id": r.identity.identity_id,
                "name": r.identity.name,
                "score": _r2(r.identity.score),
            },
            "candidates": [
                {"identity_id": c.identity_id, "name": c.name, "score": _r2(c.score)}
                for c in r.candidates
            ]
            if show
            else [],
            "decision_score": None if r.decision_score is None else _r2(r.decision_score),
        }
        for i, r in enumerate(found)
    ]
    rec = g.last_record
    assert rec is not None
    return {
        "width": w,
        "height": h,
        "threshold": _r2(rule.threshold),
        "rule": {
            "name": rule.name,
            "normalised": rule.normalised,
            "cohort": rule.cohort,
            "weight": rule.weight,
        },
        "model": p.model,
        "notice": notice,
        "faces": answers,
        "audit_seq": rec.seq,
    }
