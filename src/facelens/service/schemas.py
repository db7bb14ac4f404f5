"""What the HTTP API accepts and returns (pydantic models, so /openapi.json is complete).

Nothing here carries an embedding, and no model accepts or returns a demographic attribute:
the API has none to give.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt

Box = list[float]


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer."""

    error: str = Field(description="machine-readable error kind")
    detail: str = Field(description="what was wrong, for a person")
    reasons: list[str] = Field(default_factory=list, description="named reasons, if any")


class QualityOut(BaseModel):
    inter_eye_px: float
    sharpness: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    brightness: float
    clipped: float
    detection_score: float


class FaceOut(BaseModel):
    box: Box = Field(description="[x1, y1, x2, y2] in pixels (1 decimal), x2/y2 exclusive")
    score: float = Field(description="detector score, 4 decimals")
    quality: QualityOut = Field(description="quality measures, 2 decimals")
    gate: list[str] = Field(description="reasons this face would be refused for enrolment")


class DetectOut(BaseModel):
    """``facelens.results.DetectResult``: what ``facelens detect --quality --json`` prints."""

    width: int
    height: int
    faces: list[FaceOut]


class CandidateOut(BaseModel):
    identity_id: str
    name: str
    score: float = Field(description="cosine similarity, 4 decimals")


class IdentifiedFace(BaseModel):
    box: Box
    identity: CandidateOut | None = Field(description="null when no one is close enough")
    candidates: list[CandidateOut] = Field(
        description="the closest enrolled people, identified or not: only for a key with the "
        "`candidates` scope (empty otherwise); showing them is recorded in the audit trail"
    )
    decision_score: float | None = Field(
        description="what was compared with the threshold, 4 decimals (see rule)"
    )


class RuleOut(BaseModel):
    name: str = Field(description="operating point, e.g. open_set")
    normalised: bool = Field(
        description="true: the decision score is the best similarity less `weight` x the mean "
        "of the next `cohort` candidates' similarities; false: the best similarity itself"
    )
    cohort: int
    weight: float


class IdentifyOut(BaseModel):
    """``facelens.results.IdentifyResult``: what ``facelens identify --json`` prints of each
    image, and the audit record's number."""

    width: int
    height: int
    model: str = Field(description="the template tag searched (the gallery's answers)")
    threshold: float = Field(description="on the decision score, 4 decimals")
    rule: RuleOut
    notice: str | None = Field(
        default=None,
        description="set when the gallery was not searched with the default recognizer "
        "(it holds none of its templates) or some people cannot be found by it",
    )
    faces: list[IdentifiedFace]
    audit_seq: int


class VerifyOut(BaseModel):
    """``facelens.results.VerifyResult``: what ``facelens verify --json`` prints, and the
    audit record's number."""

    same: bool
    similarity: float = Field(description="cosine similarity, 4 decimals")
    threshold: float = Field(description="4 decimals")
    threshold_name: str = Field(description="the operating point applied (or custom)")
    model: str
    faces_a: list[list[float]] = Field(description="every face of image_a, left to right")
    faces_b: list[list[float]] = Field(description="every face of image_b, left to right")
    face_a: int = Field(description="the face of image_a compared (index in faces_a)")
    face_b: int = Field(description="the face of image_b compared (index in faces_b)")
    chosen_a: Literal["largest", "asked"] = Field(description="largest: the default")
    chosen_b: Literal["largest", "asked"]
    audit_seq: int


class ConsentIn(BaseModel):
    purpose: str = Field(min_length=1, max_length=500)
    granted_by: str = Field(min_length=1, max_length=200)
    expires_at: str | None = Field(default=None, description="ISO 8601 date or time")


class ConsentOut(BaseModel):
    purpose: str
    granted_by: str
    granted_at: str
    expires_at: str | None
    recorded_by: str


class IdentityOut(BaseModel):
    id: str
    name: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    samples: int
    consent_valid: bool
    consents: list[ConsentOut]


class SampleOut(BaseModel):
    id: str
    model: str
    created_at: str
    image_sha256: str
    box: Box | None
    quality: dict[str, float]


class RejectedImage(BaseModel):
    image: str
    reasons: list[str]


class EnrollOut(BaseModel):
    identity: IdentityOut
    created: bool
    added: int
    duplicates: int
    rejected: list[RejectedImage]
    audit_seq: int


class IdentityPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, str] | None = None


class ReceiptOut(BaseModel):
    identity_id: str
    name: str
    samples_deleted: int
    consents_deleted: int
    deleted_at: str
    audit_seq: int
    audit_hash: str


class GalleryIn(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    confirm: Literal[1, 2] | None = Field(
        default=None,
        description="people who must confirm an identification before it is acted on "
        "(2: alerts wait in /v1/alerts; admin keys only)",
    )
    keep_chips: bool | None = Field(
        default=None, description="keep an aligned chip of each enrolled face (admin keys only)"
    )


class GalleryOut(BaseModel):
    name: str
    identities: int
    settings: dict[str, Any] | None = None
    answers_with: str | None = Field(
        default=None,
        description="the template tag a search of this gallery uses (None: no one enrolled)",
    )
    notice: str | None = None


class AuditOut(BaseModel):
    seq: int
    time: str
    tenant: str
    key_id: str
    action: str
    gallery: str | None
    probe_sha256: str | None
    candidates: list[str]
    threshold: float | None
    model: str | None
    decision: dict[str, Any]
    prev_hash: str
    hash: str
    actor: str = Field(
        description="who acted: a key's id (however the record spelt it), cli:USER or service:TASK"
    )
    sentence: str = Field(description="the record as one sentence, people by name")
    names: dict[str, str] = Field(
        description="identity id -> name, for the people of this tenant still enrolled"
    )
    refused: bool = Field(description="the action was refused")


class SourcesOut(BaseModel):
    patterns: list[str] = Field(description="the sources the operator allows (shell patterns)")
    files: list[str] = Field(description="files on this host they match (the first 100)")


class KeyOut(BaseModel):
    id: str
    tenant: str
    name: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None
    current: bool = Field(description="the key this request was made with")


class KeyIn(BaseModel):
    name: str = Field(default="", max_length=100)
    scopes: list[Annotated[str, Field(max_length=32)]] = Field(min_length=1, max_length=20)


class NewKeyOut(BaseModel):
    key: KeyOut
    secret: str = Field(description="the full key, shown this once: it is stored hashed")


class ChainOut(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str


class StreamIn(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=2000,
        description="rtsp:// or http(s):// URL, or a path on the server",
    )
    gallery: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    detect_every: Annotated[int, Field(ge=1, le=30)] | Literal["auto"] = Field(
        default="auto",
        description="detect on every n-th frame, or auto: as often as the server keeps up",
    )
    detect_max_side: Annotated[int, Field(ge=64, le=8192)] | Literal["auto"] | None = Field(
        default="auto", description="longer side of the detection copy; auto: as cost allows"
    )
    upsample: int = Field(
        default=0, ge=0, le=2, description="detector upsampling: each doubles the image"
    )


class StreamOut(BaseModel):
    id: str
    source: str
    gallery: str
    status: str = Field(description="starting, running, finished, stopped or failed")
    started_at: str
    frames: int
    events: dict[str, int]
    error: str | None


class ModelOut(BaseModel):
    name: str
    file: str
    sha256: str
    licence: str
    status: str


class HealthOut(BaseModel):
    status: str
    version: str
    python: str
    packages: dict[str, str]
    models: list[ModelOut]
    pipeline: dict[str, Any]
    inference: dict[str, Any]
    store: str = Field(description="sqlite or postgresql")
    worker: int = Field(description="process id of the worker that answered")


class LoadOut(BaseModel):
    worker: int = Field(description="process id of the worker that answered")
    queue: dict[str, float] = Field(
        description="this worker's inference queue: faces waiting (pending) and the "
        "estimated seconds per face (per_chip_s); and this tenant's own embedding calls "
        "(batches), faces embedded (chips) and requests refused as over the latency budget "
        "(refused)"
    )
    timings: dict[str, dict[str, float]] = Field(
        description="the service's own time on this tenant's recent requests to this worker, "
        "per route (the last 2,000 of each): n, p50_ms, p99_ms - from arrival to the "
        "answer's start"
    )


class ScreeningOut(BaseModel):
    """A thermal screening: ``clear`` or ``refer`` (for a secondary measurement), or refused."""

    outcome: str | None = Field(description="clear, refer, or null when refused")
    refused: list[str]
    refused_why: list[str]
    estimate_c: float | None
    uncertainty_c: float | None = Field(description="expanded uncertainty, k=2")
    site: str | None = Field(description="inner_canthus or face_hottest_region")
    notes: list[str]
    face_box: Box | None
    canthus_c: float | None
    blackbody_c: float | None
    offset_c: float | None
    drift_c: float | None


class StopIn(BaseModel):
    reason: str = Field(default="", max_length=500, description="why, for the audit trail")


class StopOut(BaseModel):
    """Whether the tenant's identifications are halted (the stop control)."""

    tenant: str
    stopped: bool
    at: str | None
    by: str | None
    reason: str


class RetentionPolicyIO(BaseModel):
    """How long a gallery keeps a person (``facelens.govern.retention``)."""

    # strict: a whole number, not true (which would be 1 day) nor "12"
    max_idle_days: StrictInt = Field(
        default=1095, ge=1, le=36500, description="erase after this many days unmatched"
    )
    consent_grace_days: StrictInt = Field(
        default=0, ge=0, le=36500, description="erase this long after consent ended"
    )


class DueOut(BaseModel):
    tenant: str
    gallery: str
    identity_id: str
    name: str
    reason: Literal["idle", "consent_ended"]
    since: str
    due_at: str


class RetentionOut(BaseModel):
    gallery: str
    policy: RetentionPolicyIO
    next_deadlines: list[DueOut]


class PurgeReceiptOut(BaseModel):
    identity_id: str
    name: str
    samples_deleted: int
    consents_deleted: int
    chips_deleted: int
    deleted_at: str
    audit_seq: int
    audit_hash: str


class PurgeOut(BaseModel):
    dry_run: bool
    at: str
    due: list[DueOut]
    erased: int
    receipts: list[PurgeReceiptOut]


class ConsentCounts(BaseModel):
    valid: int
    ending_soon: int
    ended: int
    no_end: int


class SearchCount(BaseModel):
    day: str
    key: str
    action: str
    count: int


class GalleryReport(BaseModel):
    tenant: str
    gallery: str
    people: int
    templates: dict[str, int]
    chips: int
    keeps_chips: bool
    templates_sealed: bool
    templates_transformed: bool
    consent: ConsentCounts
    retention: RetentionPolicyIO
    next_deadlines: list[DueOut]
    pending_purges: list[DueOut]
    searches: list[SearchCount]


class PrivacyReportOut(BaseModel):
    """The facts a data-protection impact assessment needs (``facelens govern report``)."""

    generated_at: str
    days: int
    templates_sealed: bool
    key_id: str | None
    galleries: list[GalleryReport]


class VoteOut(BaseModel):
    key: str
    vote: Literal["confirm", "reject"]
    at: str


class AlertOut(BaseModel):
    """An identification waiting for two people to confirm it (never its template)."""

    id: str
    gallery: str
    identity_id: str
    identity: str | None
    score: float | None
    source: str
    stream: str
    track_id: int | None
    required: int
    status: Literal["pending", "confirmed", "rejected", "expired"]
    created_at: str
    expires_at: str
    decided_at: str | None
    has_shot: bool
    votes: list[VoteOut]


# -- the archive: faces in the owner's photos, grouped without names --------------------------

FaceIdStr = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")]


class ClusterSummary(BaseModel):
    id: str
    faces: int
    photos: int
    preview: list[str] = Field(description="ids of a few of its faces (for thumbnails)")


class ClustersOut(BaseModel):
    archive: dict[str, int]
    clusters: list[ClusterSummary]


class ArchiveFaceOut(BaseModel):
    face_id: str
    path: str
    box: list[float]


class ClusterOut(BaseModel):
    id: str
    faces: list[ArchiveFaceOut]
    photos: list[str]


class ClusterRef(BaseModel):
    id: str


class MergeIn(BaseModel):
    a: FaceIdStr
    b: FaceIdStr


class SplitIn(BaseModel):
    faces: list[FaceIdStr] = Field(min_length=1, max_length=10_000)


class SplitOut(BaseModel):
    rest: str
    split: str


class MoveIn(BaseModel):
    to: FaceIdStr | None = Field(default=None, description="the cluster it belongs to")


class MoveOut(BaseModel):
    face_id: str
    cluster: str | None


class NameIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    consent: ConsentIn | None = None
    override_face_check: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="why faces that do not match the enrolled person of this name are added "
        "anyway (needs the enroll:override scope; audited)",
    )


class NamedOut(BaseModel):
    identity: IdentityOut
    added: int = Field(description="templates added (one per face and model)")
    faces: int = Field(description="the group's faces enrolled (those the quality gate passed)")
