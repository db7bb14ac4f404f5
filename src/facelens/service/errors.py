"""Every answer the service gives that is not a success, in one place: domain errors mapped
to HTTP statuses (``STATUS``), the framework's refusals in the same ``{error, detail,
reasons}`` shape, and the 500 that says nothing of the inside (what is refused before a
request's body is read is in ``gate``)."""

import logging
import traceback
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facelens.errors import (
    ConflictError,
    EnrollmentError,
    FacelensError,
    GalleryError,
    IdentityMismatchError,
    ImageTooLargeError,
    InputError,
    MissingDependencyError,
    ModelError,
    NoTemplatesError,
    NotFoundError,
    PolicyError,
    StoppedError,
)
from facelens.urls import redact_credentials

__all__ = ["STATUS", "HttpError", "Unexpected", "error_body", "install_handlers"]

log = logging.getLogger(__name__)


class HttpError(Exception):
    """An error the API answers with directly (auth, scopes, rate limits, bad requests)."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status, self.error, self.detail, self.headers = status, error, detail, headers
        super().__init__(detail)


# Domain errors -> HTTP, in this one place (most specific first). Anything else - a
# ValueError included - is a bug, answered 500 with a reference and logged.
STATUS: list[tuple[type[Exception], int, str]] = [
    (ImageTooLargeError, 413, "image_too_large"),
    (EnrollmentError, 422, "no_usable_face"),
    (InputError, 400, "bad_input"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (NoTemplatesError, 409, "no_templates"),
    (StoppedError, 423, "identification_stopped"),
    (IdentityMismatchError, 409, "identity_mismatch"),
    (PolicyError, 422, "refused_by_policy"),
    (MissingDependencyError, 503, "dependency_missing"),
    (ModelError, 503, "model_unavailable"),
    (GalleryError, 500, "gallery_error"),
]

# the framework's own refusals, named like ours
FRAMEWORK_NAMES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_body(error: str, detail: str, reasons: list[str] | None = None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "reasons": reasons or []}


def internal_error(e: BaseException) -> tuple[dict[str, Any], int]:
    """A 500 that says nothing of the inside: the traceback goes to the log (credentials
    redacted) under a reference that the answer gives, so an operator can find it."""
    ref = uuid.uuid4().hex[:12]
    trace = "".join(traceback.format_exception(e))
    log.error("internal error %s:\n%s", ref, redact_credentials(trace))
    return error_body("internal_error", f"internal error (reference {ref})"), 500


def install_handlers(app: FastAPI) -> None:
    """Map every exception a route may raise to its answer."""

    @app.exception_handler(HttpError)
    def _http_error(_: Request, e: HttpError) -> JSONResponse:
        return JSONResponse(error_body(e.error, e.detail), e.status, headers=e.headers)

    @app.exception_handler(FacelensError)
    def _domain_error(_: Request, e: FacelensError) -> JSONResponse:
        for kind, status, error in STATUS:
            if isinstance(e, kind) and status < 500:
                return JSONResponse(
                    error_body(error, str(e), list(getattr(e, "reasons", []))), status
                )
            if isinstance(e, kind) and status == 503:
                what = "a model" if isinstance(e, ModelError) else "a system component"
                return JSONResponse(error_body(error, f"{what} is not available"), status)
        return JSONResponse(*internal_error(e))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(_: Request, e: RequestValidationError) -> JSONResponse:
        # one sentence naming each bad field, and the fields as reasons
        # ("query.limit: Input should be greater than or equal to 1")
        reasons = []
        for err in e.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            reasons.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse(
            error_body("invalid_request", "; ".join(reasons) or "invalid request", reasons), 422
        )

    @app.exception_handler(StarletteHTTPException)
    def _framework_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        # unknown route, wrong method, a multipart body with too many parts
        return JSONResponse(
            error_body(FRAMEWORK_NAMES.get(e.status_code, "http_error"), str(e.detail)),
            e.status_code,
            headers=e.headers,
        )


class Unexpected:
    """ASGI middleware: any exception no handler took becomes ``internal_error``'s 500 here,
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
            body, status = internal_error(e)
            await JSONResponse(body, status)(scope, receive, send)
