"""The archive's anonymous faces -> groups of one person each, with the user's corrections.

``Clusterer.run`` leaves out the faces already named (enrolled from the archive) and the faces
that match an enrolled person (an audited search), sets aside faces too poor to judge, and
groups the rest (``agglomerate`` over ``similarity_edges``), honouring every correction the
user made: merged clusters stay merged, split ones split, a face moved out stays out, a face
that is "not this person" is never named as them again. The corrections are kept in the
store as links between faces, so they outlive re-clustering and new indexing; a link to a
face that is gone (its photo deleted or changed) goes with it.

Clusters carry no name or label of any kind: a cluster id, its faces, their photos. Naming a
cluster is enrolment, with a consent record (``Clusterer.name``).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.archive.store import Archive, ArchiveFace
from facelens.cluster.agglomerate import agglomerate
from facelens.cluster.graph import similarity_edges
from facelens.errors import EnrollmentError, InputError, NotFoundError
from facelens.gallery.records import Consent, NewSample
from facelens.match.thresholds import SHIPPED, Calibrations
from facelens.quality import QualityGate, QualityScores

if TYPE_CHECKING:
    from facelens.govern.governed import GovernedGallery

__all__ = ["LINKAGE", "Cluster", "ClusterConfig", "Clusterer", "Clustering"]


@dataclass(frozen=True)
class Linkage:
    """Where average linkage stops for one template model, and the graph it reads.

    Attributes:
        stop: join no clusters less alike on average than this.
        floor: pairs less alike than this are left out of the graph...
        fill: ...and counted as this alike (the typical unrelated pair).
        source: the measurement the values come from.
    """

    stop: float
    floor: float
    fill: float
    source: str


# Measured on LFW by benchmarks/cluster.py (docs/accuracy.md, "Face clustering"): the stop
# that scored best on one half of LFW's people (reported on the other half too: BCubed F
# 0.989 fused, 0.958 dlib alone); the floor 0.04 below it (lower floors changed no result at
# 0.86, higher ones lost recall); the fill the median similarity of two different people.
# In order of preference: an archive indexed with several models is grouped by the first
# of these it holds.
LINKAGE: dict[str, Linkage] = {
    # the default recognizer (issue 26): stop chosen on half A of LFW's people from the
    # model's calibrated 1:1 balanced threshold (0.67) up; BCubed F 0.990 on half B
    "fusion(dlib_resnet_v1_int8+flip*0.6,sface_2021dec+flip*0.4)": Linkage(
        0.74, 0.70, 0.539, "benchmarks/cluster.py, LFW half A"
    ),
    "fusion(dlib_resnet_v1+flip*0.85,sface_2021dec+flip*0.15)": Linkage(
        0.86, 0.82, 0.726, "benchmarks/cluster.py, LFW half A"
    ),
    "dlib_resnet_v1+flip": Linkage(0.94, 0.90, 0.839, "benchmarks/cluster.py, LFW half A"),
}


@dataclass(frozen=True)
class ClusterConfig:
    """How faces are grouped.

    Attributes:
        model: the template model to group by (None: the first of ``LINKAGE`` indexed).
        linkage: stop/floor/fill (None: the model's measured ``LINKAGE``).
        min_inter_eye_px, max_abs_yaw_deg, min_sharpness: a face smaller, more turned or
            blurrier than this is too poor to judge and stays unclustered (looser than the
            enrolment gate: grouping tolerates more than a reference photo).
        full_weight_eye_px: faces with eyes this far apart (or more) weigh 1 in the
            averages; smaller ones weigh in proportion (down to a quarter).
        min_faces: a group of fewer faces is listed as unclustered (``alone``).
        max_faces: the most faces one run groups (a bound on its time and memory).
    """

    model: str | None = None
    linkage: Linkage | None = None
    min_inter_eye_px: float = 12.0
    max_abs_yaw_deg: float = 60.0
    min_sharpness: float = 1.0
    full_weight_eye_px: float = 32.0
    min_faces: int = 2
    max_faces: int = 200_000

    def weight(self, q: dict[str, float]) -> float:
        """A face's weight in the averages, 0 when it is too poor to judge."""
        eye = float(q.get("inter_eye_px", 0.0))
        if (
            eye < self.min_inter_eye_px
            or abs(float(q.get("yaw_deg", 0.0))) > self.max_abs_yaw_deg
            or float(q.get("sharpness", 0.0)) < self.min_sharpness
        ):
            return 0.0
        return max(0.25, min(1.0, eye / self.full_weight_eye_px))


@dataclass(frozen=True)
class Cluster:
    """One group of faces of one (unnamed) person."""

    id: str
    faces: tuple[ArchiveFace, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "faces": [f.to_dict() for f in self.faces]}

    def photos(self) -> list[str]:
        return sorted({f.path for f in self.faces})


@dataclass(frozen=True)
class Clustering:
    """A run's result: the clusters (largest first), the faces left unclustered (and why:
    ``poor_quality`` or ``alone``) and the faces of enrolled people (identity id)."""

    clusters: tuple[Cluster, ...]
    unclustered: tuple[tuple[ArchiveFace, str], ...]
    identified: tuple[tuple[ArchiveFace, str], ...] = field(default=())
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "clusters": [c.to_dict() for c in self.clusters],
            "unclustered": [{**f.to_dict(), "reason": r} for f, r in self.unclustered],
            "identified": [{**f.to_dict(), "identity_id": i} for f, i in self.identified],
        }


def cluster_id(face_ids: Sequence[str]) -> str:
    """A cluster's id: from its first face, so a cluster that keeps that face keeps its id."""
    return "c" + hashlib.sha256(min(face_ids).encode()).hexdigest()[:12]


def _chain(ids: Sequence[str]) -> list[tuple[str, str, str]]:
    return [("same", a, b) for a, b in itertools.pairwise(ids)]


class Clusterer:
    """Grouping and correcting one gallery's archive.

    Args:
        archive: the indexed faces.
        config: how to group.
        now: the time corrections are recorded with (ISO 8601).
        calibrations: the recognizers' thresholds (the shipped ones and the user's models':
            ``Calibrations.of(store)``), for searching the gallery and naming clusters.
    """

    def __init__(
        self,
        archive: Archive,
        config: ClusterConfig | None = None,
        now: Callable[[], str] | None = None,
        calibrations: Calibrations = SHIPPED,
    ) -> None:
        import time

        self.archive = archive
        self.calibrations = calibrations
        self.config = config or ClusterConfig()
        self.now = now or (lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    # -- grouping -----------------------------------------------------------------------------

    def model(self) -> str:
        models = self.archive.models()
        if not models:
            raise InputError("archive", "no face is indexed yet: index photos first")
        if self.config.model is not None:
            if self.config.model not in models:
                raise InputError("model", f"no face is indexed with model {self.config.model!r}")
            return self.config.model
        for m in LINKAGE:
            if m in models:
                return m
        if len(models) == 1:
            return next(iter(models))
        raise InputError("model", "the archive has several models and none is known: choose one")

    def linkage(self, model: str) -> Linkage:
        if self.config.linkage is not None:
            return self.config.linkage
        if model not in LINKAGE:
            raise InputError(
                "model",
                f"no measured clustering threshold for {model!r}: give one (--stop) after "
                "measuring it (benchmarks/cluster.py)",
            )
        return LINKAGE[model]

    def _identified(
        self, governed: GovernedGallery | None, faces: dict[str, ArchiveFace]
    ) -> dict[str, str]:
        """face id -> identity id: named faces, and faces an audited search names."""
        out = {i: f.identity_id for i, f in faces.items() if f.identity_id}
        if governed is None:
            return out
        not_them = {(a, b) for k, a, b in self.archive.links() if k == "not_identity"}
        # searched with a recognizer both sides hold and whose thresholds were measured (a
        # fusion's archive and gallery also hold its parts' templates, not all calibrated),
        # the one clustering prefers first
        enrolled = governed.models()
        tags = [m for m in self.archive.models() if m in enrolled and self.calibrations.get(m)]
        if not tags:
            return out
        tag = next((m for m in LINKAGE if m in tags), tags[0])
        ids, vecs = self.archive.templates(tag)
        todo = [n for n, i in enumerate(ids) if i not in out]
        if not todo:
            return out
        from facelens.embed import Embeddings

        probes = Embeddings(vecs[todo], tag)
        rule = governed.rule(tag, calibrations=self.calibrations)
        digest = hashlib.sha256("".join(ids[n] for n in todo).encode()).hexdigest()
        found = governed.identify_many(probes, rule, 1, probe_sha256=digest, model=tag)
        for n, x in zip(todo, found, strict=True):
            if x.identity is not None and (ids[n], x.identity.identity_id) not in not_them:
                out[ids[n]] = x.identity.identity_id
        return out

    def run(self, governed: GovernedGallery | None = None, save: bool = True) -> Clustering:
        """Group the faces that are neither named nor an enrolled person's (searched in
        ``governed``, audited); ``save``: keep the result for corrections and the web UI."""
        model = self.model()
        link = self.linkage(model)
        faces = {f.id: f for f in self.archive.faces()}
        known = self._identified(governed, faces)
        ids, vecs = self.archive.templates(model)
        links = self.archive.links()
        forced = {x for k, a, b in links if k == "same" for x in (a, b)}
        weights = {i: self.config.weight(faces[i].quality) for i in ids if i in faces}
        poor = [i for i in ids if i not in known and weights.get(i, 0) == 0 and i not in forced]
        keep = [n for n, i in enumerate(ids) if i not in known and i in faces and i not in poor]
        if len(keep) > self.config.max_faces:
            raise InputError(
                "archive",
                f"{len(keep)} faces to group, over the limit of {self.config.max_faces}",
            )
        kept = [ids[n] for n in keep]
        labels = self._labels(kept, vecs[keep] if keep else vecs[:0], weights, link, links)
        groups: dict[int, list[str]] = {}
        for i, lab in zip(kept, labels.tolist(), strict=True):
            groups.setdefault(lab, []).append(i)
        clusters, alone = [], []
        for members in groups.values():
            if len(members) < self.config.min_faces:
                alone.extend(members)
                continue
            clusters.append(
                Cluster(cluster_id(members), tuple(sorted((faces[i] for i in members), key=_order)))
            )
        clusters.sort(key=lambda c: (-len(c.faces), c.id))
        unclustered = [(faces[i], "poor_quality") for i in poor] + [
            (faces[i], "alone") for i in alone
        ]
        unclustered.sort(key=lambda x: _order(x[0]))
        identified = sorted(((faces[i], v) for i, v in known.items()), key=lambda x: _order(x[0]))
        if save:
            self.archive.save_assignments({f.id: c.id for c in clusters for f in c.faces})
        return Clustering(tuple(clusters), tuple(unclustered), tuple(identified), model)

    def _labels(
        self,
        ids: list[str],
        vecs: NDArray[np.float32],
        weights: dict[str, float],
        link: Linkage,
        links: list[tuple[str, str, str]],
    ) -> NDArray[np.int64]:
        at = {i: n for n, i in enumerate(ids)}
        same = [(at[a], at[b]) for k, a, b in links if k == "same" and a in at and b in at]
        apart = [(at[a], at[b]) for k, a, b in links if k == "apart" and a in at and b in at]
        w = np.array([max(weights.get(i, 0.0), 0.25) for i in ids], np.float64)
        edges = similarity_edges(np.ascontiguousarray(vecs, np.float32), link.floor)
        return agglomerate(
            len(ids), edges, link.stop, weights=w, fill=link.fill, same=same, apart=apart
        )

    # -- corrections --------------------------------------------------------------------------

    def members(self, cluster: str) -> list[str]:
        """The faces of a cluster (as last grouped and corrected)."""
        found = sorted(f for f, c in self.archive.assignments().items() if c == cluster)
        if not found:
            raise NotFoundError("cluster", cluster)
        return found

    def merge(self, a: str, b: str) -> str:
        """Clusters ``a`` and ``b`` are one person: kept as such; returns the merged id."""
        if a == b:
            raise InputError("cluster", "a cluster cannot be merged with itself")
        faces = self.members(a) + self.members(b)
        self.archive.add_links(_chain(sorted(faces)), self.now())
        new = cluster_id(faces)
        self.archive.save_assignments(dict.fromkeys(faces, new), replace=False)
        return new

    def split(self, cluster: str, face_ids: Sequence[str]) -> tuple[str, str]:
        """``face_ids`` of ``cluster`` are another person than the rest: each part kept
        together and apart from the other. Returns (the rest's id, the part's id)."""
        members = self.members(cluster)
        part = sorted(set(face_ids))
        if not part or not set(part) <= set(members) or len(part) == len(members):
            raise InputError("faces", "name some (not all) of the cluster's own faces to split off")
        rest = [f for f in members if f not in part]
        self.archive.add_links(
            [*_chain(part), *_chain(rest), ("apart", part[0], rest[0])], self.now()
        )
        ids = {cluster_id(rest): rest, cluster_id(part): part}
        self.archive.save_assignments({f: c for c, fs in ids.items() for f in fs}, replace=False)
        return cluster_id(rest), cluster_id(part)

    def move(self, face: str, to: str | None = None) -> str | None:
        """Face ``face`` is not the person of its cluster: kept apart from them; ``to``: it
        is the person of that cluster instead. Returns the cluster it is in now."""
        where = self.archive.assignments()
        if self.archive.face(face) is None:
            raise NotFoundError("face", face)
        old = where.get(face)
        if to is not None and to == old:
            raise InputError("to", "the face is already in that cluster")
        links: list[tuple[str, str, str]] = []
        if old is not None:
            links += [("apart", face, f) for f, c in where.items() if c == old and f != face]
        target: list[str] = []
        if to is not None:
            target = self.members(to)
            links += _chain([face, *target])
        self.archive.add_links(links, self.now())
        moved: dict[str, str] = {}
        if to is not None:
            new = cluster_id([face, *target])
            moved = dict.fromkeys([face, *target], new)
        self.archive.save_assignments(moved, replace=False)
        if to is None and old is not None:
            self.archive.unassign([face])
        return moved.get(face)

    def not_person(self, face: str, identity_id: str) -> None:
        """Face ``face`` is not the enrolled person ``identity_id``: never named as them."""
        f = self.archive.face(face)
        if f is None:
            raise NotFoundError("face", face)
        self.archive.add_links([("not_identity", face, identity_id)], self.now())
        if f.identity_id == identity_id:
            self.archive.set_identity([face], None)

    def samples(self, cluster: str, gate: QualityGate | None) -> list[NewSample]:
        """The enrolment samples of a cluster's faces: every model's template of each face
        that passes ``gate`` (None: every face)."""
        faces = self.archive.faces(self.members(cluster))
        passing = [f for f in faces if gate is None or not gate.reasons(_scores(f.quality), 0)]
        wanted = [f.id for f in passing]
        if not passing:
            raise EnrollmentError(f"cluster {cluster}", ["no face passes the quality gate"])
        out: list[NewSample] = []
        for model in self.archive.models():
            ids, vecs = self.archive.templates(model, wanted)  # the cluster's, not the archive's
            at = {i: n for n, i in enumerate(ids)}
            for f in passing:
                if f.id in at:
                    out.append(
                        NewSample(
                            embedding=vecs[at[f.id]],
                            model=model,
                            quality=f.quality,
                            image_sha256=_image_sha(f),
                            box=f.box,
                            source=f.path,
                        )
                    )
        return out

    def name(
        self,
        governed: GovernedGallery,
        cluster: str,
        name: str,
        consent: Consent | None,
        gate: QualityGate | None = None,
        override: str | None = None,
    ) -> Any:
        """Name a cluster: enrol its person (``consent`` needed, as for any enrolment: a new
        person without one is refused before anything is written), then mark its faces as
        theirs. The name of someone enrolled adds the faces to them, checked as any such
        addition (``IdentityMismatchError`` unless ``override`` gives the reason). Returns
        the ``EnrollResult``."""
        faces = self.members(cluster)
        result = governed.enroll_samples(
            name,
            lambda: self.samples(cluster, gate if gate is not None else QualityGate()),
            consent,
            override=override,
            calibrations=self.calibrations,
        )
        self.archive.set_identity(faces, result.identity.id)
        self.archive.unassign(cluster=cluster)
        return result


def _order(f: ArchiveFace) -> tuple[str, int, float]:
    return (f.path, f.frame, f.box[0])


def _scores(q: dict[str, float]) -> QualityScores:
    return QualityScores(
        **{k: np.array([float(q.get(k, 0.0))]) for k in QualityScores.__dataclass_fields__}
    )


def _image_sha(f: ArchiveFace) -> str:
    if f.frame == 0 and f.time_s is None:
        return f.sha256
    return hashlib.sha256(f"{f.sha256}:{f.frame}".encode()).hexdigest()
