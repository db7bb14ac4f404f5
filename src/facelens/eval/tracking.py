"""Scoring face tracks and names in a video against hand labels: wrong names, identity
switches, IDF1, and what a redaction covered.

Labels (``ClipLabels``): for some frames, every face with its box and who it is (a person
key such as ``"obama"``, or ``"other:<n>"`` for anyone not among the clip's people), ``hard``
for faces too dim, blurred or cut to count (they count neither way, except that a name on one
is still a wrong name). Output (``FaceOut``): per frame, the boxes a system showed, their
track ids and the names it put on them.

- **wrong names**: labelled face-frames shown with a name that is not that person's, plus
  names put on something that is no labelled face. The one number that must be 0.
- **identity switches** (CLEAR MOT): a person's matched track differs from the one they were
  matched to at their previous labelled frame. **mixed tracks**: tracks matched to two or
  more people (a track carried from one person to another).
- **IDF1** (Ristani et al. 2016): the share of labelled and shown face-frames that the best
  one-to-one pairing of people and tracks explains.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facelens.errors import InputError
from facelens.eval.boxes import pair_boxes

__all__ = [
    "ClipLabels",
    "FaceOut",
    "LabelledFace",
    "RedactionScores",
    "TrackingScores",
    "best_pairing",
    "read_clip_labels",
    "score_redaction",
    "score_tracking",
]

# a box a system shows is this face when they overlap at least this much
NAME_IOU = 0.3
# the IoU of a match in IDF1 and identity switches (the MOT convention)
TRACK_IOU = 0.5


@dataclass(frozen=True)
class LabelledFace:
    """One face in a labelled frame: box ``[x1, y1, x2, y2]``, who (a person key, or
    ``other:...``), and whether it is too hard to count."""

    box: tuple[float, float, float, float]
    who: str
    hard: bool = False

    @property
    def other(self) -> bool:
        return self.who.startswith("other")


@dataclass(frozen=True)
class ClipLabels:
    """A clip's labels: the faces of each labelled frame, and the clip's named people."""

    frames: dict[int, tuple[LabelledFace, ...]]
    people: dict[str, str] = field(default_factory=dict)
    shots: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "people": self.people,
            "shots": [list(s) for s in self.shots],
            "labels": {
                str(f): [
                    {"box": list(x.box), "who": x.who, **({"hard": True} if x.hard else {})}
                    for x in faces
                ]
                for f, faces in sorted(self.frames.items())
            },
        }


def read_clip_labels(path: str | Path) -> ClipLabels:
    """Read a labels file (``tests/video/labels/README.md`` describes the format)."""
    try:
        doc = json.loads(Path(path).read_text())
        frames = {
            int(f): tuple(
                LabelledFace(
                    (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                    str(x["who"]),
                    bool(x.get("hard", False)),
                )
                for x in faces
                for b in [x["box"]]
            )
            for f, faces in doc["labels"].items()
        }
        shots = tuple((int(a), int(b)) for a, b in doc.get("shots", []))
        return ClipLabels(frames, dict(doc.get("people", {})), shots)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise InputError(str(path), f"not a clip labels file ({e})") from None


@dataclass(frozen=True)
class FaceOut:
    """A face a system showed on a frame: its box, track and the name on it (or None)."""

    box: tuple[float, float, float, float]
    track_id: int
    name: str | None


def best_pairing(weights: NDArray[np.float64]) -> list[tuple[int, int]]:
    """The one-to-one pairing of rows and columns with the largest total weight (weights
    >= 0; the Hungarian method, O(n^3)).

    Example:
        >>> best_pairing(np.array([[3.0, 2.0], [3.0, 0.0]]))
        [(0, 1), (1, 0)]
    """
    rows, cols = weights.shape
    if rows == 0 or cols == 0:
        return []
    n = max(rows, cols)
    cost = np.zeros((n, n))
    cost[:rows, :cols] = weights.max() - weights
    # potentials and the column each row is matched to (1-based, 0 = none)
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    match = np.zeros(n + 1, np.int64)
    way = np.zeros(n + 1, np.int64)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            delta, j1 = np.inf, 0
            for j in range(1, n + 1):
                if used[j]:
                    continue
                cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                if cur < minv[j]:
                    minv[j], way[j] = cur, j0
                if minv[j] < delta:
                    delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    pairs = [(int(match[j]) - 1, j - 1) for j in range(1, n + 1) if match[j]]
    return sorted((r, c) for r, c in pairs if r < rows and c < cols)


@dataclass(frozen=True)
class TrackingScores:
    """How a system's tracks and names compare with the labels (see the module).

    Attributes:
        face_frames: labelled face-frames counted (not hard).
        enrolled: of those, face-frames of the people the system knows (in ``names``).
        named_right: of those, shown with their own name.
        wrong_names: face-frames shown with a name that is not theirs (hard faces and
            unlabelled boxes included).
        wrong: (frame, who, name shown) of each wrong name.
        switches: identity switches.
        mixed_tracks: tracks matched to two or more people.
        idf1: IDF1 (0-1).
        tracks: distinct tracks shown on labelled frames.
    """

    face_frames: int
    enrolled: int
    named_right: int
    wrong_names: int
    wrong: tuple[tuple[int, str, str], ...]
    switches: int
    mixed_tracks: int
    idf1: float
    tracks: int


def _name_of(face: LabelledFace, names: Mapping[str, str]) -> str | None:
    return None if face.other else names.get(face.who)


def score_tracking(
    labels: ClipLabels, shown: Mapping[int, Sequence[FaceOut]], names: Mapping[str, str]
) -> TrackingScores:
    """Score what a system ``shown`` per frame against ``labels``; ``names`` maps a person
    key to the name the system would show for them (people it does not know: absent).

    Example:
        >>> lab = ClipLabels({0: (LabelledFace((0, 0, 10, 10), "ann"),),
        ...                   1: (LabelledFace((0, 0, 10, 10), "other:1"),)})
        >>> out = {0: [FaceOut((0, 0, 10, 10), 1, "Ann")], 1: [FaceOut((0, 0, 10, 10), 1, "Ann")]}
        >>> s = score_tracking(lab, out, {"ann": "Ann"})
        >>> s.wrong_names, s.mixed_tracks, s.named_right
        (1, 1, 1)
    """
    wrong: list[tuple[int, str, str]] = []
    right = counted = enrolled = switches = 0
    last: dict[str, int] = {}
    people_of: dict[int, set[str]] = defaultdict(set)
    together: Counter[tuple[str, int]] = Counter()
    gt_total = pred_total = 0
    tracks: set[int] = set()
    for f, faces in sorted(labels.frames.items()):
        out = list(shown.get(f, ()))
        tracks.update(o.track_id for o in out)
        boxes = [o.box for o in out]
        # names: any overlapping labelled face, hard ones included
        near = dict(pair_boxes(boxes, [x.box for x in faces], NAME_IOU))
        for i, o in enumerate(out):
            if o.name is None:
                continue
            j = near.get(i)
            truth = None if j is None else faces[j]
            if truth is None or _name_of(truth, names) != o.name:
                wrong.append((f, "nobody" if truth is None else truth.who, o.name))
        for i, j in near.items():
            if not faces[j].hard:
                counted += 1
                right += out[i].name is not None and out[i].name == _name_of(faces[j], names)
        counted += sum(1 for j, x in enumerate(faces) if not x.hard and j not in near.values())
        enrolled += sum(1 for x in faces if not x.hard and _name_of(x, names) is not None)
        # tracks: counted faces only; boxes on hard faces count neither way
        easy = [j for j, x in enumerate(faces) if not x.hard]
        hard = [j for j, x in enumerate(faces) if x.hard]
        pairs = pair_boxes(boxes, [faces[j].box for j in easy], TRACK_IOU)
        on_hard = {i for i, _ in pair_boxes(boxes, [faces[j].box for j in hard], TRACK_IOU)}
        matched = {i for i, _ in pairs}
        gt_total += len(easy)
        pred_total += sum(1 for i in range(len(out)) if i in matched or i not in on_hard)
        for i, k in pairs:
            who, tid = faces[easy[k]].who, out[i].track_id
            together[(who, tid)] += 1
            people_of[tid].add(who)
            if who in last and last[who] != tid:
                switches += 1
            last[who] = tid
    people = sorted({w for w, _ in together})
    tids = sorted({t for _, t in together})
    weights = np.array([[together[(w, t)] for t in tids] for w in people], np.float64)
    idtp = sum(weights[r, c] for r, c in best_pairing(weights.reshape(len(people), len(tids))))
    denom = gt_total + pred_total
    return TrackingScores(
        face_frames=counted,
        enrolled=enrolled,
        named_right=right,
        wrong_names=len(wrong),
        wrong=tuple(wrong),
        switches=switches,
        mixed_tracks=sum(1 for p in people_of.values() if len(p) > 1),
        idf1=2 * idtp / denom if denom else 1.0,
        tracks=len(tracks),
    )


@dataclass(frozen=True)
class RedactionScores:
    """What a redaction covered, on the labelled frames.

    Attributes:
        others: labelled face-frames (not hard) of people not spared.
        others_covered: of those, covered.
        spared: labelled face-frames (not hard) of the people to spare.
        spared_visible: of those, left visible.
        uncovered: (frame, who) of each face of someone not spared left uncovered.
    """

    others: int
    others_covered: int
    spared: int
    spared_visible: int
    uncovered: tuple[tuple[int, str], ...]

    @property
    def covered_share(self) -> float:
        return self.others_covered / self.others if self.others else 1.0

    @property
    def visible_share(self) -> float:
        return self.spared_visible / self.spared if self.spared else 1.0


def _covered(box: tuple[float, float, float, float], covers: NDArray[np.float64]) -> float:
    """The largest share of ``box`` inside one of ``covers``."""
    if not len(covers):
        return 0.0
    x1, y1, x2, y2 = box
    iw = np.clip(np.minimum(covers[:, 2], x2) - np.maximum(covers[:, 0], x1), 0, None)
    ih = np.clip(np.minimum(covers[:, 3], y2) - np.maximum(covers[:, 1], y1), 0, None)
    return float((iw * ih).max() / max((x2 - x1) * (y2 - y1), 1e-9))


def score_redaction(
    labels: ClipLabels,
    covered: Mapping[int, ArrayLike],
    spared: set[str],
    share: float = 0.7,
) -> RedactionScores:
    """Which labelled faces a redaction covered: ``covered`` holds the boxes covered per
    frame (as drawn, margin included); a face counts as covered when at least ``share`` of
    its labelled box lies inside one of them, and as visible when less than 1 - ``share``
    does. ``spared``: the person keys the redaction was to leave visible.

    Example:
        >>> lab = ClipLabels({0: (LabelledFace((0, 0, 10, 10), "ann"),
        ...                       LabelledFace((20, 0, 30, 10), "other:1"))})
        >>> s = score_redaction(lab, {0: [[18, 0, 32, 12]]}, {"ann"})
        >>> s.covered_share, s.visible_share
        (1.0, 1.0)
    """
    others = others_covered = spared_n = spared_visible = 0
    uncovered: list[tuple[int, str]] = []
    for f, faces in sorted(labels.frames.items()):
        covers = np.asarray(covered.get(f, []), np.float64).reshape(-1, 4)
        for x in faces:
            if x.hard:
                continue
            inside = _covered(x.box, covers)
            if x.who in spared:
                spared_n += 1
                spared_visible += inside < 1 - share
            else:
                others += 1
                if inside >= share:
                    others_covered += 1
                else:
                    uncovered.append((f, x.who))
    return RedactionScores(others, others_covered, spared_n, spared_visible, tuple(uncovered))
