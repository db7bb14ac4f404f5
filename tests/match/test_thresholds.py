"""Calibrated thresholds: by name, by target FMR, and 1:N thresholds that grow with the gallery."""

from __future__ import annotations

import pytest

from facelens import ModelError
from facelens.match.thresholds import (
    CALIBRATIONS,
    OPEN_SET,
    identify_rule,
    identify_threshold,
    resolve_threshold,
    threshold_for_fmr,
)


@pytest.fixture(params=sorted(CALIBRATIONS))
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_stricter_fmr_means_higher_threshold(model: str) -> None:
    ts = [threshold_for_fmr(model, f) for f in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8)]
    assert ts == sorted(ts) and ts[0] < ts[-1] <= 1.0
    cal = CALIBRATIONS[model]
    for fmr, t in cal.tail:  # the table's own points come back exactly
        assert threshold_for_fmr(model, fmr) == pytest.approx(t)


def test_one_to_n_threshold_grows_with_the_gallery(model: str) -> None:
    sizes = [1, 10, 1_000, 100_000, 10_000_000]
    ts = [identify_threshold(model, n) for n in sizes]
    assert ts == sorted(ts) and ts[0] < ts[-1]
    # one sample: FPIR is the FMR
    assert identify_threshold(model, 1, 0.01) == pytest.approx(threshold_for_fmr(model, 0.01))
    # n samples at FPIR p: per-comparison FMR 1-(1-p)^(1/n), about p/n
    assert identify_threshold(model, 1000, 0.01) == pytest.approx(
        threshold_for_fmr(model, 1.005e-5), abs=2e-4
    )


def test_operating_points_by_name_target_or_number(model: str) -> None:
    assert resolve_threshold(model, None, "balanced") == CALIBRATIONS[model].balanced
    assert resolve_threshold(model, "strict", "balanced") == pytest.approx(
        threshold_for_fmr(model, 1e-4)
    )
    assert resolve_threshold(model, "fmr=1e-5", "balanced") == pytest.approx(
        threshold_for_fmr(model, 1e-5)
    )
    assert resolve_threshold(model, "fpir=0.001", "balanced", gallery_samples=500) == pytest.approx(
        identify_threshold(model, 500, 0.001)
    )
    assert resolve_threshold(model, "open_set", "balanced", gallery_samples=50) == pytest.approx(
        identify_threshold(model, 50)
    )
    assert resolve_threshold(model, 0.5, "balanced") == 0.5
    with pytest.raises(ValueError, match="expected a number"):
        resolve_threshold(model, "fmr=lots", "balanced")
    with pytest.raises(ValueError, match="must be in"):
        resolve_threshold(model, "fmr=2", "balanced")


def test_uncalibrated_model_says_so() -> None:
    with pytest.raises(ModelError, match="no calibrated thresholds for model 'x'"):
        resolve_threshold("x", "strict", "balanced")


def test_default_identify_rule_normalises_from_the_calibrated_size() -> None:
    model = "dlib_resnet_v1+flip"
    cal = OPEN_SET[model]
    small = identify_rule(model, None, cal.min_identities - 1, 300)
    assert not small.normalised and small.threshold == pytest.approx(identify_threshold(model, 300))
    big = identify_rule(model, None, 5000, 7000)
    assert big.normalised and big.depth == 1 + cal.cohort and big.name == "open_set"
    assert big.fallback == pytest.approx(identify_threshold(model, 7000))
    # the table's points come back, sizes between are interpolated, ends are held
    for n, t in cal.table:
        assert identify_rule(model, "open_set", n, n).threshold == pytest.approx(t)
    lo, hi = sorted(t for n, t in cal.table if n in (1000, 2000))
    assert lo <= identify_rule(model, None, 1500, 1500).threshold <= hi
    assert identify_rule(model, None, 10**9, 10**9).threshold == cal.table[-1][1]
    # the normalised threshold barely moves with size: that is why it replaces the plain one
    ts = [t for _, t in cal.table]
    assert max(ts) - min(ts) < 0.01


def test_explicit_operating_points_stay_plain_similarity() -> None:
    model = "dlib_resnet_v1+flip"
    for point in ("strict", "fpir=0.001", 0.93, "balanced"):
        rule = identify_rule(model, point, 5000, 5000)
        assert not rule.normalised
        assert rule.threshold == pytest.approx(
            resolve_threshold(model, point, "open_set", gallery_samples=5000)
        )
    # a model without an open-set calibration keeps the plain size-aware threshold
    rule = identify_rule("dlib_resnet_v1", None, 5000, 5000)
    assert not rule.normalised
    assert rule.threshold == pytest.approx(identify_threshold("dlib_resnet_v1", 5000))


def test_the_default_has_thresholds_calibrated_for_it_and_no_other() -> None:
    """Every kind of threshold the code reads for the default recognizer - named 1:1 points,
    the impostor tail, the open-set rule, the clustering stop - comes from an entry measured
    on the default's own templates, with the command that measured it; not from another
    model's (a threshold of one embedding space means nothing in another)."""
    from facelens import Pipeline
    from facelens.cluster.people import LINKAGE
    from facelens.match.thresholds import calibration, open_set_calibration

    tag = Pipeline().model
    cal, osc = calibration(tag), open_set_calibration(tag)
    assert cal is not None and cal.model == tag and "calibrate.py" in cal.measured_by
    assert cal.impostor_pairs > 50_000_000 and len(cal.tail) >= 5
    assert osc is not None and osc.model == tag and "open_set_rule.py" in osc.measured_by
    assert tag in LINKAGE and "cluster.py" in LINKAGE[tag].source
    # what a search and a verification of the default actually use
    assert resolve_threshold(tag, None, "balanced") == cal.balanced
    assert resolve_threshold(tag, "strict", "balanced") == pytest.approx(
        threshold_for_fmr(tag, 1e-4)
    )
    big = identify_rule(tag, None, 5000, 5000)
    assert big.normalised and big.threshold == pytest.approx(osc.threshold(5000))
    small = identify_rule(tag, None, 1, 1)
    assert not small.normalised and small.threshold == pytest.approx(identify_threshold(tag, 1))
    # and no other tag's calibration is the same numbers under another name
    for other, c in CALIBRATIONS.items():
        if other != tag:
            assert (c.balanced, c.tail) != (cal.balanced, cal.tail), other
    for other, o in OPEN_SET.items():
        if other != tag:
            assert o.table != osc.table, other
