"""The security headers every answer carries, UI page or API document alike.

The web UI and the API reference are the service's own files: scripts, styles and images
from the service's origin only, no inline script or event handler, no third-party host
(``Content-Security-Policy``); no page may be framed by another site (``frame-ancestors``,
``X-Frame-Options`` for older browsers); no content-type guessing (``nosniff``); no
``Referer`` sent on anywhere (a stream or gallery name in a URL stays here).
"""

from typing import Any

__all__ = ["CSP", "SECURITY_HEADERS", "SecurityHeaders"]

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: the UI shows pictures it fetched with the key (thumbnails, best shots)
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeaders:
    """ASGI middleware: ``SECURITY_HEADERS`` on every HTTP answer (the outermost layer, so
    errors, refusals and streamed answers get them too); a header a route set itself is
    left as it is."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
