"""What every route passes through: the worker's state, the API key and its scope, the
per-key rate limit, and reading an image within the upload limits. A new route gets these by
declaring them, so it cannot forget a check."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Header, Request, UploadFile

from facelens.decode.image import ImageMeta, decode_image, probe_image
from facelens.errors import ImageTooLargeError, InputError
from facelens.govern import GovernedGallery
from facelens.govern.keys import ApiKey
from facelens.service.errors import HttpError
from facelens.service.limits import image_cost, release_freed_memory
from facelens.service.state import Bucket, ServiceState

__all__ = [
    "Key",
    "State",
    "authenticate",
    "decode",
    "governed",
    "image_bytes",
    "override_reason",
    "rate_limited",
    "refused",
    "reserve_images",
    "scope",
]


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.facelens
    return state


State = Annotated[ServiceState, Depends(get_state)]


def authenticate(
    state: State,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    """The caller's key (``Authorization: Bearer fl_...`` or ``X-API-Key``), or 401."""
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
def reserve_images(
    state: ServiceState, images: list[bytes], each_may_fail: bool = False
) -> Iterator[None]:
    """Hold the memory ``images`` will take while the request works on them, sized from
    their headers before anything is decoded: an unreadable header is a 400, over the pixel
    limit or the per-request budget a 413, no share free within the time budget a 503.
    ``each_may_fail`` (enrolment): an unreadable image is left for the work to reject."""
    cost = 0
    for data in images:
        try:
            cost += image_cost(*probe_image(data, state.decode_config))
        except InputError:
            if not each_may_fail:
                raise
            cost += image_cost(0, 0)
    with state.memory.reserve(cost):
        try:
            yield
        finally:
            if cost - len(images) * image_cost(0, 0) > 64 * 2**20:  # over ~5 MP of pixels
                release_freed_memory()


def decode(state: ServiceState, data: bytes) -> tuple[Any, ImageMeta]:
    """Pixels and metadata of an uploaded image, within the service's limits."""
    return decode_image(data, state.decode_config)


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
