"""The facelens HTTP service: a versioned ``/v1`` API and the web UI, in one process.

Every route but ``/v1/health`` needs an API key (``Authorization: Bearer fl_...``) holding the
route's scope; galleries belong to the key's tenant, and another tenant's gallery or identity
answers 404 as if it did not exist. Domain errors become HTTP statuses in one place
(``STATUS``). Embeddings never leave the process; scores are rounded to two decimals.
"""

import contextlib
import hashlib
import json
import logging
import os
import platform
import queue
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from facelens.errors import (
    ConflictError,
    EnrollmentError,
    FacelensError,
    GalleryError,
    ImageTooLargeError,
    InputError,
    ModelError,
    NotFoundError,
    PolicyError,
)
from facelens.events import Event, EventBus
from facelens.gallery import Consent, Gallery
from facelens.gallery.stores import is_postgres_url, open_store
from facelens.govern import AuditLog, KeyStore
from facelens.govern.keys import ApiKey
from facelens.pipeline import Pipeline
from facelens.service import schemas as S
from facelens.urls import redact_credentials

__all__ = ["ServiceSettings", "create_app"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class ServiceSettings:
    """How the service runs (the ``serve`` command builds it from options and environment).

    Attributes:
        gallery_path: the store (galleries, keys, audit trail): an SQLite file or a
            ``postgresql://`` URL.
        allow_image_urls: accept ``image_url`` instead of an upload (off: the service would
            fetch arbitrary URLs on a caller's behalf).
        identify_rate: identify requests per second allowed per key (token bucket)...
        identify_burst: ...with this many in a burst.
        max_upload_bytes: largest image accepted.
        allow_sources: the video sources a stream may watch, as shell patterns
            (``rtsp://cams.local/*``, ``/srv/videos/*.mp4``); none by default. A URL is
            matched without its credentials, a path after resolving ``..`` and symlinks;
            anything else is refused before it is opened, so the API can neither read the
            host's files nor probe its network.
        image_urls_private: let ``image_url`` reach loopback and private addresses (off:
            public hosts only, ``facelens.service.fetch``; for tests and closed networks).
        max_subscribers: live ``/v1/events`` clients per worker; more are answered 503.
        max_body_bytes: largest request body, refused (413) from its declared length before
            anything is read, or as soon as a streamed body passes it - before the key is
            checked.
    """

    gallery_path: Path | str
    allow_image_urls: bool = False
    identify_rate: float = 5.0
    identify_burst: int = 10
    max_upload_bytes: int = 20 * 1024 * 1024
    allow_sources: tuple[str, ...] = ()
    image_urls_private: bool = False
    max_subscribers: int = 256
    max_body_bytes: int = 32 * 1024 * 1024


def source_allowed(source: str, patterns: tuple[str, ...]) -> bool:
    """Whether an operator's ``patterns`` allow a stream ``source`` (see ``allow_sources``).

    Example:
        >>> source_allowed("rtsp://admin:pw@cams.local/door", ("rtsp://cams.local/*",))
        True
        >>> source_allowed("/srv/videos/../../etc/shadow", ("/srv/videos/*",))
        False
    """
    import fnmatch
    import os
    import re

    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", source):
        subject = re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@", r"\1", source)
    elif source.isdigit():
        subject = source  # a local camera, by number: allowed only if named
    else:
        subject = os.path.realpath(source)
    return any(fnmatch.fnmatchcase(subject, p) for p in patterns)


class HttpError(Exception):
    """An error the API answers with directly (auth, scopes, rate limits, bad requests)."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status, self.error, self.detail, self.headers = status, error, detail, headers
        super().__init__(detail)


# Domain errors -> HTTP, in this one place (most specific first).
STATUS: list[tuple[type[Exception], int, str]] = [
    (ImageTooLargeError, 413, "image_too_large"),
    (EnrollmentError, 422, "no_usable_face"),
    (InputError, 400, "bad_input"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (PolicyError, 422, "refused_by_policy"),
    (ModelError, 503, "model_unavailable"),
    (GalleryError, 500, "gallery_error"),
]


# finished stream jobs remembered per worker (their status stays readable until then)
MAX_FINISHED_JOBS = 100


def _error_body(error: str, detail: str, reasons: list[str] | None = None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "reasons": reasons or []}


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a request may go now, else seconds until it may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class _Broadcaster:
    """Fans stream events out to live subscribers (bounded queues; slow ones lose events)."""

    def __init__(self) -> None:
        self._subs: list[tuple[str, str | None, queue.Queue[dict[str, Any]]]] = []
        self._lock = threading.Lock()

    def publish(self, tenant: str, stream_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subs)
        for t, sid, q in subs:
            if t == tenant and (sid is None or sid == stream_id):
                with contextlib.suppress(queue.Full):
                    q.put_nowait(event)

    def subscribe(
        self, tenant: str, stream_id: str | None, limit: int
    ) -> queue.Queue[dict[str, Any]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        with self._lock:
            if len(self._subs) >= limit:
                raise HttpError(
                    503,
                    "too_many_subscribers",
                    f"this worker already serves {limit} event streams; try again later",
                    headers={"Retry-After": "30"},
                )
            self._subs.append((tenant, stream_id, q))
        return q

    def unsubscribe(self, q: queue.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[2] is not q]


class _BusSink:
    """An events sink that hands a stream job's events to the broadcaster."""

    def __init__(self, job: "_Job", broadcaster: _Broadcaster) -> None:
        self.name = f"stream:{job.id}"
        self.job, self.broadcaster = job, broadcaster

    def emit(self, event: Event) -> None:
        d = event.to_dict() | {"stream": self.job.id}
        self.job.events[event.type] = self.job.events.get(event.type, 0) + 1
        self.broadcaster.publish(self.job.tenant, self.job.id, d)

    def close(self, timeout: float = 5.0) -> None:
        return None


@dataclass
class _Job:
    id: str
    tenant: str
    source: str
    gallery: str
    started_at: str
    status: str = "starting"
    frames: int = 0
    events: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    watcher: Any = None
    thread: threading.Thread | None = None


class _State:
    def __init__(self, settings: ServiceSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.store = open_store(settings.gallery_path)
        self.keys = KeyStore(self.store)
        self.audit = AuditLog(self.store)
        self.pipeline = pipeline
        self.buckets: dict[str, _Bucket] = {}
        self.bucket_lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}
        self.broadcaster = _Broadcaster()
        self._pipelines: dict[int, Pipeline] = {pipeline.config.detect.upsample: pipeline}
        self._pipelines_lock = threading.Lock()

    def pipeline_for(self, upsample: int) -> Pipeline:
        """The service's pipeline, or one like it with another detector upsampling."""
        from dataclasses import replace

        with self._pipelines_lock:
            if upsample not in self._pipelines:
                c = self.pipeline.config
                self._pipelines[upsample] = Pipeline(
                    replace(c, detect=replace(c.detect, upsample=upsample))
                )
            return self._pipelines[upsample]

    def gallery(self, tenant: str, name: str, must_exist: bool = True) -> Gallery:
        if not NAME_RE.match(name):
            raise HttpError(400, "bad_input", "gallery names are 1-64 letters, digits, _ . -")
        internal = f"{tenant}/{name}"
        if must_exist and internal not in self.store.galleries():
            raise NotFoundError("gallery", name)
        return Gallery(self.store, internal)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _r2(v: float) -> float:
    return round(float(v), 2)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a streamed body passes the limit: an HTTP exception, so
    the framework's body parsing passes it on as it is (a 413, not "could not parse")."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is a 413, decided on the
    ``Content-Length`` header before a byte is read, or while a chunked body streams in -
    never after spooling it, and before any key is checked."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            _error_body("body_too_large", f"request body over {self.limit} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        seen, started = 0, False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)


def _internal_error(e: BaseException) -> tuple[dict[str, Any], int]:
    """A 500 that says nothing of the inside: the traceback goes to the log (credentials
    redacted) under a reference that the answer gives, so an operator can find it."""
    import traceback

    ref = uuid.uuid4().hex[:12]
    trace = "".join(traceback.format_exception(e))
    log.error("internal error %s:\n%s", ref, redact_credentials(trace))
    return _error_body("internal_error", f"internal error (reference {ref})"), 500


class _Unexpected:
    """ASGI middleware: any exception no handler took becomes ``_internal_error``'s 500 here,
    so it is never re-raised to the server (which would log it unredacted)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as e:
            if scope["type"] != "http" or started:
                log.error("internal error after the answer began: %s", redact_credentials(e))
                return
            body, status = _internal_error(e)
            await JSONResponse(body, status)(scope, receive, send)


def create_app(settings: ServiceSettings, pipeline: Pipeline | None = None) -> FastAPI:
    """The ASGI application (models load on first use, or now if ``pipeline`` is loaded)."""
    from facelens import __version__

    app = FastAPI(
        title="facelens",
        version=__version__,
        description="Privacy-first face recognition. Every route but /v1/health "
        "needs `Authorization: Bearer <API key>` with the route's scope.",
        responses={
            401: {"model": S.ErrorOut},
            403: {"model": S.ErrorOut},
            422: {"model": S.ErrorOut},
        },
    )
    state = _State(settings, pipeline or Pipeline())
    app.state.facelens = state
    worker = str(os.getpid())
    app.add_middleware(_Unexpected)
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)

    @app.middleware("http")
    async def _worker_header(request: Request, call_next: Any) -> Any:
        """``X-Facelens-Worker``: which worker process answered (several may serve one
        PostgreSQL gallery)."""
        response = await call_next(request)
        response.headers["X-Facelens-Worker"] = worker
        return response

    @app.exception_handler(HttpError)
    def _http_error(_: Request, e: HttpError) -> JSONResponse:
        return JSONResponse(_error_body(e.error, e.detail), e.status, headers=e.headers)

    @app.exception_handler(FacelensError)
    def _domain_error(_: Request, e: FacelensError) -> JSONResponse:
        for kind, status, error in STATUS:
            if isinstance(e, kind) and status < 500:
                return JSONResponse(
                    _error_body(error, str(e), list(getattr(e, "reasons", []))), status
                )
            if isinstance(e, kind) and status == 503:
                return JSONResponse(_error_body(error, "a model is not available"), status)
        return _internal(e)

    def _internal(e: BaseException) -> JSONResponse:
        return JSONResponse(*_internal_error(e))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(_: Request, e: RequestValidationError) -> JSONResponse:
        # Same shape as every other error: one sentence naming each bad field, and the
        # fields as reasons ("query.limit: Input should be greater than or equal to 1").
        reasons = []
        for err in e.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            reasons.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse(
            _error_body("invalid_request", "; ".join(reasons) or "invalid request", reasons), 422
        )

    @app.exception_handler(StarletteHTTPException)
    def _framework_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        # the framework's own refusals (unknown route, wrong method, a multipart body with
        # too many parts) in the same shape as every other error
        names = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }
        return JSONResponse(
            _error_body(names.get(e.status_code, "http_error"), str(e.detail)),
            e.status_code,
            headers=e.headers,
        )

    @app.exception_handler(ValueError)
    def _value_error(_: Request, e: ValueError) -> JSONResponse:
        return JSONResponse(_error_body("bad_input", str(e)), 400)

    # -- auth -------------------------------------------------------------------------------

    def authenticate(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey:
        presented = x_api_key
        if authorization and authorization.lower().startswith("bearer "):
            presented = authorization[7:]
        if not presented:
            raise HttpError(
                401, "unauthorized", "an API key is needed", {"WWW-Authenticate": "Bearer"}
            )
        key = state.keys.authenticate(presented)
        if key is None:
            raise HttpError(
                401, "unauthorized", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"}
            )
        return key

    def scope(name: str) -> Any:
        def check(key: Annotated[ApiKey, Depends(authenticate)]) -> ApiKey:
            if not key.allows(name):
                raise HttpError(403, "forbidden", f"this key lacks the {name!r} scope")
            return key

        return Depends(check)

    def rate_limited(key: ApiKey) -> None:
        with state.bucket_lock:
            b = state.buckets.setdefault(
                key.id, _Bucket(settings.identify_rate, settings.identify_burst)
            )
            wait = b.take()
        if wait > 0:
            raise HttpError(
                429,
                "rate_limited",
                "too many identify requests for this key",
                {"Retry-After": str(max(1, int(np.ceil(wait))))},
            )

    # -- image input ------------------------------------------------------------------------

    def image_bytes(upload: UploadFile | None, url: str | None, field_name: str) -> bytes:
        if upload is not None:
            data = upload.file.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise ImageTooLargeError(
                    field_name,
                    f"upload over {settings.max_upload_bytes} bytes",
                    actual=len(data),
                    limit=settings.max_upload_bytes,
                )
            return data
        if url:
            if not settings.allow_image_urls:
                raise HttpError(
                    400,
                    "image_urls_disabled",
                    "image URLs are disabled on this service; upload the image",
                )
            from facelens.service.fetch import FetchError, fetch

            try:
                return fetch(
                    url,
                    settings.max_upload_bytes,
                    timeout=10.0,
                    allow_private=settings.image_urls_private,
                )
            except FetchError as e:
                raise HttpError(400, "image_url_refused", str(e)) from None
        raise HttpError(400, "bad_input", f"{field_name}: upload an image")

    # -- health -----------------------------------------------------------------------------

    @app.get("/v1/health", response_model=S.HealthOut, tags=["service"])
    def health() -> dict[str, Any]:
        """Versions, models with their checksums, and the inference provider in use."""
        from importlib.metadata import PackageNotFoundError, version

        p = state.pipeline
        p.load()

        def v(d: str) -> str:
            try:
                return version(d)
            except PackageNotFoundError:
                return "not installed"

        return {
            "status": "ok",
            "version": __version__,
            "python": platform.python_version(),
            "packages": {d: v(d) for d in ("numpy", "onnxruntime", "dlib-bin", "fastapi")},
            "models": [
                {k: m[k] for k in ("name", "file", "sha256", "licence", "status")}
                for m in p.config.models.status()
            ],
            "pipeline": {
                "detector": p.detector.name,
                "upsample": p.config.detect.upsample,
                "embedder": p.embedder.name,
                "model": p.model,
            },
            "inference": {
                "detector": getattr(p.detector, "provider", None) or "dlib",
                "embedder": getattr(p.embedder, "provider", None) or "dlib",
            },
            "store": "postgresql" if is_postgres_url(settings.gallery_path) else "sqlite",
            "worker": os.getpid(),
        }

    # -- detect / verify / identify ---------------------------------------------------------

    @app.post("/v1/detect", response_model=S.DetectOut, tags=["faces"])
    def detect(
        key: Annotated[ApiKey, scope("detect")],
        image: Annotated[UploadFile | None, File()] = None,
        image_url: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """Faces in an image, with quality measures and enrolment-gate reasons."""
        img, _ = state.pipeline.decode(image_bytes(image, image_url, "image"))
        p = state.pipeline
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

    @app.post("/v1/verify", response_model=S.VerifyOut, tags=["faces"])
    def verify(
        key: Annotated[ApiKey, scope("verify")],
        image_a: Annotated[UploadFile | None, File()] = None,
        image_b: Annotated[UploadFile | None, File()] = None,
        threshold: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """Are the primary faces of two images the same person?"""
        p = state.pipeline
        embs, hashes = [], []
        for up, name in ((image_a, "image_a"), (image_b, "image_b")):
            data = image_bytes(up, None, name)
            img, meta = p.decode(data)
            e = p.primary_embedding(img)
            if e is None:
                raise EnrollmentError(name, ["no_face"])
            embs.append(e)
            hashes.append(meta.sha256)
        v = p.verify(embs[0], embs[1], _threshold(threshold))
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

    @app.post(
        "/v1/galleries/{gallery}/identify",
        response_model=S.IdentifyOut,
        tags=["faces"],
        responses={429: {"model": S.ErrorOut}, 404: {"model": S.ErrorOut}},
    )
    def identify(
        gallery: str,
        key: Annotated[ApiKey, scope("identify")],
        image: Annotated[UploadFile | None, File()] = None,
        image_url: Annotated[str | None, Form()] = None,
        threshold: Annotated[str | None, Form()] = None,
        top_k: Annotated[int, Form(ge=1, le=20)] = 3,
    ) -> dict[str, Any]:
        """Who are the faces in this image (open set: unknown below the threshold)?"""
        rate_limited(key)
        g = state.gallery(key.tenant, gallery)
        data = image_bytes(image, image_url, "image")
        p = state.pipeline
        img, meta = p.decode(data)
        a = p.analyze(img)
        rule = g.rule(p.model, _threshold(threshold))
        found = (
            g.identify(a.embeddings, rule, top_k)
            if a.embeddings is not None and len(a.faces)
            else []
        )
        h, w = img.shape[:2]
        faces = []
        for i, r in enumerate(found):
            faces.append(
                {
                    "box": [_r2(v) for v in a.faces.clip(w, h).xyxy[i]],
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
                    ],
                    "decision_score": None if r.decision_score is None else _r2(r.decision_score),
                }
            )
        rec = state.audit.append(
            tenant=key.tenant,
            key_id=key.id,
            action="identify",
            gallery=gallery,
            probe_sha256=meta.sha256,
            candidates=[c.identity_id for r in found for c in r.candidates],
            threshold=rule.threshold,
            model=p.model,
            decision={
                "rule": rule.describe(),
                "faces": len(found),
                "identified": [r.identity.identity_id for r in found if r.identity is not None],
            },
        )
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
            "faces": faces,
            "audit_seq": rec.seq,
        }

    def _threshold(value: str | None) -> str | float | None:
        if value is None or value == "":
            return None
        try:
            return float(value)
        except ValueError:
            return value

    # -- galleries --------------------------------------------------------------------------

    @app.get("/v1/galleries", response_model=list[S.GalleryOut], tags=["galleries"])
    def galleries(key: Annotated[ApiKey, Depends(authenticate)]) -> list[dict[str, Any]]:
        """This tenant's galleries."""
        prefix = key.tenant + "/"
        out = []
        for name in state.store.galleries():
            if name.startswith(prefix):
                n = len(state.store.list_identities(name))
                out.append({"name": name[len(prefix) :], "identities": n})
        return out

    @app.post("/v1/galleries", response_model=S.GalleryOut, status_code=201, tags=["galleries"])
    def create_gallery(
        body: S.GalleryIn, key: Annotated[ApiKey, scope("enroll")]
    ) -> dict[str, Any]:
        """Create a gallery (idempotent)."""
        state.store.ensure_gallery(f"{key.tenant}/{body.name}")
        return {
            "name": body.name,
            "identities": len(state.store.list_identities(f"{key.tenant}/{body.name}")),
        }

    def identity_out(ident: Any, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        return {
            "id": ident.id,
            "name": ident.name,
            "metadata": ident.metadata,
            "created_at": ident.created_at,
            "updated_at": ident.updated_at,
            "samples": ident.sample_count,
            "consent_valid": ident.consent_valid_at(now),
            "consents": [c.to_dict() for c in ident.consents],
        }

    @app.get(
        "/v1/galleries/{gallery}/identities",
        response_model=list[S.IdentityOut],
        tags=["identities"],
    )
    def identities(
        gallery: str, key: Annotated[ApiKey, Depends(authenticate)]
    ) -> list[dict[str, Any]]:
        """People enrolled in a gallery."""
        return [identity_out(i) for i in state.gallery(key.tenant, gallery).identities()]

    @app.post(
        "/v1/galleries/{gallery}/identities",
        response_model=S.EnrollOut,
        status_code=201,
        tags=["identities"],
    )
    def enroll(
        gallery: str,
        key: Annotated[ApiKey, scope("enroll")],
        name: Annotated[str, Form(min_length=1, max_length=200)],
        images: Annotated[list[UploadFile], File()],
        consent_purpose: Annotated[str | None, Form(max_length=500)] = None,
        consent_granted_by: Annotated[str | None, Form(max_length=200)] = None,
        consent_expires_at: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """Enrol a person (or add samples) from uploaded photos, with their consent.

        A new identity needs ``consent_purpose`` and ``consent_granted_by``. Each photo's
        primary face must pass the quality gate; the others are listed as rejected.
        """
        # the request is checked before its gallery is created: a refused enrolment leaves
        # nothing behind
        if not images or len(images) > 20:
            raise HttpError(400, "bad_input", "send 1 to 20 images")
        if (consent_purpose or consent_granted_by) and not (consent_purpose and consent_granted_by):
            raise HttpError(400, "bad_input", "consent needs both purpose and granted_by")
        state.store.ensure_gallery(f"{key.tenant}/{gallery}") if NAME_RE.match(
            gallery
        ) else state.gallery(key.tenant, gallery)
        g = state.gallery(key.tenant, gallery)
        consent = None
        if consent_purpose and consent_granted_by:
            consent = Consent(
                purpose=consent_purpose,
                granted_by=consent_granted_by,
                granted_at=_now(),
                expires_at=consent_expires_at or None,
                recorded_by=f"key:{key.id}",
            )
        datas = [image_bytes(f, None, f.filename or "image") for f in images]
        report = state.pipeline.enroll(g, name, datas, consent)
        r = report.result
        rejected = [
            {
                "image": (images[i].filename or f"image {i + 1}"),
                "reasons": list(getattr(e, "reasons", ())) or [getattr(e, "reason", "")],
            }
            for i, e in zip(report.rejected_at, report.rejected, strict=True)
        ]
        rec = state.audit.append(
            tenant=key.tenant,
            key_id=key.id,
            action="enroll",
            gallery=gallery,
            probe_sha256=",".join(hashlib.sha256(d).hexdigest() for d in datas),
            candidates=[r.identity.id],
            model=state.pipeline.model,
            decision={"created": r.created, "added": len(r.added), "rejected": len(rejected)},
        )
        return {
            "identity": identity_out(r.identity),
            "created": r.created,
            "added": len(r.added),
            "duplicates": r.duplicates,
            "rejected": rejected,
            "audit_seq": rec.seq,
        }

    @app.get(
        "/v1/galleries/{gallery}/identities/{identity_id}",
        response_model=S.IdentityOut,
        tags=["identities"],
        responses={404: {"model": S.ErrorOut}},
    )
    def get_identity(
        gallery: str, identity_id: str, key: Annotated[ApiKey, Depends(authenticate)]
    ) -> dict[str, Any]:
        return identity_out(state.gallery(key.tenant, gallery).get(identity_id))

    @app.patch(
        "/v1/galleries/{gallery}/identities/{identity_id}",
        response_model=S.IdentityOut,
        tags=["identities"],
        responses={404: {"model": S.ErrorOut}, 409: {"model": S.ErrorOut}},
    )
    def patch_identity(
        gallery: str,
        identity_id: str,
        body: S.IdentityPatch,
        key: Annotated[ApiKey, scope("enroll")],
    ) -> dict[str, Any]:
        """Rename (names are unique in a gallery)."""
        g = state.gallery(key.tenant, gallery)
        ident = g.get(identity_id)
        if body.name is not None:
            ident = g.rename(ident.id, body.name)
        return identity_out(ident)

    @app.delete(
        "/v1/galleries/{gallery}/identities/{identity_id}",
        response_model=S.ReceiptOut,
        tags=["identities"],
        responses={404: {"model": S.ErrorOut}},
    )
    def delete_identity(
        gallery: str, identity_id: str, key: Annotated[ApiKey, scope("delete")]
    ) -> dict[str, Any]:
        """Erase a person: every sample, consent record and index entry. The receipt is
        itself recorded in the audit trail."""
        g = state.gallery(key.tenant, gallery)
        receipt = g.delete(g.get(identity_id).id)
        body = {
            "identity_id": receipt.identity_id,
            "name": receipt.name,
            "samples_deleted": receipt.samples_deleted,
            "consents_deleted": receipt.consents_deleted,
            "deleted_at": receipt.deleted_at,
        }
        rec = state.audit.append(
            tenant=key.tenant,
            key_id=key.id,
            action="delete",
            gallery=gallery,
            candidates=[receipt.identity_id],
            decision={"receipt": body},
        )
        return body | {"audit_seq": rec.seq, "audit_hash": rec.hash}

    @app.get(
        "/v1/galleries/{gallery}/identities/{identity_id}/samples",
        response_model=list[S.SampleOut],
        tags=["identities"],
    )
    def samples(
        gallery: str, identity_id: str, key: Annotated[ApiKey, Depends(authenticate)]
    ) -> list[dict[str, Any]]:
        """An identity's samples with their quality (never their embeddings)."""
        g = state.gallery(key.tenant, gallery)
        return [
            {
                "id": s.id,
                "model": s.model,
                "created_at": s.created_at,
                "image_sha256": s.image_sha256,
                "box": list(s.box) if s.box else None,
                "quality": {k: _r2(v) for k, v in s.quality.items()},
            }
            for s in g.samples(identity_id)
        ]

    @app.get(
        "/v1/galleries/{gallery}/identities/{identity_id}/consents",
        response_model=list[S.ConsentOut],
        tags=["identities"],
    )
    def consents(
        gallery: str, identity_id: str, key: Annotated[ApiKey, Depends(authenticate)]
    ) -> list[dict[str, Any]]:
        return [c.to_dict() for c in state.gallery(key.tenant, gallery).get(identity_id).consents]

    @app.post(
        "/v1/galleries/{gallery}/identities/{identity_id}/consents",
        response_model=S.IdentityOut,
        status_code=201,
        tags=["identities"],
    )
    def add_consent(
        gallery: str, identity_id: str, body: S.ConsentIn, key: Annotated[ApiKey, scope("enroll")]
    ) -> dict[str, Any]:
        """Record a new (or renewed) consent."""
        g = state.gallery(key.tenant, gallery)
        c = Consent(
            purpose=body.purpose,
            granted_by=body.granted_by,
            granted_at=_now(),
            expires_at=body.expires_at,
            recorded_by=f"key:{key.id}",
        )
        return identity_out(g.add_consent(g.get(identity_id).id, c))

    # -- thermal screening ------------------------------------------------------------------

    @app.post("/v1/thermal/screen", response_model=S.ScreeningOut, tags=["thermal"])
    def thermal_screen(
        key: Annotated[ApiKey, scope("detect")],
        frame: Annotated[
            UploadFile,
            File(description="FLIR radiometric JPEG, 16-bit PNG or TIFF (centi-kelvin), or .npy"),
        ],
        blackbody: Annotated[str | None, Form(description="x1,y1,x2,y2")] = None,
        blackbody_temp: Annotated[float | None, Form(ge=20, le=50)] = None,
        ambient: Annotated[float | None, Form(ge=-40, le=60)] = None,
        humidity: Annotated[float | None, Form(ge=0, le=100)] = None,
        region: Annotated[str | None, Form(description="x1,y1,x2,y2")] = None,
        refer_at: Annotated[float, Form(ge=35, le=42)] = 37.5,
    ) -> dict[str, Any]:
        """Screen the one person in the frame's screening region. Never linked to an
        identity; the outcome is only ``clear`` or ``refer`` (not a diagnosis)."""
        from facelens.thermal import (
            Blackbody,
            Environment,
            ScreeningConfig,
            ScreeningSession,
            decode_thermal,
        )

        def box(v: str | None, what: str) -> tuple[float, float, float, float] | None:
            if not v:
                return None
            try:
                x1, y1, x2, y2 = (float(p) for p in v.split(","))
            except ValueError:
                raise HttpError(400, "bad_input", f"{what}: use x1,y1,x2,y2") from None
            return (x1, y1, x2, y2)

        data = image_bytes(frame, None, "frame")
        name = (frame.filename or "frame").lower()
        suffix = next(
            (s for s in (".jpg", ".jpeg", ".npy", ".png", ".tif", ".tiff") if name.endswith(s)),
            ".jpg",
        )
        # decoded from memory, within the thermal size limits checked from the header
        thermal = decode_thermal(data, suffix=suffix, name="frame")
        bb_box = box(blackbody, "blackbody")
        bb = Blackbody(bb_box, blackbody_temp) if bb_box and blackbody_temp is not None else None
        session = ScreeningSession(ScreeningConfig(refer_at_c=refer_at), bb)
        result = session.screen(
            thermal,
            Environment(ambient, None if humidity is None else humidity / 100),
            region=box(region, "region"),
        )
        return result.to_dict()

    # -- audit ------------------------------------------------------------------------------

    @app.get("/v1/audit", response_model=list[S.AuditOut], tags=["audit"])
    def audit(
        key: Annotated[ApiKey, scope("audit:read")],
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a database integer
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """This tenant's audit records, oldest first, after sequence number ``after``."""
        return [r.to_dict() for r in state.audit.records(key.tenant, after, limit)]

    @app.get("/v1/audit/verify", response_model=S.ChainOut, tags=["audit"])
    def audit_verify(key: Annotated[ApiKey, scope("audit:read")]) -> dict[str, Any]:
        """Check the whole hash chain (all tenants' records form one chain)."""
        st = state.audit.verify()
        return {
            "ok": st.ok,
            "checked": st.checked,
            "first_bad_seq": st.first_bad_seq,
            "problem": st.problem,
        }

    # -- streams and live events ------------------------------------------------------------

    def job_out(j: _Job) -> dict[str, Any]:
        return {
            "id": j.id,
            "source": j.source,
            "gallery": j.gallery,
            "status": j.status,
            "started_at": j.started_at,
            "frames": j.frames,
            "events": dict(j.events),
            "error": j.error,
        }

    @app.post("/v1/streams", response_model=S.StreamOut, status_code=201, tags=["streams"])
    def start_stream(body: S.StreamIn, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
        """Start watching a video source against a gallery; events go to /v1/events."""
        from facelens.decode.video import VideoConfig, VideoSource
        from facelens.watch import WatchConfig, Watcher

        if not source_allowed(body.source, settings.allow_sources):
            # decided on the text alone: nothing is opened, so the answer says nothing about
            # which files exist or which ports answer
            raise HttpError(
                403,
                "source_not_allowed",
                f"{redact_credentials(body.source)!r} is not an allowed stream source; the "
                "operator allows sources with facelens serve --allow-source PATTERN",
            )
        g = state.gallery(key.tenant, body.gallery)
        source = VideoSource(body.source, VideoConfig())
        job = _Job(
            uuid.uuid4().hex[:12], key.tenant, source.name, body.gallery, _now()
        )  # source.name: the URL without its credentials
        bus = EventBus([_BusSink(job, state.broadcaster)])
        watcher = Watcher(
            state.pipeline_for(body.upsample),
            g,
            bus,
            WatchConfig(detect_every=body.detect_every, detect_max_side=body.detect_max_side),
        )
        job.watcher = watcher

        def run() -> None:
            job.status = "running"
            try:
                stats = watcher.run(
                    source, on_progress=lambda st: setattr(job, "frames", st.frames)
                )
                job.frames = stats.frames
                job.status = "stopped" if watcher._stop else "finished"
            except Exception as e:  # the job reports it; the service goes on
                job.status, job.error = "failed", redact_credentials(e)
                log.error("stream %s failed: %s", job.id, job.error)
            finally:
                source.close()

        job.thread = threading.Thread(target=run, name=f"stream {job.id}", daemon=True)
        # finished jobs are kept for their status, the oldest forgotten beyond a bound
        done = [j for j in state.jobs.values() if j.status in ("finished", "stopped", "failed")]
        for old in done[: max(0, len(done) - MAX_FINISHED_JOBS + 1)]:
            state.jobs.pop(old.id, None)
        state.jobs[job.id] = job
        job.thread.start()
        return job_out(job)

    @app.get("/v1/streams", response_model=list[S.StreamOut], tags=["streams"])
    def streams(key: Annotated[ApiKey, Depends(authenticate)]) -> list[dict[str, Any]]:
        return [job_out(j) for j in state.jobs.values() if j.tenant == key.tenant]

    def own_job(stream_id: str, key: ApiKey) -> _Job:
        j = state.jobs.get(stream_id)
        if j is None or j.tenant != key.tenant:
            raise NotFoundError("stream", stream_id)
        return j

    @app.get(
        "/v1/streams/{stream_id}",
        response_model=S.StreamOut,
        tags=["streams"],
        responses={404: {"model": S.ErrorOut}},
    )
    def get_stream(stream_id: str, key: Annotated[ApiKey, Depends(authenticate)]) -> dict[str, Any]:
        return job_out(own_job(stream_id, key))

    @app.delete(
        "/v1/streams/{stream_id}",
        response_model=S.StreamOut,
        tags=["streams"],
        responses={404: {"model": S.ErrorOut}},
    )
    def stop_stream(stream_id: str, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
        j = own_job(stream_id, key)
        if j.watcher is not None:
            j.watcher.stop()
        if j.thread is not None:
            j.thread.join(timeout=10)
        return job_out(j)

    @app.get(
        "/v1/events",
        tags=["streams"],
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "Server-Sent Events, one per stream event",
            }
        },
    )
    def events(
        key: Annotated[ApiKey, scope("identify")],
        stream: Annotated[str | None, Query(max_length=64)] = None,
        max_seconds: Annotated[float, Query(gt=0, le=86400)] = 3600.0,
    ) -> StreamingResponse:
        """Live events of this tenant's stream jobs (``stream`` to follow one)."""
        if stream is not None:
            own_job(stream, key)
        q = state.broadcaster.subscribe(key.tenant, stream, settings.max_subscribers)

        async def gen() -> AsyncIterator[bytes]:
            # an async generator on the event loop: a subscriber holds no worker thread, so
            # open event streams cannot stall the other routes (a client that goes away
            # cancels it, which unsubscribes)
            import asyncio

            end = time.monotonic() + max_seconds
            n, quiet_since = 0, time.monotonic()
            try:
                yield b": connected\n\n"
                while time.monotonic() < end:
                    try:
                        ev = q.get_nowait()
                    except queue.Empty:
                        if time.monotonic() - quiet_since >= 10:
                            quiet_since = time.monotonic()
                            yield b": keep-alive\n\n"
                        await asyncio.sleep(0.1)
                        continue
                    n, quiet_since = n + 1, time.monotonic()
                    yield (
                        f"id: {n}\nevent: {ev['type']}\ndata: "
                        f"{json.dumps(ev, separators=(',', ':'))}\n\n"
                    ).encode()
            finally:
                state.broadcaster.unsubscribe(q)

        return StreamingResponse(
            gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    # -- web UI -----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
