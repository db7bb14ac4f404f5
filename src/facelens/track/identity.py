"""Identity per track, from that track's own evidence: embed a few of its best frames and,
at a bounded cadence, its recent ones; name it when enough of them agree; take the name away
the moment its own evidence stops supporting it; keep the best shot.

A name is evidence, never inheritance (STYLE.md, 17): a track is named only by samples of
its own faces good enough to judge, searched in the gallery with the gallery's calibrated
rule, and it holds the name as confirmed only while recent samples support it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facelens.match.decide import Candidate, IdentifyRule, as_rule

__all__ = [
    "Sample",
    "TrackIdentities",
    "TrackIdentityConfig",
    "TrackSummary",
    "TrackVerdict",
    "face_quality",
]

# how many of a track's latest usable samples' votes are remembered
VOTES = 32


@dataclass(frozen=True)
class TrackIdentityConfig:
    """How tracks are identified.

    Attributes:
        samples: best usable frames (by quality) whose mean is the track's aggregate.
        improvement: a later frame joins them only when its quality beats the worst kept
            one's by this factor (so a steady face costs few embeddings).
        unknown_after: samples after which a track still without a name is reported unknown.
        agree: usable samples that each pass the rule for the person, at least, before the
            track is named (with their aggregate passing it too and no sample passing it for
            anyone else).
        recheck_seconds: a track is embedded again at least this often (media seconds), so
            its name always rests on recent evidence; 0: on every detection.
        fresh_seconds: a name counts as confirmed while its latest supporting sample is at
            most this old; 0: only on the frame of the sample.
    """

    samples: int = 5
    improvement: float = 1.15
    unknown_after: int = 2
    agree: int = 2
    recheck_seconds: float = 0.5
    fresh_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.samples < 1 or not 1 <= self.agree <= VOTES:
            raise ValueError(f"samples must be >= 1 and agree in 1..{VOTES}")
        if self.recheck_seconds < 0 or self.fresh_seconds < 0:
            raise ValueError("recheck_seconds and fresh_seconds must be >= 0")


def face_quality(
    detection_score: float, inter_eye_px: float, yaw_deg: float, sharpness: float
) -> float:
    """One number to rank a track's frames: bigger, sharper, more frontal, surer is better.

    Example:
        >>> face_quality(1.0, 60, 0, 50) > face_quality(1.0, 30, 40, 5)
        True
    """
    size = min(inter_eye_px, 80.0) / 80.0
    frontal = max(0.0, 1.0 - abs(yaw_deg) / 60.0)
    sharp = min(1.0, sharpness / 10.0)
    return max(1e-6, detection_score) * size * frontal * sharp


@dataclass(frozen=True, eq=False)
class Sample:
    """One embedded face of a track.

    Attributes:
        track_id: the track.
        embedding: its unit template.
        quality: ``face_quality`` of the frame.
        time: media time of the frame, seconds.
        frame: the frame's index.
        usable: the face is good enough to judge (it passes the enrolment quality gate).
            Only usable samples count for or against a name; the others show only that
            the track is still there.
    """

    track_id: int
    embedding: NDArray[np.float32]
    quality: float
    time: float
    frame: int
    usable: bool = True


@dataclass(frozen=True)
class TrackVerdict:
    """A change in what a track is.

    Attributes:
        track_id: the track.
        kind: ``"identified"`` (named, on its own evidence), ``"unknown"`` (enough samples,
            no name) or ``"withdrawn"`` (its evidence no longer supports the name it had;
            ``reason`` says how).
        candidate: the best candidate of the aggregate (None when the gallery is empty or
            no usable sample was searched).
        score: its aggregated score.
        samples: usable embeddings aggregated so far.
        reason: for ``withdrawn``: ``"contradicted"`` (a sample of the track is someone else:
            the track must be split) or ``"unsupported"`` (its best views no longer reach
            the rule).
        previous: for ``withdrawn``: the identity id taken away.
        frame: the frame of the sample that decided.
    """

    track_id: int
    kind: str
    candidate: Candidate | None
    score: float | None
    samples: int
    reason: str = ""
    previous: str | None = None
    frame: int = -1


@dataclass(frozen=True, eq=False)
class TrackSummary:
    """A finished track: what it was judged to be, and its best shot (an aligned chip)."""

    identity_id: str | None
    score: float | None
    samples: int
    best_shot: NDArray[np.uint8] | None
    best_frame: int
    best_quality: float


@dataclass
class _State:
    best: list[tuple[float, NDArray[np.float32]]] = field(default_factory=list)
    # (best candidate, identity the sample alone passes the rule for) of the latest samples
    votes: deque[tuple[str | None, str | None]] = field(default_factory=lambda: deque(maxlen=VOTES))
    seen: int = 0  # samples offered, usable or not
    top_quality: float = 0.0  # the best quality among them
    identity: str | None = None
    reported_unknown: bool = False
    last_sample: float = -np.inf
    support: float = -np.inf
    best_quality: float = 0.0
    best_shot: NDArray[np.uint8] | None = None
    best_frame: int = -1
    score: float | None = None


Search = Callable[[NDArray[np.float32]], list[list[Candidate]]]


class TrackIdentities:
    """Decides who each track is, on its own evidence.

    Args:
        rule: what a candidate needs to be this track's identity: a similarity threshold or
            an ``IdentifyRule`` (the gallery's calibrated rule); the search given to ``add``
            must return ``rule.depth`` candidates per probe where the gallery has them.
        config: sampling, agreement and cadence.

    Example:
        >>> ids = TrackIdentities(0.9, TrackIdentityConfig(agree=2))
        >>> ann = Candidate("id-ann", "Ann", 0.95)
        >>> e = np.array([1.0, 0.0], np.float32)
        >>> [v.kind for v in ids.add([Sample(1, e, 0.5, 0.0, 0)], lambda p: [[ann]] * len(p))]
        []
        >>> [v.kind for v in ids.add([Sample(1, e, 0.5, 0.1, 3)], lambda p: [[ann]] * len(p))]
        ['identified']
        >>> ids.identity(1), ids.confirmed(1, 0.5), ids.confirmed(1, 2.0)
        ('id-ann', True, False)
    """

    def __init__(self, rule: IdentifyRule | float, config: TrackIdentityConfig | None = None):
        self.rule = as_rule(rule)
        self.config = config or TrackIdentityConfig()
        self._tracks: dict[int, _State] = {}

    def wants(self, track_id: int, quality: float, time: float) -> bool:
        """Is a frame of this quality, at this media time, worth embedding for this track?"""
        st = self._tracks.get(track_id)
        if st is None or st.seen < self.config.samples:
            return True
        if time - st.last_sample >= self.config.recheck_seconds:
            return True  # the name (or its absence) must rest on recent evidence
        worst = min(q for q, _ in st.best) if st.best else st.top_quality
        return quality > worst * self.config.improvement

    def offer_shot(
        self, track_id: int, quality: float, frame: int, crop: Callable[[], NDArray[np.uint8]]
    ) -> None:
        """Keep ``crop()`` as the track's best shot if this frame is its best so far."""
        st = self._tracks.setdefault(track_id, _State())
        if quality > st.best_quality:
            st.best_quality, st.best_frame, st.best_shot = quality, frame, crop()

    def add(self, samples: Sequence[Sample], search: Search) -> list[TrackVerdict]:
        """Add embedded frames (any tracks, one frame's worth) and decide again; returns a
        verdict for each track whose identity changed. ``search`` is called at most once,
        with each usable sample and each concerned track's aggregate as probes."""
        for s in samples:
            st = self._tracks.setdefault(s.track_id, _State())
            st.last_sample = max(st.last_sample, s.time)
            st.seen += 1
            st.top_quality = max(st.top_quality, s.quality)
        usable = [s for s in samples if s.usable]
        tracks = list(dict.fromkeys(s.track_id for s in usable))
        for s in usable:
            st = self._tracks[s.track_id]
            st.best.append((s.quality, np.asarray(s.embedding, np.float32)))
            st.best.sort(key=lambda b: -b[0])
            del st.best[self.config.samples :]
        found: list[list[Candidate]] = []
        if usable:
            aggregates = [np.mean([e for _, e in self._tracks[t].best], axis=0) for t in tracks]
            probes = np.vstack([*(s.embedding for s in usable), *aggregates]).astype(np.float32)
            found = search(probes)
        verdicts = []
        for t in dict.fromkeys(s.track_id for s in samples):
            mine = [(s, found[k]) for k, s in enumerate(usable) if s.track_id == t]
            aggregate = found[len(usable) + tracks.index(t)] if t in tracks else None
            latest = max((s for s in samples if s.track_id == t), key=lambda s: s.time)
            v = self._decide(t, mine, aggregate, latest)
            if v is not None:
                verdicts.append(v)
        return verdicts

    def _vote(self, cands: list[Candidate]) -> tuple[str | None, str | None]:
        top = cands[0].identity_id if cands else None
        passes = top if top is not None and self.rule.accepts([c.score for c in cands]) else None
        return top, passes

    def _decide(
        self,
        track_id: int,
        mine: list[tuple[Sample, list[Candidate]]],
        aggregate: list[Candidate] | None,
        latest: Sample,
    ) -> TrackVerdict | None:
        st = self._tracks[track_id]
        n = len(st.best)
        if aggregate is not None:  # usable evidence came: decide on it
            new_votes = [self._vote(c) for _, c in mine]
            st.votes.extend(new_votes)
            best = aggregate[0] if aggregate else None
            st.score = best.score if best else None
            _, named = self._vote(aggregate)
            if st.identity is not None:
                return self._recheck(track_id, st, new_votes, named, best, latest)
            if named is not None:
                agreeing = sum(1 for _, p in st.votes if p == named)
                others = any(p is not None and p != named for _, p in st.votes)
                if agreeing >= self.config.agree and not others:
                    st.identity, st.support = named, latest.time
                    return TrackVerdict(
                        track_id, "identified", best, st.score, n, frame=latest.frame
                    )
        if st.identity is None and not st.reported_unknown and st.seen >= self.config.unknown_after:
            st.reported_unknown = True
            return TrackVerdict(track_id, "unknown", None, st.score, n, frame=latest.frame)
        return None

    def _recheck(
        self,
        track_id: int,
        st: _State,
        new_votes: list[tuple[str | None, str | None]],
        named: str | None,
        best: Candidate | None,
        latest: Sample,
    ) -> TrackVerdict | None:
        """A named track's new usable samples: support, or take the name away."""
        previous = st.identity
        against = next((p for _, p in new_votes if p is not None and p != previous), None)
        if against is None and named == previous:
            st.support = latest.time
            return None
        st.identity, st.reported_unknown = None, True
        st.votes.clear()  # a name must be earned again by samples from now on
        reason = "contradicted" if against is not None else "unsupported"
        return TrackVerdict(
            track_id, "withdrawn", best, st.score, len(st.best), reason, previous, latest.frame
        )

    def best_shot(self, track_id: int) -> NDArray[np.uint8] | None:
        """The track's best shot so far (an aligned chip), or None."""
        st = self._tracks.get(track_id)
        return None if st is None else st.best_shot

    def identity(self, track_id: int) -> str | None:
        """The identity id the track holds now, or None."""
        st = self._tracks.get(track_id)
        return st.identity if st else None

    def confirmed(self, track_id: int, time: float) -> bool:
        """Does the track hold a name that a usable sample of its own supported at most
        ``fresh_seconds`` before ``time``?"""
        st = self._tracks.get(track_id)
        if st is None or st.identity is None:
            return False
        return 0.0 <= time - st.support <= self.config.fresh_seconds + 1e-9

    def end(self, track_id: int) -> TrackSummary:
        """Forget a track; returns its final state and best shot."""
        st = self._tracks.pop(track_id, None) or _State()
        return TrackSummary(
            st.identity, st.score, len(st.best), st.best_shot, st.best_frame, st.best_quality
        )
