"""How the service runs: the settings ``facelens serve`` builds from its options and the
environment, and the stream-source allow-list they hold."""

import contextlib
import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from facelens.gallery.protect import TemplateKey

__all__ = ["AllowedSource", "ServiceSettings", "source_allowed"]


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
        max_body_bytes: largest upload body (multipart routes), refused (413) from its
            declared length before anything is read, or as soon as a streamed body passes it
            (``facelens.service.gate``); a route without a body accepts none.
        max_json_bytes: largest JSON body (JSON routes), likewise.
        body_idle_s: longest wait for the next piece of a request body (408 after).
        body_total_s: longest a request body may take to arrive in all (408 after).
        max_image_pixels: largest image a request may decode (width x height, checked from
            the file's header before decoding).
        request_memory_bytes: what one request's images may take once decoded, with the
            detector's working copies; checked from the headers before any decoding (413).
        memory_bytes: what all of a worker's requests together may take for image work;
            a request that cannot get its share within ``inference_budget_s`` is a 503.
        inference_budget_s: how long a request may wait for its share of ``memory_bytes``
            (and for one of the ``decode_workers``).
        decode_workers: processes that decode uploaded images, each under the memory and
            CPU limits its image's structure allows (``facelens.sandbox``): what a hostile
            file does to a decoder happens there, not in the worker.
        queue_budget_s: how long a request's faces may be expected to wait in the worker's
            inference queue (``facelens.service.inference``); past it the service answers
            503 with ``Retry-After`` instead of queueing more. 2 s, the latency the service's
            capacity is measured at (p99 under 2 s, ``benchmarks/soak.py``): with the
            default recognizer of issue 26 a face costs about four times what it did, and
            the 1 s before refused bursts that would have been answered within 2 s (179 of
            5,676 requests at 80% of capacity in a 10-minute soak).
        purge_interval_s: how often the service enforces retention (erases everyone the
            galleries' policies make due; also once at start); 0: never.
        template_key: the key that seals the store's templates (``FACELENS_KEY_FILE``;
            a store sealed with a key does not open without it).
        event_sinks: where every stream's events also go (``webhook:URL``,
            ``mqtt://HOST:PORT/TOPIC``, ``jsonl:FILE``), set by the operator; confirmed alerts
            are delivered there too.
        webhook_secret: signs webhook deliveries.
        read_replica: a hot standby of a PostgreSQL store that searches read from.
        model: the recognizer the operator named (``FACELENS_SERVE_MODEL``); None: the
            default, and a gallery holding none of its templates is searched with the
            templates it does hold (``facelens.gallery.held.search_config``). A named one a
            gallery has no templates of is refused (409), never searched empty.
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
    max_json_bytes: int = 1024 * 1024
    body_idle_s: float = 15.0
    body_total_s: float = 120.0
    max_image_pixels: int = 40_000_000
    request_memory_bytes: int = 1024 * 1024 * 1024
    memory_bytes: int = 2 * 1024 * 1024 * 1024
    inference_budget_s: float = 2.0
    decode_workers: int = 2
    queue_budget_s: float = 2.0
    purge_interval_s: float = 3600.0
    template_key: TemplateKey | None = None
    event_sinks: tuple[str, ...] = ()
    read_replica: str | None = None
    webhook_secret: bytes | None = None
    model: str | None = None


@dataclass
class AllowedSource:
    """A stream source the operator's patterns allow, as it is to be opened.

    Attributes:
        open_as: what the capture opens: a URL or camera number as given; for a file,
            ``/proc/self/fd/N`` of the file that was checked (held open here), so swapping a
            symlink after the check cannot make the capture open another file.
        fd: the checked file's descriptor (None for URLs and cameras); ``close()`` it when
            the stream ends.
    """

    open_as: str
    fd: int | None = None

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def source_allowed(source: str, patterns: tuple[str, ...]) -> AllowedSource | None:
    """The stream ``source`` as it is to be opened, when an operator's ``patterns`` allow it
    (see ``allow_sources``), else None. A file is opened here and its real path - that of the
    file open, not of the name, which a symlink swap can change - matched; the capture then
    opens that same file through its descriptor.

    Example:
        >>> source_allowed("rtsp://admin:pw@cams.local/door", ("rtsp://cams.local/*",))
        AllowedSource(open_as='rtsp://admin:pw@cams.local/door', fd=None)
        >>> source_allowed("/srv/videos/../../etc/shadow", ("/srv/videos/*",)) is None
        True
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", source):
        subject = re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@", r"\1", source)
        return AllowedSource(source) if _matches(subject, patterns) else None
    if source.isdigit():  # a local camera, by number: allowed only if named
        return AllowedSource(source) if _matches(source, patterns) else None
    if not _matches(os.path.realpath(source), patterns):
        return None  # decided on the name first: nothing outside the patterns is opened
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        if stat.S_ISREG(os.fstat(fd).st_mode) and _matches(real, patterns):
            return AllowedSource(f"/proc/self/fd/{fd}", fd)
    except OSError:
        pass
    os.close(fd)
    return None


def _matches(subject: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(subject, p) for p in patterns)
