"""Kupiec, Christoffersen and the Basel traffic light against values worked by hand.

Formulas (module docstring of portmargin.backtest.stats): Kupiec, "Techniques for verifying
the accuracy of risk measurement models", J. Derivatives 3(2), 1995;
Christoffersen, "Evaluating interval forecasts", Int. Econ. Rev. 39(4), 1998; Basel
Committee, "Supervisory framework for the use of backtesting ...", 1996.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from portmargin.backtest.stats import (
    christoffersen,
    coverage,
    kupiec,
    peak_to_trough,
    traffic_light,
    transitions,
    zone_bounds,
)


def test_kupiec_n250_x5_p1pct_by_hand() -> None:
    # LR = −2·[245·ln 0.99 + 5·ln 0.01] + 2·[245·ln 0.98 + 5·ln 0.02]
    #    = −2·[−2.462332 − 23.025851] + 2·[−4.949663 − 19.560115]
    #    = 50.976366 − 49.019556 = 1.956810;   p = erfc(√(LR/2)) = 0.16185
    lr, p = kupiec(250, 5, 0.01)
    assert lr == pytest.approx(1.956810, abs=1e-6)
    assert p == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-12)
    assert p == pytest.approx(0.16185, abs=1e-5)


def test_kupiec_edges_by_hand() -> None:
    # x = 0: LR = −2·250·ln 0.99 = 5.025168 (0·ln 0 = 0);  p = erfc(√2.512584) = 0.024982
    lr, p = kupiec(250, 0, 0.01)
    assert lr == pytest.approx(-500 * math.log(0.99), rel=1e-12)
    assert lr == pytest.approx(5.025168, abs=1e-6)
    assert p == pytest.approx(0.024982, abs=1e-6)
    # x = n·p: the observed rate is the model's, LR = 0, p = 1
    assert kupiec(200, 2, 0.01) == pytest.approx((0.0, 1.0), abs=1e-12)
    # x = n: LR = −2·n·ln p
    assert kupiec(3, 3, 0.01)[0] == pytest.approx(-6 * math.log(0.01), rel=1e-12)
    with pytest.raises(ValueError, match="kupiec"):
        kupiec(10, 11, 0.01)


def test_christoffersen_independent_sequence_is_zero() -> None:
    # 0 0 1 1 0 0 0 1 0 0 → pairs 00 01 11 10 00 00 01 10 00: n00=4 n01=2 n10=2 n11=1,
    # π01 = 2/6 = π11 = 1/3 = π: the likelihoods are equal, LR_ind = 0
    hits = [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    assert transitions([bool(h) for h in hits]) == (4, 2, 2, 1)
    lr, p = christoffersen([bool(h) for h in hits])
    assert lr == pytest.approx(0.0, abs=1e-12)
    assert p == pytest.approx(1.0)


def test_christoffersen_clustered_sequence_by_hand() -> None:
    # 17 zeros, then 3 ones: n00 = 16, n01 = 1, n10 = 0, n11 = 2 (19 transitions)
    # π01 = 1/17, π11 = 1, π = 3/19
    # LR = −2·[16·ln(16/19) + 3·ln(3/19)] + 2·[16·ln(16/17) + 1·ln(1/17) + 0 + 2·ln 1]
    #    = −2·[−2.749604 − 5.537480] + 2·[−0.969994 − 2.833213]
    #    = 16.574168 − 7.606415 = 8.967754;   p = erfc(√(LR/2)) = 0.0027479
    hits = np.array([False] * 17 + [True] * 3)
    assert transitions(hits) == (16, 1, 0, 2)
    lr, p = christoffersen(hits)
    want = -2 * (16 * math.log(16 / 19) + 3 * math.log(3 / 19)) + 2 * (
        16 * math.log(16 / 17) + math.log(1 / 17)
    )
    assert lr == pytest.approx(want, rel=1e-12)
    assert lr == pytest.approx(8.967754, abs=1e-6)
    assert p == pytest.approx(0.0027479, abs=1e-7)


def test_christoffersen_without_exceedances() -> None:
    assert christoffersen(np.zeros(50, dtype=bool)) == (0.0, 1.0)
    assert christoffersen([True]) == (0.0, 1.0)


def test_basel_zones_for_250_days() -> None:
    # green 0–4, yellow 5–9, red 10 or more (BCBS 1996, Table 2)
    zones = [traffic_light(250, x, 0.01) for x in range(12)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2
    assert zone_bounds(250, 0.01) == (5, 10)


def test_coverage_bundle() -> None:
    hits = np.zeros(250, dtype=bool)
    hits[[10, 100, 101, 200, 240]] = True
    c = coverage(hits, 0.99)
    assert (c.days, c.exceedances) == (250, 5)
    assert c.coverage == pytest.approx(1 - 5 / 250)
    assert c.kupiec_lr == pytest.approx(1.956810, abs=1e-6)
    assert c.zone == "yellow"
    lr_ind = c.christoffersen_lr
    assert c.conditional_coverage_pvalue == pytest.approx(math.exp(-(c.kupiec_lr + lr_ind) / 2))
    with pytest.raises(ValueError, match="no days"):
        coverage([], 0.99)


def test_peak_to_trough() -> None:
    assert peak_to_trough([100.0, 250.0, 50.0, 0.0]) == pytest.approx(5.0)
    assert math.isnan(peak_to_trough([0.0, 0.0]))
