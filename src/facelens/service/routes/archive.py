"""``/v1/galleries/{gallery}/clusters`` and ``/faces``: the faces in the owner's photos
(indexed with ``facelens index``), grouped without names; corrections; naming a group as an
enrolment with consent; thumbnails and photos of indexed faces."""

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import Path, Query, Response
from numpy.typing import NDArray

from facelens.archive.pictures import face_photo, face_thumbnail
from facelens.cluster import ClusterConfig, Clusterer
from facelens.decode.cost import DecodeCost
from facelens.errors import NotFoundError
from facelens.gallery import Consent
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import (
    Gone,
    State,
    decode,
    governed,
    override_reason,
    reserve,
    reserve_images,
    scope,
)
from facelens.service.limits import image_cost

router = gate.router(tags=["archive"])

ID = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")]
Reader = Annotated[ApiKey, scope("identify")]
Editor = Annotated[ApiKey, scope("enroll")]
PREVIEW = 6  # faces shown per cluster in the list


# Grouping runs in the request: at most this many faces (about 10 s on 2 cores); larger
# archives are grouped with `facelens cluster` and corrected here.
MAX_FACES = 20_000


def _clusterer(state: State, key: ApiKey, gallery: str) -> Clusterer:
    archive = governed(state, key, gallery).archive()
    config = ClusterConfig(max_faces=MAX_FACES)
    return Clusterer(archive, config, calibrations=state.pipeline.calibrations)


def _listing(c: Clusterer) -> list[dict[str, Any]]:
    where = c.archive.assignments()
    members: dict[str, list[str]] = {}
    for face, cluster in where.items():
        members.setdefault(cluster, []).append(face)
    faces = {f.id: f for f in c.archive.faces(list(where))}
    out: list[dict[str, Any]] = []
    for cid, ids in members.items():
        fs = sorted((faces[i] for i in ids if i in faces), key=lambda f: (f.path, f.box[0]))
        out.append(
            {
                "id": cid,
                "faces": len(fs),
                "photos": len({f.path for f in fs}),
                "preview": [f.id for f in fs[:PREVIEW]],
            }
        )
    out.sort(key=lambda x: (-x["faces"], x["id"]))
    return out


@router.get("/v1/galleries/{gallery}/clusters", response_model=S.ClustersOut)
def clusters(
    state: State,
    gallery: str,
    key: Reader,
    refresh: Annotated[bool, Query(description="group the faces again first")] = False,
) -> dict[str, Any]:
    """The groups of faces of people not enrolled, largest first (as last grouped and
    corrected; ``refresh``: grouped again now, the faces of enrolled people set aside by an
    audited search)."""
    c = _clusterer(state, key, gallery)
    summary = c.archive.summary()
    if refresh or (summary["faces"] and c.archive.grouped_at() is None):
        g = governed(state, key, gallery)
        g.refuse_if_stopped()  # grouping searches the enrolled people
        c.run(g)
    return {"archive": summary, "clusters": _listing(c)}


@router.get("/v1/galleries/{gallery}/clusters/{cluster}", response_model=S.ClusterOut)
def cluster(state: State, gallery: str, cluster: ID, key: Reader) -> dict[str, Any]:
    """A group's faces and the photos they are in."""
    c = _clusterer(state, key, gallery)
    faces = c.archive.faces(c.members(cluster))
    return {
        "id": cluster,
        "faces": [f.to_dict() for f in faces],
        "photos": sorted({f.path for f in faces}),
    }


@router.post("/v1/galleries/{gallery}/clusters/merge", response_model=S.ClusterRef)
def merge(state: State, gallery: str, body: S.MergeIn, key: Editor) -> dict[str, Any]:
    """Two groups are one person (kept for every later grouping)."""
    return {"id": _clusterer(state, key, gallery).merge(body.a, body.b)}


@router.post("/v1/galleries/{gallery}/clusters/{cluster}/split", response_model=S.SplitOut)
def split(state: State, gallery: str, cluster: ID, body: S.SplitIn, key: Editor) -> dict[str, Any]:
    """These faces of the group are another person than the rest (kept)."""
    rest, part = _clusterer(state, key, gallery).split(cluster, body.faces)
    return {"rest": rest, "split": part}


@router.post("/v1/galleries/{gallery}/faces/{face_id}/move", response_model=S.MoveOut)
def move(state: State, gallery: str, face_id: ID, body: S.MoveIn, key: Editor) -> dict[str, Any]:
    """A face is not its group's person (``to``: it is that group's instead); kept."""
    return {"face_id": face_id, "cluster": _clusterer(state, key, gallery).move(face_id, body.to)}


@router.post(
    "/v1/galleries/{gallery}/clusters/{cluster}/name",
    response_model=S.NamedOut,
    status_code=201,
)
def name(state: State, gallery: str, cluster: ID, body: S.NameIn, key: Editor) -> dict[str, Any]:
    """Name a group: enrol the person from its faces. A new person needs their consent
    (purpose, who granted it), as any enrolment; without it nothing is written (422). The
    name of someone enrolled adds the group's faces to them: they must match the person's
    templates (409 ``identity_mismatch`` otherwise; ``override_face_check`` as for
    enrolment)."""
    override = override_reason(key, body.override_face_check)
    consent = None
    if body.consent is not None:
        consent = Consent(
            purpose=body.consent.purpose,
            granted_by=body.consent.granted_by,
            granted_at=datetime.now(UTC).isoformat(),
            expires_at=body.consent.expires_at,
            recorded_by=key.id,
        )
    c = _clusterer(state, key, gallery)
    g = governed(state, key, gallery)
    before = g.find(body.name)
    r = c.name(g, cluster, body.name, consent, override=override)
    return {
        "identity": r.identity.to_dict(datetime.now(UTC)),
        "added": len(r.added),
        "faces": r.identity.sample_count - (before.sample_count if before else 0),
    }


def _picture(
    make: Callable[..., bytes], state: State, key: ApiKey, gallery: str, face_id: str, gone: Gone
) -> Response:
    """A picture made from the face's photo, as any uploaded image is worked on: its
    memory reserved from the photo's structure first, decoded in a decode process."""
    archive = _clusterer(state, key, gallery).archive
    face = archive.face(face_id)
    if face is None:
        raise NotFoundError("face", face_id)
    with contextlib.ExitStack() as held:

        def decoded(data: bytes) -> NDArray[np.uint8]:
            held.enter_context(reserve_images(state, [data]))
            return decode(state, data, gone, "photo")[0]

        if face.time_s is not None:  # a video's frame, within the pixel limit
            held.enter_context(reserve(state, image_cost(video_frame_cost(state))))
        data = make(face, state.decode_config, archive.file_state(face.path), decoded)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def video_frame_cost(state: State) -> DecodeCost:
    """A video frame is decoded by OpenCV up to the service's pixel limit: charged as the
    largest it may be."""
    side = int(state.decode_config.max_pixels**0.5)
    return DecodeCost(side, side, pixel_bytes=3, decoder_bytes=0)


@router.get("/v1/galleries/{gallery}/faces/{face_id}/thumbnail", response_class=Response)
def thumbnail(state: State, gallery: str, face_id: ID, key: Reader, gone: Gone) -> Response:
    """The face (JPEG), from its photo while the photo is as indexed."""
    return _picture(face_thumbnail, state, key, gallery, face_id, gone)


@router.get("/v1/galleries/{gallery}/faces/{face_id}/photo", response_class=Response)
def photo(state: State, gallery: str, face_id: ID, key: Reader, gone: Gone) -> Response:
    """The face's photo, scaled down, the face outlined (JPEG)."""
    return _picture(face_photo, state, key, gallery, face_id, gone)
