"""What a request passes before any of its body is read, in one ASGI middleware (``Gate``):

1. its route's body allowance (``RoutePolicy``, derived from the route itself: no body for a
   route that takes none, ``max_json_bytes`` for a JSON body, ``max_body_bytes`` for
   uploads): a ``Content-Length`` over it is a 413 at once; a streamed body is cut off (413)
   as soon as it passes it;
2. its key, from the headers alone, for every route that needs one: no key or an unknown or
   revoked key is a 401 before a byte of the body is read (the lookup runs in a thread of
   its own, off the event loop); the key found is handed to the route's dependencies in the
   scope, so it is looked up once;
3. how long its body may take: ``body_idle_s`` between two pieces of it, ``body_total_s``
   in all; past either, a 408 and the connection is closed.

JSON bodies are then parsed off the event loop, after a check that they nest at most
``MAX_JSON_DEPTH`` deep (``JsonRoute``, the route class of every router: ``router()``).

It also stamps every answer with ``X-Facelens-Worker`` (the process) and ``Server-Timing``
(the service's own time on the request), and records that time per tenant and route
(``/v1/health/load`` shows a tenant its own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from facelens.service.errors import error_body

if TYPE_CHECKING:
    from facelens.govern.keys import ApiKey
    from facelens.service.state import ServiceState

__all__ = ["MAX_JSON_DEPTH", "Gate", "JsonRoute", "RoutePolicy", "router"]

# the scope key under which the gate hands the request's key to the route
KEY = "facelens.key"
MAX_JSON_DEPTH = 32
# key lookups at once (each is a store read in a thread, off the event loop)
AUTH_THREADS = anyio.CapacityLimiter(8)
JSON_THREADS = anyio.CapacityLimiter(4)


@dataclass(frozen=True)
class RoutePolicy:
    """What a route allows before its body is read.

    Attributes:
        needs_key: the route (through its dependencies) needs an API key.
        body_bytes: the largest body it accepts (0: none).
    """

    needs_key: bool
    body_bytes: int


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a streamed body passes its route's allowance: an HTTP
    exception, so the framework's body parsing passes it on as it is (a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit} bytes this route accepts")


class BodyTooSlow(StarletteHTTPException):
    """Raised from ``receive`` when a body stalls or takes too long (a 408)."""

    def __init__(self, detail: str) -> None:
        super().__init__(408, detail, headers={"Connection": "close"})


def _needs_key(dependant: Any) -> bool:
    from facelens.service.deps import authenticate

    return dependant.call is authenticate or any(_needs_key(d) for d in dependant.dependencies)


def policy_of(route: APIRoute, json_bytes: int, upload_bytes: int) -> RoutePolicy:
    """A route's ``RoutePolicy``, read from its declaration."""
    body = route.body_field
    if body is None:
        allowance = 0
    elif isinstance(body.field_info, params.Form):
        allowance = upload_bytes
    else:
        allowance = json_bytes
    return RoutePolicy(_needs_key(route.dependant), allowance)


def json_depth(body: bytes) -> int:
    """How deep a JSON text nests (strings skipped; not a validation of the text).

    Example:
        >>> json_depth(b'{"a": [1, {"b": "[[["}], "c": []}')
        3
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in body.translate(None, _NOT_STRUCTURAL):
        if in_string:
            if escaped:
                escaped = False
            elif ch == 0x5C:  # backslash
                escaped = True
            elif ch == 0x22:
                in_string = False
        elif ch == 0x22:
            in_string = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return deepest


# everything but what decides nesting: quotes, backslashes and brackets
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'"\\[]{}')


def parse_json(body: bytes) -> Any:
    """A JSON body, refused (422) when it nests deeper than ``MAX_JSON_DEPTH``."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body",),
                    "msg": f"JSON nested {depth} deep, deeper than {MAX_JSON_DEPTH}",
                    "input": {},
                }
            ]
        )
    return json.loads(body)


class JsonRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is parsed in a thread (the event loop serves other
    requests meanwhile), after its nesting is checked; invalid JSON is left to FastAPI's own
    answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body = self.body_field
        if body is None or isinstance(body.field_info, params.Form):
            return handler

        async def parsed_first(request: Request) -> Response:
            data = await request.body()
            kind = request.headers.get("content-type", "application/json").split(";")[0]
            if data and (kind.strip() == "application/json" or kind.strip().endswith("+json")):
                try:
                    value = await anyio.to_thread.run_sync(parse_json, data, limiter=JSON_THREADS)
                except ValueError:
                    pass  # FastAPI answers it (422 json_invalid)
                else:
                    request._json = value  # what Request.json() returns, parsed once
            return await handler(request)

        return parsed_first


def router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes are ``JsonRoute``s (every router of the service)."""
    return APIRouter(route_class=JsonRoute, **kwargs)


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key a request presents (``Authorization: Bearer`` or ``X-API-Key``)."""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    x = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return x or None


class Gate:
    """The ASGI middleware described in the module docstring.

    Args:
        app: the next ASGI app.
        routes: the application's routes (their declarations decide the policies).
        state: the worker's state (keys, timings).
        worker: how answers name the worker (its process id).
    """

    def __init__(self, app: Any, routes: list[Any], state: ServiceState, worker: str) -> None:
        self.app, self.state, self.worker = app, state, worker
        s = state.settings
        self._policies = [
            (r, policy_of(r, s.max_json_bytes, s.max_body_bytes))
            for r in routes
            if isinstance(r, APIRoute)
        ]

    def _policy(self, scope: dict[str, Any]) -> RoutePolicy:
        for route, policy in self._policies:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return policy
        return RoutePolicy(False, 0)  # unknown routes, wrong methods, static files: no body

    async def _answer(
        self, send: Any, status: int, error: str, detail: str, headers: dict[str, str]
    ) -> None:
        body = json.dumps(error_body(error, detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _key(self, headers: dict[bytes, bytes]) -> tuple[ApiKey | None, str]:
        presented = presented_key(headers)
        if not presented:
            return None, "an API key is needed"
        if len(presented) > 256 or not presented.startswith("fl_"):
            return None, "unknown or revoked API key"
        key = await anyio.to_thread.run_sync(
            self.state.keys.authenticate, presented, limiter=AUTH_THREADS
        )
        return key, "unknown or revoked API key"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        started = False

        async def stamped(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ms = (time.perf_counter() - t0) * 1000
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-facelens-worker", self.worker.encode()),
                    (b"server-timing", f"app;dur={ms:.1f}".encode()),
                ]
                key = scope.get(KEY)
                if key is not None:
                    route = scope.get("route")
                    self.state.timings.record(key.tenant, getattr(route, "path", "other"), ms)
            await send(message)

        s = self.state.settings
        policy = self._policy(scope)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > policy.body_bytes):
            await self._answer(
                stamped,
                413,
                "body_too_large",
                f"request body over the {policy.body_bytes} bytes this route accepts",
                {},
            )
            return
        if policy.needs_key:
            key, why = await self._key(headers)
            if key is None:
                await self._answer(
                    stamped, 401, "unauthorized", why, {"WWW-Authenticate": "Bearer"}
                )
                return
            scope[KEY] = key
        seen, deadline, done = 0, time.monotonic() + s.body_total_s, False

        async def limited_receive() -> Any:
            nonlocal seen, done
            if done:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            left = min(s.body_idle_s, deadline - time.monotonic())
            message: Any = None
            with anyio.move_on_after(max(left, 0.0)):
                message = await receive()
            if message is None:
                raise BodyTooSlow(
                    f"the request body took longer than {s.body_total_s:g} s"
                    if time.monotonic() >= deadline
                    else f"no part of the request body came for {s.body_idle_s:g} s"
                )
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > policy.body_bytes:
                    raise BodyTooLarge(policy.body_bytes)
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        try:
            await self.app(scope, limited_receive, stamped)
        except (BodyTooLarge, BodyTooSlow) as e:
            if not started:
                await self._answer(
                    stamped,
                    e.status_code,
                    "body_too_large" if e.status_code == 413 else "request_timeout",
                    str(e.detail),
                    {},
                )
