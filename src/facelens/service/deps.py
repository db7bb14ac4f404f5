"""What every route passes through: the worker's state, the API key and its scope, the
per-key rate limit, and reading an image within the upload limits. A new route gets these by
declaring them, so it cannot forget a check."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import anyio.from_thread
import numpy as np
from fastapi import Depends, Header, Request, UploadFile
from numpy.typing import NDArray

from facelens.decode.cost import DecodeCost
from facelens.decode.image import ImageMeta, decode_isolated, probe_cost
from facelens.errors import ImageTooLargeError, InputError
from facelens.govern import GovernedGallery
from facelens.govern.keys import ApiKey
from facelens.sandbox import Busy, Cancelled, release_freed_memory
from facelens.service.errors import HttpError
from facelens.service.gate import KEY as GATE_KEY
from facelens.service.limits import image_cost
from facelens.service.state import Bucket, ServiceState

T = TypeVar("T")

__all__ = [
    "Gone",
    "Key",
    "State",
    "authenticate",
    "decode",
    "governed",
    "image_bytes",
    "override_reason",
    "rate_limited",
    "refused",
    "reserve",
    "reserve_images",
    "sandboxed",
    "scope",
]


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.facelens
    return state


State = Annotated[ServiceState, Depends(get_state)]


def authenticate(
    state: State,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    """The caller's key (``Authorization: Bearer fl_...`` or ``X-API-Key``), or 401: as the
    gate found it before the body was read (``facelens.service.gate``), else looked up."""
    found: ApiKey | None = request.scope.get(GATE_KEY)
    if found is not None:
        return found
    presented = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        presented = authorization[7:]
    if not presented:
        raise HttpError(401, "unauthorized", "an API key is needed", {"WWW-Authenticate": "Bearer"})
    key = state.keys.authenticate(presented)
    if key is None:
        raise HttpError(
            401, "unauthorized", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"}
        )
    return key


Key = Annotated[ApiKey, Depends(authenticate)]


def scope(name: str) -> Any:
    """A dependency: the caller's key, which must hold scope ``name`` (else 403)."""

    def check(key: Key) -> ApiKey:
        if not key.allows(name):
            raise HttpError(403, "forbidden", f"this key lacks the {name!r} scope")
        return key

    return Depends(check)


def rate_limited(state: ServiceState, key: ApiKey) -> None:
    """429 with ``Retry-After`` when ``key`` is past its identify rate."""
    s = state.settings
    with state.bucket_lock:
        b = state.buckets.setdefault(key.id, Bucket(s.identify_rate, s.identify_burst))
        wait = b.take()
    if wait > 0:
        raise HttpError(
            429,
            "rate_limited",
            "too many identify requests for this key",
            {"Retry-After": str(max(1, int(np.ceil(wait))))},
        )


def image_bytes(
    state: ServiceState, upload: UploadFile | None, url: str | None, field_name: str
) -> bytes:
    """An uploaded image's bytes, or an ``image_url``'s when the operator enabled them (public
    http(s) only, no redirects, bounded: ``facelens.service.fetch``)."""
    s = state.settings
    if upload is not None:
        data = upload.file.read(s.max_upload_bytes + 1)
        if len(data) > s.max_upload_bytes:
            raise ImageTooLargeError(
                field_name,
                f"upload over {s.max_upload_bytes} bytes",
                actual=len(data),
                limit=s.max_upload_bytes,
            )
        return data
    if url:
        if not s.allow_image_urls:
            raise HttpError(
                400,
                "image_urls_disabled",
                "image URLs are disabled on this service; upload the image",
            )
        from facelens.service.fetch import FetchError, fetch

        try:
            return fetch(url, s.max_upload_bytes, timeout=10.0, allow_private=s.image_urls_private)
        except FetchError as e:
            raise HttpError(400, "image_url_refused", str(e)) from None
    raise HttpError(400, "bad_input", f"{field_name}: upload an image")


@contextmanager
def reserve(state: ServiceState, nbytes: int) -> Iterator[None]:
    """Hold ``nbytes`` of the worker's memory budget while the request works (413 over the
    per-request budget, 503 when no share is free in time); large work's freed memory is
    handed back to the system at the end."""
    with state.memory.reserve(nbytes):
        try:
            yield
        finally:
            if nbytes > LARGE_BYTES:
                release_freed_memory()


# work over this (about 5 MP of pixels) hands its freed memory back when it ends
LARGE_BYTES = 160 * 2**20


@contextmanager
def reserve_images(
    state: ServiceState, images: list[bytes], each_may_fail: bool = False
) -> Iterator[None]:
    """Hold the memory ``images`` will take while the request works on them, sized from
    their headers and structure before anything is decoded (``facelens.decode.cost``): an
    unreadable header is a 400, over a limit (pixels, tile size, scans) or the per-request
    budget a 413, no share free within the time budget a 503. ``each_may_fail``
    (enrolment): an unreadable image is left for the work to reject."""
    cost = 0
    for data in images:
        try:
            cost += image_cost(probe_cost(data, state.decode_config))
        except InputError:
            if not each_may_fail:
                raise
            cost += image_cost(DecodeCost(0, 0, 0, 0))
    with reserve(state, cost):
        yield


def client_gone(request: Request) -> Callable[[], bool]:
    """A dependency: a function the route's thread may call to learn whether the client
    has gone (its connection closed), so that work done for nobody stops."""

    def gone() -> bool:
        try:
            return bool(anyio.from_thread.run(request.is_disconnected))
        except Exception:  # not in a worker thread, or the loop is closing
            return False

    return gone


Gone = Annotated[Callable[[], bool], Depends(client_gone)]


def sandboxed(call: Callable[[], T]) -> T:
    """A decode process's answer, its refusals mapped: none free in time is a 503, a
    client gone is a 499 (nobody reads it)."""
    try:
        return call()
    except Busy:
        raise HttpError(
            503,
            "busy",
            "the service is decoding other images; try again shortly",
            headers={"Retry-After": "2"},
        ) from None
    except Cancelled:
        raise HttpError(499, "client_closed_request", "the client went away") from None


def decode(
    state: ServiceState, data: bytes, gone: Callable[[], bool] | None = None, name: str = "image"
) -> tuple[NDArray[np.uint8], ImageMeta]:
    """Pixels and metadata of an uploaded image, within the service's limits, decoded in one
    of the worker's decode processes (``facelens.sandbox``) and stopped if the client goes."""
    return sandboxed(lambda: decode_isolated(state.sandbox, data, state.decode_config, name, gone))


def override_reason(key: ApiKey, reason: str | None) -> str | None:
    """An enrolment's ``override_face_check`` reason, which needs the key's
    ``enroll:override`` scope (403 otherwise): faces that do not match an enrolled person's
    templates are added only by a key allowed to, and the override is audited."""
    if reason is not None and not key.allows("enroll:override"):
        raise HttpError(403, "forbidden", "this key lacks the 'enroll:override' scope")
    return reason


def refused(state: ServiceState, key: ApiKey, gallery: str, action: str, why: str) -> None:
    """Record a refusal the route decided before reaching the gallery (a stream source the
    operator does not allow): in the trail as the library records its own, whether or not
    the gallery exists (nothing is created)."""
    GovernedGallery.in_store(
        state.store, state.audit, tenant=key.tenant, name=gallery, actor=key.id
    ).refused(action, why)


def governed(
    state: ServiceState, key: ApiKey, gallery: str, must_exist: bool = True
) -> GovernedGallery:
    """The key's tenant's gallery, governed: the only way a route reaches people (the stop
    control, consent, the integrity checks, every enrolment, search, change and erasure
    audited once, as the key)."""
    state.check_gallery(key.tenant, gallery, must_exist)
    return GovernedGallery.in_store(
        state.store, state.audit, tenant=key.tenant, name=gallery, actor=key.id
    )
