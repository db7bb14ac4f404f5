"""A track is named only on enough agreeing evidence of its own, holds the name as confirmed
only while recent samples support it, and loses it the moment a sample names someone else."""

from __future__ import annotations

import numpy as np

from facelens.match import Candidate
from facelens.track import Sample, TrackIdentities, TrackIdentityConfig

ANN = Candidate("id-ann", "Ann", 0.0)
BOB = Candidate("id-bob", "Bob", 0.0)
E = np.array([1.0, 0.0], np.float32)


def answering(*scores: tuple[Candidate, float]):  # type: ignore[no-untyped-def]
    """A search giving every probe the same ranked candidates."""
    ranked = [Candidate(c.identity_id, c.name, s) for c, s in scores]
    return lambda probes: [ranked] * len(probes)


def sample(t: float, track: int = 1, usable: bool = True) -> Sample:
    return Sample(track, E, 0.5, t, round(t * 30), usable)


def test_a_name_needs_agreeing_samples_that_each_pass_the_rule() -> None:
    ids = TrackIdentities(0.9, TrackIdentityConfig(agree=2, unknown_after=2))
    weak = answering((ANN, 0.85))
    assert ids.add([sample(0.0)], weak) == []
    assert [v.kind for v in ids.add([sample(0.1)], weak)] == ["unknown"]
    # the aggregate passing is not enough: the weak samples do not count as agreement
    strong = answering((ANN, 0.95))
    assert ids.add([sample(0.2)], strong) == []
    [v] = ids.add([sample(0.3)], strong)
    assert v.kind == "identified" and v.candidate is not None and v.candidate.name == "Ann"
    assert ids.identity(1) == "id-ann"


def test_faces_too_poor_to_judge_never_name_a_track() -> None:
    ids = TrackIdentities(0.9, TrackIdentityConfig(agree=1, unknown_after=2))
    calls = []

    def search(probes):  # type: ignore[no-untyped-def]
        calls.append(len(probes))
        return [[Candidate("id-ann", "Ann", 0.99)]] * len(probes)

    verdicts = [v.kind for t in range(4) for v in ids.add([sample(t / 10, usable=False)], search)]
    assert verdicts == ["unknown"] and ids.identity(1) is None
    assert calls == []  # nothing was even searched


def test_a_sample_naming_someone_else_takes_the_name_away_at_once() -> None:
    ids = TrackIdentities(0.9, TrackIdentityConfig(agree=1))
    [v] = ids.add([sample(0.0)], answering((ANN, 0.95), (BOB, 0.5)))
    assert v.kind == "identified"
    [v] = ids.add([sample(0.1)], answering((BOB, 0.96), (ANN, 0.7)))
    assert (v.kind, v.reason, v.previous) == ("withdrawn", "contradicted", "id-ann")
    assert ids.identity(1) is None and not ids.confirmed(1, 0.1)


def test_a_name_whose_best_views_no_longer_reach_the_rule_is_withdrawn() -> None:
    ids = TrackIdentities(0.9, TrackIdentityConfig(agree=1))
    ids.add([sample(0.0)], answering((ANN, 0.95)))
    [v] = ids.add([sample(0.1)], answering((ANN, 0.6)))
    assert (v.kind, v.reason) == ("withdrawn", "unsupported")


def test_a_name_is_confirmed_only_while_recent_samples_support_it() -> None:
    cfg = TrackIdentityConfig(agree=1, fresh_seconds=1.0, recheck_seconds=0.5)
    ids = TrackIdentities(0.9, cfg)
    ids.add([sample(0.0)], answering((ANN, 0.95)))
    assert ids.confirmed(1, 0.9) and not ids.confirmed(1, 1.2)
    # the recheck cadence asks for a new sample in time
    ids.add([sample(t / 10) for t in range(1, 5)], answering((ANN, 0.95)))
    assert not ids.wants(1, 0.1, 0.45) and ids.wants(1, 0.1, 0.95)
    ids.add([sample(1.1)], answering((ANN, 0.95)))
    assert ids.confirmed(1, 2.0) and ids.identity(1) == "id-ann"


def test_tracks_are_judged_apart_in_one_search() -> None:
    ids = TrackIdentities(0.9, TrackIdentityConfig(agree=1))
    seen = []

    def search(probes):  # type: ignore[no-untyped-def]
        seen.append(len(probes))
        return [[Candidate("id-ann", "Ann", 0.95)], [Candidate("id-bob", "Bob", 0.97)]] * 2

    verdicts = ids.add([sample(0.0, track=1), sample(0.0, track=2)], search)
    assert seen == [4]  # two samples and two aggregates, one search
    assert {v.track_id: v.candidate.name for v in verdicts if v.candidate} == {1: "Ann", 2: "Bob"}
