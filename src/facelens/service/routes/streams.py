"""``/v1/streams`` and ``/v1/events``: watching video sources the operator allows, and their
live events as Server-Sent Events."""

import asyncio
import glob
import itertools
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from facelens.errors import InputError, NotFoundError, StoppedError
from facelens.events import EventBus
from facelens.govern.confirm import Alert
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import Key, State, governed, refused, scope
from facelens.service.errors import HttpError
from facelens.service.live import BOUNDARY, LiveResponse
from facelens.service.settings import source_allowed
from facelens.service.state import BusSink, Job, ServiceState, SharedSink, now_iso
from facelens.urls import redact_credentials

log = logging.getLogger(__name__)

router = gate.router(tags=["streams"])


def _own_job(state: ServiceState, stream_id: str, key: ApiKey) -> Job:
    j = state.jobs.get(stream_id)
    if j is None or j.tenant != key.tenant:
        raise NotFoundError("stream", stream_id)
    return j


@router.post("/v1/streams", response_model=S.StreamOut, status_code=201)
def start_stream(
    state: State, body: S.StreamIn, key: Annotated[ApiKey, scope("admin")]
) -> dict[str, Any]:
    """Start watching a video source against a gallery; events go to /v1/events."""
    from facelens.decode.video import VideoConfig, VideoSource
    from facelens.stream import HALTED, WatchConfig, WatchSession

    allowed = source_allowed(body.source, state.settings.allow_sources)
    if allowed is None:
        # decided on the text alone: nothing is opened, so the answer says nothing about
        # which files exist or which ports answer
        shown = redact_credentials(body.source)
        refused(state, key, body.gallery, "stream_start", f"source not allowed: {shown!r}")
        raise HttpError(
            403,
            "source_not_allowed",
            f"{shown!r} is not an allowed stream source; the "
            "operator allows sources with facelens serve --allow-source PATTERN "
            "(make run ALLOW_SOURCE=PATTERN)",
        )
    try:
        audited = governed(state, key, body.gallery)
        audited.refuse_if_stopped("stream_start")  # 423 (audited) before the source is opened
    except BaseException:
        allowed.close()
        raise
    # the source is opened in the job, not here: how long opening takes (a closed port, a
    # silent one) is not the request's answer time; shown without its credentials
    job = Job(
        uuid.uuid4().hex[:12], key.tenant, redact_credentials(body.source), body.gallery, now_iso()
    )

    def held(alert: Alert) -> None:  # live clients learn an alert waits (not whom it names)
        state.broadcaster.publish(
            key.tenant,
            job.id,
            {"type": "alert_pending", "alert": alert.id, "stream": job.id,
             "track_id": alert.track_id, "time": alert.created_at},
        )  # fmt: skip

    session = WatchSession(
        state.pipeline_for(body.upsample),
        audited,
        EventBus([BusSink(job, state.broadcaster), *(SharedSink(s, job) for s in state.sinks)]),
        WatchConfig(detect_every=body.detect_every, detect_max_side=body.detect_max_side),
        stream_id=job.id,
        on_held=held,
    )
    job.session = session

    def progress(st: Any) -> None:
        job.frames = st.frames

    def open_source() -> VideoSource:
        try:
            return VideoSource(allowed.open_as, VideoConfig())
        except Exception:
            raise InputError(job.source, "the source could not be opened") from None

    def run() -> None:
        job.status = "running"
        try:  # the session opens the source within the period of use, and closes it
            stats = session.run(open_source, on_progress=progress, name=job.source)
            job.frames = stats.frames
            if session.outcome.startswith(HALTED):
                job.error = session.outcome
            job.status = "finished" if session.outcome == "finished" else "stopped"
        except StoppedError:  # stopped after the request was answered, before the start
            job.status, job.error = "stopped", HALTED
        except Exception as e:  # the job reports it; the service goes on
            job.status, job.error = "failed", redact_credentials(e)
            log.error("stream %s failed: %s", job.id, job.error)
        finally:
            allowed.close()

    job.thread = threading.Thread(target=run, name=f"stream {job.id}", daemon=True)
    state.add_job(job)
    job.thread.start()
    return job.to_dict()


# files of the allowed folders offered to the web UI's form (a folder may hold many)
MAX_SOURCE_FILES = 100


@router.get("/v1/streams/sources", response_model=S.SourcesOut)
def sources(state: State, key: Annotated[ApiKey, scope("admin")]) -> dict[str, Any]:
    """What a stream may watch: the operator's patterns (``--allow-source``) and the first
    files they match on this host, for choosing one."""
    patterns = state.settings.allow_sources
    files: list[str] = []
    for pattern in patterns:
        if "://" in pattern or not os.path.isabs(pattern):
            continue
        left = MAX_SOURCE_FILES - len(files)
        found = itertools.islice(glob.iglob(pattern), left) if left > 0 else ()
        files += sorted(f for f in found if os.path.isfile(f) and source_allowed(f, patterns))
    return {"patterns": list(patterns), "files": files[:MAX_SOURCE_FILES]}


@router.get("/v1/streams", response_model=list[S.StreamOut])
def streams(state: State, key: Key) -> list[dict[str, Any]]:
    return [j.to_dict() for j in state.jobs.values() if j.tenant == key.tenant]


@router.get(
    "/v1/streams/{stream_id}", response_model=S.StreamOut, responses={404: {"model": S.ErrorOut}}
)
def get_stream(state: State, stream_id: str, key: Key) -> dict[str, Any]:
    return _own_job(state, stream_id, key).to_dict()


@router.delete(
    "/v1/streams/{stream_id}", response_model=S.StreamOut, responses={404: {"model": S.ErrorOut}}
)
def stop_stream(
    state: State, stream_id: str, key: Annotated[ApiKey, scope("admin")]
) -> dict[str, Any]:
    j = _own_job(state, stream_id, key)
    if j.session is not None:
        j.session.stop()
    if j.thread is not None:
        j.thread.join(timeout=10)
    return j.to_dict()


@router.get(
    "/v1/streams/{stream_id}/live",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}},
            "description": "JPEG parts, each with an X-Facelens-View header (JSON): a frame "
            "and its faces (boxes, track ids, names), or an ended track's best shot",
        },
        404: {"model": S.ErrorOut},
        409: {"model": S.ErrorOut},
        503: {"model": S.ErrorOut},
    },
)
def live(
    state: State,
    request: Request,
    stream_id: str,
    key: Annotated[ApiKey, scope("identify")],
    max_seconds: Annotated[float, Query(gt=0, le=86400)] = 3600.0,
) -> StreamingResponse:
    """What a running stream's camera sees, with its faces (``facelens.service.live``):
    at most 10 frames a second of at most 640 px, frames dropped rather than queued for a
    slow client; it ends with the watch (stopped, finished, the stop control) or when the
    key is revoked."""
    j = _own_job(state, stream_id, key)
    if j.session is None or j.status not in ("starting", "running"):
        raise HttpError(409, "stream_not_running", f"stream {stream_id} is {j.status}")
    feed, viewer = state.live.join(j.id, j.session)
    recheck = state.live.config.recheck_s

    def still_allowed() -> bool:
        try:
            k = state.keys.get(key.id, key.tenant)
        except NotFoundError:
            return False
        return k.revoked_at is None and k.allows("identify")

    async def gen() -> AsyncIterator[bytes]:
        # on the event loop, like /v1/events: a viewer holds no worker thread; a slow one
        # waits in its own send while the feed replaces its unsent frame
        end = time.monotonic() + max_seconds
        checked = time.monotonic()
        try:
            while time.monotonic() < end:
                parts = viewer.take()
                if parts is None:
                    break
                for part in parts:
                    yield part
                if not parts:
                    await asyncio.sleep(LIVE_POLL_S)
                if time.monotonic() - checked >= recheck:
                    # a client gone while no frame came (a camera out) is noticed here too
                    checked = time.monotonic()
                    if await request.is_disconnected():
                        break
                    if not await anyio.to_thread.run_sync(still_allowed):
                        break
            yield f"--{BOUNDARY}--\r\n".encode()
        finally:
            feed.leave(viewer)

    return LiveResponse(
        gen(),
        state.live.config.send_timeout_s,
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )


# how often a live viewer's connection looks for a new frame (the feed sends at most 10/s)
LIVE_POLL_S = 0.02


@router.get(
    "/v1/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events, one per stream event",
        }
    },
)
def events(
    state: State,
    key: Annotated[ApiKey, scope("identify")],
    stream: Annotated[str | None, Query(max_length=64)] = None,
    max_seconds: Annotated[float, Query(gt=0, le=86400)] = 3600.0,
) -> StreamingResponse:
    """Live events of this tenant's stream jobs (``stream`` to follow one)."""
    if stream is not None:
        _own_job(state, stream, key)
    q = state.broadcaster.subscribe(key.tenant, stream, state.settings.max_subscribers)

    async def gen() -> AsyncIterator[bytes]:
        # an async generator on the event loop: a subscriber holds no worker thread, so
        # open event streams cannot stall the other routes (a client that goes away
        # cancels it, which unsubscribes)
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
