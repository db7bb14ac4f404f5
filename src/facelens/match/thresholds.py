"""Every default threshold, once, with the command that measured it.

Thresholds are cosine similarities ("same person" when ``similarity >= threshold``), per
embedding model tag. For each tag a ``Calibration`` holds the impostor tail: the threshold
that gives each false-match rate (FMR), measured on every cross-person pair of LFW (tens of
millions of pairs, ``benchmarks/calibrate.py``). From it:

- named 1:1 operating points: ``balanced`` (LFW's accuracy-maximising threshold, the
  ``verify`` default), ``fmr_1e-3``, ``strict`` (FMR 1e-4), ``fmr_1e-5``;
- any target FMR: ``"fmr=1e-5"``;
- the 1:N default ``open_set``: a probe is compared with every enrolled sample, so the chance
  that *some* stranger's comparison passes grows with the gallery. For a target false-positive
  identification rate (FPIR) ``p`` and ``n`` samples, the per-comparison FMR must be
  ``1 - (1 - p) ** (1 / n)`` (about ``p / n``); ``open_set`` is that for ``p = 1%`` and the
  gallery's size, and ``"fpir=0.001"`` asks for another ``p``. Below the measured tail the
  FMR is extrapolated along the tail's last decade (log FMR is close to linear in the
  similarity there).

The default 1:N *rule* (``identify_rule(..., "open_set")``) uses that similarity threshold
only for galleries of fewer than ``OpenSetCalibration.min_identities`` people. From that size
on, a probe's best similarity is compared *against its runners-up*: the decision score is
``s1 - weight * mean(s2 .. s{1+cohort})``, whose FPIR-1% threshold is nearly the same at 200
and at a million identities (``OPEN_SET``, measured on LFW and on LFW-shaped synthetic
galleries). At LFW's 4,900 identities it finds 62% of enrolled people at FPIR 1% where the
plain similarity finds 44% (docs/accuracy.md, "Open-set rule").

The shipped calibrations are constants (``CALIBRATIONS``, ``OPEN_SET``, together ``SHIPPED``).
A user's model is calibrated by ``facelens models calibrate NAME``, which stores the record
in the user's model registry; ``Calibrations.of(store)`` reads them with the shipped ones,
and the code that needs thresholds for a user's model is given that value (every lookup
here takes ``calibrations=``). Nothing is registered in this module: what a process read
before never changes what a lookup answers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from facelens.errors import InputError, ModelError
from facelens.match.decide import IdentifyRule
from facelens.models import ModelStore

__all__ = [
    "CALIBRATIONS",
    "DEFAULT_IDENTIFY",
    "DEFAULT_VERIFY",
    "OPEN_SET",
    "OPERATING_POINTS",
    "SHIPPED",
    "Calibration",
    "Calibrations",
    "OpenSetCalibration",
    "OperatingPoint",
    "calibration",
    "identify_rule",
    "identify_threshold",
    "open_set_calibration",
    "parse_record",
    "parse_threshold",
    "resolve_threshold",
    "threshold_for_fmr",
]

DEFAULT_VERIFY = "balanced"
DEFAULT_IDENTIFY = "open_set"
DEFAULT_FPIR = 0.01

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """What was measured for one embedding model tag.

    Attributes:
        model: the tag.
        balanced: threshold maximising LFW View 2 accuracy (mean of the 10 folds' choices).
        tail: (FMR, threshold) pairs, FMR decreasing, over ``impostor_pairs`` pairs.
        impostor_pairs: how many cross-person pairs the tail was measured on.
        measured_by: the command that regenerates these numbers.
    """

    model: str
    balanced: float
    tail: tuple[tuple[float, float], ...]
    impostor_pairs: int
    measured_by: str


@dataclass(frozen=True)
class OperatingPoint:
    """A named threshold of one model (kept for listing; ``resolve_threshold`` is the API)."""

    name: str
    model: str
    similarity: float
    meaning: str
    measured_by: str


_CALIBRATE = "python benchmarks/calibrate.py --data ../shared/data --write docs/accuracy.md"
_DEV = "python benchmarks/thresholds.py --data ../shared/data"

CALIBRATIONS: dict[str, Calibration] = {
    c.model: c
    for c in (
        # The default (issue 26): the fusion of dlib's ResNet in int8 and SFace, both with
        # flip, weights 0.6 / 0.4 (embed.fusion.FUSIONS), YuNet: all of LFW, 87 million
        # impostor pairs.
        Calibration(
            model="fusion(dlib_resnet_v1_int8+flip*0.6,sface_2021dec+flip*0.4)",
            balanced=0.6672,
            tail=(
                (1e-2, 0.6492),
                (1e-3, 0.6865),
                (1e-4, 0.7180),
                (1e-5, 0.7501),
                (1e-6, 0.8146),
                (1e-7, 0.9233),
            ),
            impostor_pairs=87_307_271,
            measured_by=_CALIBRATE + " --skip-peer",
        ),
        # dlib's ResNet with flip (--model dlib; the default before issue 26): all of LFW,
        # 87 million impostor pairs.
        Calibration(
            model="dlib_resnet_v1+flip",
            balanced=0.9143,
            tail=(
                (1e-2, 0.9102),
                (1e-3, 0.9285),
                (1e-4, 0.9429),
                (1e-5, 0.9544),
                (1e-6, 0.9633),
                (1e-7, 0.9808),
            ),
            impostor_pairs=87_307_271,
            measured_by=_CALIBRATE + " --model dlib --section calibration-dlib",
        ),
        # SFace (EmbedConfig(model="sface")), YuNet's chips: all of LFW, 87 million pairs.
        Calibration(
            model="sface_2021dec+flip",
            balanced=0.3383,
            tail=(
                (1e-2, 0.2960),
                (1e-3, 0.3651),
                (1e-4, 0.4265),
                (1e-5, 0.4984),
                (1e-6, 0.6101),
                (1e-7, 0.8390),
            ),
            impostor_pairs=87_307_271,
            measured_by=_CALIBRATE + " --model sface --section calibration-sface",
        ),
        # The dlib+sface fusion (weights in embed.fusion.FUSIONS), YuNet: all of LFW.
        Calibration(
            model="fusion(dlib_resnet_v1+flip*0.85,sface_2021dec+flip*0.15)",
            balanced=0.8217,
            tail=(
                (1e-2, 0.8067),
                (1e-3, 0.8304),
                (1e-4, 0.8488),
                (1e-5, 0.8657),
                (1e-6, 0.8989),
                (1e-7, 0.9590),
            ),
            impostor_pairs=87_307_271,
            measured_by=_CALIBRATE + " --model dlib+sface --section calibration-fusion",
        ),
        # Single view (EmbedConfig(augment="none")), measured on LFW View 1 pairs only.
        Calibration(
            model="dlib_resnet_v1",
            balanced=0.8994,
            tail=((1e-3, 0.9267), (1e-4, 0.9417)),
            impostor_pairs=5_919_753,
            measured_by=_DEV,
        ),
    )
}

_NAMED_FMR = {"fmr_1e-3": 1e-3, "strict": 1e-4, "fmr_1e-5": 1e-5}

_OPEN_SET = "python benchmarks/open_set_rule.py --write docs/accuracy.md"


@dataclass(frozen=True)
class OpenSetCalibration:
    """The cohort-normalised 1:N rule of one model tag, at FPIR 1%.

    Attributes:
        model: the tag.
        cohort: runners-up averaged.
        weight: share of their mean subtracted from the best similarity.
        min_identities: from this gallery size on the rule replaces the plain similarity
            threshold (below it, the plain threshold finds more enrolled people).
        table: (identities, threshold) pairs, identities increasing; interpolated in
            log(identities), held constant beyond the ends.
        measured_by: the command that regenerates these numbers.
    """

    model: str
    cohort: int
    weight: float
    min_identities: int
    table: tuple[tuple[int, float], ...]
    measured_by: str

    def threshold(self, identities: int) -> float:
        xs = [math.log(n) for n, _ in self.table]
        x = math.log(max(1, identities))
        if x <= xs[0]:
            return self.table[0][1]
        if x >= xs[-1]:
            return self.table[-1][1]
        i = next(k for k in range(len(xs) - 1) if xs[k] <= x <= xs[k + 1])
        (_, t0), (_, t1) = self.table[i], self.table[i + 1]
        return t0 + (t1 - t0) * (x - xs[i]) / (xs[i + 1] - xs[i])


OPEN_SET: dict[str, OpenSetCalibration] = {
    c.model: c
    for c in (
        # The default (issue 26): identities 100-4,900 from LFW (10 draws each); above, the
        # last LFW value plus the change seen on synthetic galleries shaped like the
        # default's own LFW templates. The threshold rises with the size (0.397 at 100,
        # 0.422 at 4,900), unlike dlib's: the table, not one value, keeps FPIR at 1%.
        OpenSetCalibration(
            model="fusion(dlib_resnet_v1_int8+flip*0.6,sface_2021dec+flip*0.4)",
            cohort=4,
            weight=0.5,
            min_identities=100,
            table=(
                (100, 0.3969),
                (200, 0.3989),
                (300, 0.3993),
                (500, 0.4089),
                (1000, 0.4053),
                (2000, 0.4076),
                (4900, 0.4215),
                (10000, 0.4239),
                (100000, 0.4276),
                (1000000, 0.4313),
            ),
            measured_by=_OPEN_SET,
        ),
        # Identities 200-4,900: LFW (10 draws each, ~20,000-120,000 non-mated probes); above:
        # the last LFW value plus the change seen on synthetic LFW-shaped galleries.
        OpenSetCalibration(
            model="dlib_resnet_v1+flip",
            cohort=4,
            weight=0.5,
            min_identities=200,
            table=(
                (200, 0.4882),
                (300, 0.4881),
                (500, 0.4873),
                (1000, 0.4870),
                (2000, 0.4872),
                (4900, 0.4884),
                (10000, 0.4883),
                (100000, 0.4894),
                (1000000, 0.4912),
            ),
            measured_by=_OPEN_SET
            + " --model dlib_resnet_v1+flip --cache dlib --section open-set-rule-dlib",
        ),
        # SFace: LFW draws only (the synthetic galleries are shaped like dlib's templates),
        # so the 4,900-identity threshold holds beyond; it rises with the size, unlike dlib's.
        OpenSetCalibration(
            model="sface_2021dec+flip",
            cohort=4,
            weight=0.5,
            min_identities=10,
            table=(
                (10, 0.2855),
                (30, 0.2789),
                (100, 0.2804),
                (200, 0.2846),
                (300, 0.2858),
                (500, 0.3141),
                (1000, 0.3043),
                (2000, 0.3101),
                (4900, 0.3311),
            ),
            measured_by=_OPEN_SET + " --model sface_2021dec+flip --cache sface",
        ),
        # The dlib+sface fusion: LFW draws only, like SFace's; the cohort-normalised score
        # wins from 1,000 identities.
        OpenSetCalibration(
            model="fusion(dlib_resnet_v1+flip*0.85,sface_2021dec+flip*0.15)",
            cohort=4,
            weight=0.5,
            min_identities=1000,
            table=((1000, 0.4507), (2000, 0.4517), (4900, 0.4597)),
            measured_by=_OPEN_SET
            + " --model 'fusion(dlib_resnet_v1+flip*0.85,sface_2021dec+flip*0.15)'"
            + " --cache dlib+sface --section open-set-rule-fusion",
        ),
    )
}


@dataclass(frozen=True)
class Calibrations:
    """The calibrations one caller can use, by template tag: the shipped ones and those a
    user measured (``facelens models calibrate``), read from a model store.

    A value, not a registry: nothing is registered anywhere by reading a user's models. The
    code that resolves thresholds for a user's model is given the ``Calibrations`` of its own
    ``ModelStore`` (``Calibrations.of(store)``, ``Pipeline.calibrations``); every lookup
    below takes one (default: the shipped ones, ``SHIPPED``).

    Attributes:
        verify: per tag, the impostor tail and the ``balanced`` point.
        open_set: per tag, the cohort-normalised 1:N rule (not every tag has one).

    Example:
        >>> cals = SHIPPED.with_records([{"model": "mine@0123", "balanced": 0.5,
        ...     "tail": [[1e-3, 0.6]], "impostor_pairs": 10, "measured_by": "test"}])
        >>> cals.get("mine@0123").balanced, SHIPPED.get("mine@0123")
        (0.5, None)
    """

    verify: Mapping[str, Calibration]
    open_set: Mapping[str, OpenSetCalibration]

    @classmethod
    def of(cls, store: ModelStore | None) -> Calibrations:
        """The shipped calibrations and those stored with ``store``'s user models."""
        records = store.calibration_records() if store is not None else ()
        return SHIPPED.with_records(records) if records else SHIPPED

    def get(self, model: str) -> Calibration | None:
        """What was measured for template tag ``model``, or None."""
        return self.verify.get(model)

    def get_open_set(self, model: str) -> OpenSetCalibration | None:
        """The cohort-normalised 1:N rule measured for ``model``, or None."""
        return self.open_set.get(model)

    def with_calibration(
        self, cal: Calibration, open_set: OpenSetCalibration | None = None
    ) -> Calibrations:
        """These calibrations and ``cal`` (with its 1:N rule, if any); a new value."""
        osc = {**self.open_set, cal.model: open_set} if open_set else dict(self.open_set)
        return Calibrations(
            MappingProxyType({**self.verify, cal.model: cal}), MappingProxyType(osc)
        )

    def with_records(self, records: Iterable[Mapping[str, Any]]) -> Calibrations:
        """These calibrations and the stored ``records`` (``parse_record``); a malformed
        record is logged and left out (a user's model without it has no thresholds)."""
        out = self
        for doc in records:
            try:
                out = out.with_calibration(*parse_record(doc))
            except ValueError as e:
                log.warning("ignoring a stored calibration: %s", e)
        return out


SHIPPED = Calibrations(MappingProxyType(CALIBRATIONS), MappingProxyType(OPEN_SET))


def parse_record(doc: Mapping[str, Any]) -> tuple[Calibration, OpenSetCalibration | None]:
    """A stored calibration (``Calibration`` fields as JSON, optionally with an ``open_set``
    object of ``OpenSetCalibration`` fields, as ``facelens models calibrate`` stores it).

    Raises:
        ValueError: the document lacks a field or holds a wrong value.
    """
    try:
        cal = Calibration(
            model=str(doc["model"]),
            balanced=float(doc["balanced"]),
            tail=tuple((float(f), float(t)) for f, t in doc["tail"]),
            impostor_pairs=int(doc["impostor_pairs"]),
            measured_by=str(doc["measured_by"]),
        )
        o = doc.get("open_set")
        osc = (
            OpenSetCalibration(
                model=cal.model,
                cohort=int(o["cohort"]),
                weight=float(o["weight"]),
                min_identities=int(o["min_identities"]),
                table=tuple((int(n), float(t)) for n, t in o["table"]),
                measured_by=str(o["measured_by"]),
            )
            if o
            else None
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a calibration record ({e})") from None
    if not cal.tail or not -1 <= cal.balanced <= 1:
        raise ValueError(f"calibration of {cal.model!r} has no usable thresholds")
    return cal, osc


def calibration(model: str, calibrations: Calibrations = SHIPPED) -> Calibration | None:
    """What was measured for template tag ``model`` (in ``calibrations``), or None."""
    return calibrations.get(model)


def open_set_calibration(
    model: str, calibrations: Calibrations = SHIPPED
) -> OpenSetCalibration | None:
    """The cohort-normalised 1:N rule measured for ``model``, or None."""
    return calibrations.get_open_set(model)


def _calibration(model: str, calibrations: Calibrations) -> Calibration:
    cal = calibrations.get(model)
    if cal is None:
        known = sorted(calibrations.verify)
        raise ModelError(
            model,
            f"no calibrated thresholds for model {model!r} (calibrated: {', '.join(known)}); "
            "give a number instead, or calibrate it: facelens models calibrate NAME.",
        )
    return cal


def threshold_for_fmr(model: str, fmr: float, calibrations: Calibrations = SHIPPED) -> float:
    """The threshold giving false-match rate ``fmr`` (interpolated in log FMR).

    Example:
        >>> m = "dlib_resnet_v1"
        >>> threshold_for_fmr(m, 1e-3) < threshold_for_fmr(m, 3e-4) < threshold_for_fmr(m, 1e-4)
        True
    """
    if not 0 < fmr < 1:
        raise InputError("threshold", f"a false-match rate must be in (0, 1), got {fmr}")
    tail = _calibration(model, calibrations).tail
    logs = [math.log10(f) for f, _ in tail]
    x = math.log10(fmr)
    if len(tail) == 1:
        return tail[0][1]
    if x >= logs[0]:
        i = 0
    elif x <= logs[-1]:
        i = len(tail) - 2
    else:
        i = next(k for k in range(len(tail) - 1) if logs[k] >= x >= logs[k + 1])
    (f0, t0), (f1, t1) = tail[i], tail[i + 1]
    slope = (t1 - t0) / (math.log10(f1) - math.log10(f0))
    return min(1.0, t0 + slope * (x - math.log10(f0)))


def identify_threshold(
    model: str,
    gallery_samples: int,
    fpir: float = DEFAULT_FPIR,
    calibrations: Calibrations = SHIPPED,
) -> float:
    """The 1:N threshold giving false-positive identification rate ``fpir`` against a gallery
    of ``gallery_samples`` samples (each probe is compared with every sample)."""
    if not 0 < fpir < 1:
        raise InputError("threshold", f"an FPIR must be in (0, 1), got {fpir}")
    n = max(1, gallery_samples)
    fmr = -math.expm1(math.log1p(-fpir) / n)
    return threshold_for_fmr(model, fmr, calibrations)


def parse_threshold(value: str | None) -> str | float | None:
    """A threshold as a caller writes it: a number is a similarity, anything else the name
    of an operating point (checked where it is used); empty means the default.

    Example:
        >>> parse_threshold("0.93"), parse_threshold("strict"), parse_threshold("")
        (0.93, 'strict', None)
    """
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value.strip()


def resolve_threshold(
    model: str,
    point: str | float | None,
    default: str,
    gallery_samples: int | None = None,
    calibrations: Calibrations = SHIPPED,
) -> float:
    """A threshold from a number, a name, ``"fmr=X"``, ``"fpir=X"`` or the default name.

    Example:
        >>> resolve_threshold("dlib_resnet_v1", 0.9, "balanced")
        0.9
        >>> resolve_threshold("dlib_resnet_v1", "strict", "balanced")
        0.9417
    """
    if point is None:
        point = default
    if isinstance(point, int | float):
        if not -1.0 <= float(point) <= 1.0:
            raise InputError("threshold", f"a cosine threshold must be in [-1, 1], got {point}")
        return float(point)
    name = point.strip().lower()
    for prefix in ("fmr=", "fpir="):
        if name.startswith(prefix):
            try:
                value = float(name[len(prefix) :])
            except ValueError:
                raise InputError(
                    "threshold", f"{point!r}: expected a number after {prefix!r}"
                ) from None
            if prefix == "fmr=":
                return threshold_for_fmr(model, value, calibrations)
            return identify_threshold(model, gallery_samples or 1, value, calibrations)
    cal = _calibration(model, calibrations)
    if name == "balanced":
        return cal.balanced
    if name in _NAMED_FMR:
        return threshold_for_fmr(model, _NAMED_FMR[name], calibrations)
    if name == "open_set":
        return identify_threshold(model, gallery_samples or 1, calibrations=calibrations)
    known = ["balanced", *sorted(_NAMED_FMR), "open_set", "fmr=X", "fpir=X"]
    raise InputError("threshold", f"unknown operating point {point!r}; known: {', '.join(known)}")


def identify_rule(
    model: str,
    point: str | float | None,
    identities: int,
    samples: int,
    default: str = DEFAULT_IDENTIFY,
    calibrations: Calibrations = SHIPPED,
) -> IdentifyRule:
    """The 1:N rule for a gallery of ``identities`` people and ``samples`` samples.

    ``open_set`` (the default) keeps the false-positive identification rate at 1%: below
    ``min_identities`` people with the plain similarity threshold for the gallery's size,
    from there with the cohort-normalised score (``OPEN_SET``). Any other operating point
    (a number, a name, ``fmr=X``, ``fpir=X``) is a plain similarity threshold, as in
    ``resolve_threshold``.

    Example:
        >>> m = "dlib_resnet_v1+flip"
        >>> identify_rule(m, None, 50, 50).normalised, identify_rule(m, None, 5000, 5000).normalised
        (False, True)
        >>> identify_rule(m, "strict", 5000, 5000).threshold
        0.9429
    """
    chosen = default if point is None else point
    cal = calibrations.get_open_set(model)
    if (
        isinstance(chosen, str)
        and chosen.strip().lower() == "open_set"
        and cal is not None
        and identities >= cal.min_identities
    ):
        return IdentifyRule(
            threshold=cal.threshold(identities),
            cohort=cal.cohort,
            weight=cal.weight,
            fallback=identify_threshold(model, samples, calibrations=calibrations),
            name="open_set",
        )
    t = resolve_threshold(model, point, default, samples, calibrations)
    return IdentifyRule(threshold=t, name=chosen if isinstance(chosen, str) else "threshold")


def _points(model: str) -> dict[str, OperatingPoint]:
    cal = _calibration(model, SHIPPED)
    out = {
        "balanced": OperatingPoint(
            "balanced", model, cal.balanced, "maximises LFW verification accuracy", cal.measured_by
        )
    }
    for name, fmr in _NAMED_FMR.items():
        out[name] = OperatingPoint(
            name, model, threshold_for_fmr(model, fmr), f"false-match rate {fmr:g}", cal.measured_by
        )
    return out


OPERATING_POINTS: dict[str, dict[str, OperatingPoint]] = {m: _points(m) for m in CALIBRATIONS}
