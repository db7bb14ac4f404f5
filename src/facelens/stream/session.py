"""``WatchSession``: a governed watch, the one way the command line and the service watch a
source against a gallery.

It keeps the promises of a live identification in one place: the period of use is in the
gallery's audit trail (a start record, after the retention policy has erased whoever is
due, and a stop record saying how much was seen and why it ended); every search of a track's
evidence is an audited search of the governed gallery; a gallery that wants two people to
confirm identifications gets them held as alerts; the operator's stop control
(``facelens govern stop``, ``POST /v1/govern/stop``) ends the watch within a second; live
views subscribe to its frames (``subscribe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from facelens.decode.video import VideoSource
from facelens.errors import StoppedError
from facelens.events import EventBus
from facelens.stream.observe import FrameView, Subscription
from facelens.stream.watcher import WatchConfig, Watcher, WatchStats

if TYPE_CHECKING:
    from facelens.govern import GovernedGallery
    from facelens.govern.confirm import Alert
    from facelens.pipeline import Pipeline

__all__ = ["HALTED", "Opener", "WatchSession"]

HALTED = "identification stopped by the operator"


Opener = Callable[[], VideoSource]


class WatchSession:
    """A governed watch against ``gallery`` (None: no gallery, every face unknown).

    Args:
        pipeline: detection, alignment, embedding.
        gallery: the governed gallery.
        bus: where events go (the caller closes it).
        config: how to watch.
        stream_id: the service's id of the stream ("" for the command line).
        on_held: called with each alert held for confirmation (the service tells its live
            clients that one waits, without whom it names).
        check_every: seconds between looks at the stop control.

    Example:
        >>> import inspect
        >>> list(inspect.signature(WatchSession.run).parameters)[1:]
        ['source', 'max_frames', 'on_frame', 'on_progress', 'name']
    """

    def __init__(
        self,
        pipeline: Pipeline,
        gallery: GovernedGallery | None,
        bus: EventBus,
        config: WatchConfig | None = None,
        *,
        stream_id: str = "",
        on_held: Callable[[Alert], None] | None = None,
        check_every: float = 1.0,
    ) -> None:
        self.pipeline, self.gallery = pipeline, gallery
        self.stream_id = stream_id
        self.check_every = check_every
        hold = gallery.confirmation(stream_id, on_held) if gallery is not None else None
        self.watcher = Watcher(pipeline, gallery, bus, config, hold=hold)
        self.outcome = ""  # "finished", "stopped", HALTED, "interrupted" or "failed: ..."
        self._halted = False

    @property
    def stats(self) -> WatchStats:
        return self.watcher.stats

    @property
    def holds_alerts(self) -> bool:
        """Does the gallery want two people to confirm identifications (so none is sent)?"""
        return self.watcher.hold is not None

    def subscribe(self) -> Subscription:
        """A live view of the processed frames and ended tracks (``facelens.stream``)."""
        return self.watcher.observers.subscribe()

    def stop(self) -> None:
        """End the watch after the current frame (after its first if it has not begun)."""
        self.watcher.stop()

    def halted(self) -> bool:
        """Has the operator stopped this tenant's identifications? Asked of the governed
        gallery (its stop control): a running watch's look is audited as a refused
        ``stream_search`` when it is stopped."""
        g = self.gallery
        if g is None:
            return False
        try:
            g.refuse_if_stopped("stream_search")
        except StoppedError:
            return True
        return False

    def run(
        self,
        source: VideoSource | Opener,
        max_frames: int | None = None,
        on_frame: Callable[[FrameView], None] | None = None,
        on_progress: Callable[[WatchStats], None] | None = None,
        name: str | None = None,
    ) -> WatchStats:
        """Watch ``source`` to its end (or ``max_frames``, ``stop()``, the stop control).

        ``source`` is an open ``VideoSource`` (the caller closes it) or a function opening
        one within the period of use (closed here): a source that cannot be opened is then
        in the audit trail too. ``name``: the source as events and the audit trail show it
        (default: the source's own name, without credentials).

        Raises:
            StoppedError: the operator has stopped this tenant's identifications (the
                refusal is in the audit trail; nothing is opened).
        """
        shown = name or (source.name if isinstance(source, VideoSource) else "")
        g = self.gallery
        if g is not None:  # refused (StoppedError, audited) while stopped
            g.stream_started(shown, self.pipeline.model, self.stream_id)
        opened = None
        self.outcome = "failed"
        try:
            if isinstance(source, VideoSource):
                video = source
            else:
                video = opened = source()
            self._watch(video, max_frames, on_frame, on_progress, shown or video.name)
        except StoppedError as e:  # a search refused while the watch ran
            self.outcome = f"{HALTED} ({e.reason or 'no reason given'})"
        except KeyboardInterrupt:
            self.outcome = "interrupted"
            raise
        except BaseException as e:
            self.outcome = f"failed: {type(e).__name__}"
            raise
        finally:
            if opened is not None:
                opened.close()
            if g is not None:
                st = self.watcher.stats
                g.stream_stopped(shown, st.frames, st.events, self.stream_id, self.outcome)
        return self.watcher.stats

    def _watch(
        self,
        video: VideoSource,
        max_frames: int | None,
        on_frame: Callable[[FrameView], None] | None,
        on_progress: Callable[[WatchStats], None] | None,
        name: str,
    ) -> None:
        """The watch itself, looking at the stop control every ``check_every`` seconds."""
        checked = time.monotonic()

        def progress(st: WatchStats) -> None:
            nonlocal checked
            if time.monotonic() - checked >= self.check_every:
                checked = time.monotonic()
                if self.halted():
                    self._halted = True
                    self.watcher.stop()
            if on_progress is not None:
                on_progress(st)

        self.watcher.run(video, max_frames, on_frame, progress, name=name)
        stopped = "stopped" if self.watcher.stopping else "finished"
        self.outcome = HALTED if self._halted else stopped
