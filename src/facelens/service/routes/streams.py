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

from fastapi import Query
from fastapi.responses import StreamingResponse

from facelens.errors import InputError, NotFoundError, StoppedError
from facelens.events import EventBus
from facelens.govern.confirm import Alert
from facelens.govern.keys import ApiKey
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import Key, State, governed, refused, scope
from facelens.service.errors import HttpError
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
    from facelens.watch import WatchConfig, Watcher

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

    watcher = Watcher(
        state.pipeline_for(body.upsample),
        audited,
        EventBus([BusSink(job, state.broadcaster), *(SharedSink(s, job) for s in state.sinks)]),
        WatchConfig(detect_every=body.detect_every, detect_max_side=body.detect_max_side),
        hold=audited.confirmation(job.id, held),
    )
    job.watcher = watcher

    checked = [time.monotonic()]

    def progress(st: Any) -> None:
        job.frames = st.frames
        # the stop control reaches running streams within a second, whichever worker
        # took the stop request
        if time.monotonic() - checked[0] >= 1.0:
            checked[0] = time.monotonic()
            if state.stop.status(job.tenant).stopped:
                job.error = "identification stopped by the operator"
                watcher.stop()

    def run() -> None:
        job.status = "running"
        started = False
        source = None
        try:
            audited.stream_started(job.source, watcher.pipe.model, job.id)  # the period of use
            started = True
            try:
                source = VideoSource(allowed.open_as, VideoConfig())
            except Exception:
                raise InputError(job.source, "the source could not be opened") from None
            stats = watcher.run(source, on_progress=progress)
            job.frames = stats.frames
            job.status = "stopped" if watcher._stop else "finished"
        except StoppedError:  # a search refused by the stop control ends the watch
            job.status, job.error = "stopped", "identification stopped by the operator"
        except Exception as e:  # the job reports it; the service goes on
            job.status, job.error = "failed", redact_credentials(e)
            log.error("stream %s failed: %s", job.id, job.error)
        finally:
            if source is not None:
                source.close()
            allowed.close()
            if started:
                audited.stream_stopped(
                    job.source, job.frames, job.events, job.id, job.error or job.status
                )

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
    if j.watcher is not None:
        j.watcher.stop()
    if j.thread is not None:
        j.thread.join(timeout=10)
    return j.to_dict()


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
