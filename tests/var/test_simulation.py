"""Scenario moves: the EWMA filter, filtered and Monte Carlo sets, stress windows."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from portmargin.errors import InputError
from portmargin.var.config import StressPeriod, VarParams
from portmargin.var.history import History, shipped_history
from portmargin.var.simulation import (
    ewma_variance,
    fit_student_t_dof,
    scenario_moves,
    scenario_set,
    stress_moves,
)


def _params(**over: object) -> VarParams:
    data: dict[str, object] = {"family": "var", "name": "t", "version": "1"}
    data.update(over)
    return VarParams.model_validate(data)


def test_ewma_matches_the_recursion() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.03, 1200)
    got = ewma_variance(x, 0.94, 0.001)
    want = [0.001]
    for v in x:
        want.append(0.94 * want[-1] + 0.06 * v * v)
    assert got == pytest.approx(np.array(want), rel=1e-10)


def test_filtered_scenarios_are_today_sigma_times_standardised_shocks() -> None:
    h = shipped_history()
    day = date(2024, 6, 30)
    p = _params(method="fhs", horizon_days=1, ewma_lambda=0.94, ewma_burn_in_days=30)
    mv = scenario_moves(h, p, day)
    # rebuild BTC's by hand: seed = mean square of the first 30 shocks of the DVOL era
    s0 = h.index(h.joint_start(("BTC", "ETH")))
    t = h.index(day)
    x = h.log_returns("BTC")[s0 + 1 : t + 1]
    var = [float(np.mean(x[:30] ** 2))]
    for v in x:
        var.append(0.94 * var[-1] + 0.06 * v * v)
    sig = np.sqrt(np.array(var))
    z = x[30:] / sig[30:-1]
    assert mv.filters[("BTC", "spot")].sigma_forecast == pytest.approx(sig[-1], rel=1e-10)
    assert mv.spot["BTC"] == pytest.approx(sig[-1] * z, rel=1e-9)
    assert mv.labels[-1] == day.isoformat()
    assert len(mv) == t - (s0 + 1 + 30) + 1


def test_two_day_windows_overlap_or_not() -> None:
    h = shipped_history()
    day = date(2024, 6, 30)
    over = scenario_moves(h, _params(method="hs", horizon_days=2), day)
    apart = scenario_moves(h, _params(method="hs", horizon_days=2, overlapping=False), day)
    i = h.index(day)
    c = h.closes["BTC"]
    # the last window ends on the as-of day: ln(S_T / S_{T−2})
    assert over.spot["BTC"][-1] == pytest.approx(np.log(c[i] / c[i - 2]), rel=1e-12)
    assert apart.spot["BTC"][-1] == over.spot["BTC"][-1]
    assert apart.spot["BTC"][-2] == pytest.approx(over.spot["BTC"][-3], rel=1e-12)
    assert len(apart) == pytest.approx(len(over) / 2, abs=1)


def test_apc_floor_lifts_a_calm_forecast() -> None:
    h = shipped_history()
    day = date(2023, 10, 1)  # a calm month: the EWMA vol is far below the long-run one
    plain = scenario_moves(h, _params(method="fhs"), day)
    floored = scenario_moves(h, _params(method="fhs", anti_procyclicality={"mode": "floor"}), day)
    f = floored.filters[("BTC", "spot")]
    assert f.sigma_floor > f.sigma_forecast
    assert f.sigma_used == f.sigma_floor
    ratio = floored.spot["BTC"] / plain.spot["BTC"]
    assert ratio == pytest.approx(np.full(ratio.shape, f.sigma_floor / f.sigma_forecast))


def test_monte_carlo_is_seeded_and_reproducible() -> None:
    h = shipped_history()
    day = date(2025, 1, 31)
    p = _params(method="mc-t", monte_carlo={"n_scenarios": 500, "seed": 7})
    a = scenario_moves(h, p, day)
    b = scenario_moves(h, p, day)
    c = scenario_moves(h, p, day + timedelta(days=1))
    assert np.array_equal(a.spot["BTC"], b.spot["BTC"])
    assert not np.array_equal(a.spot["BTC"][:10], c.spot["BTC"][:10])
    boot = scenario_moves(h, _params(method="mc-bootstrap"), day)
    assert len(boot) == 2000
    # every draw of the bootstrap is a sum of two days of the window, scaled by today's sigma
    assert np.all(np.isfinite(boot.vol["ETH"]))


def test_student_t_dof_is_recovered() -> None:
    rng = np.random.default_rng(3)
    nu, d, n = 5.0, 2, 20_000
    corr = np.array([[1.0, 0.6], [0.6, 1.0]])
    a = np.linalg.cholesky(corr * (nu - 2) / nu)
    y = rng.standard_normal((n, d)) @ a.T * np.sqrt(nu / rng.chisquare(nu, n))[:, None]
    assert fit_student_t_dof(y, np.corrcoef(y, rowvar=False)) == pytest.approx(5.0, rel=0.15)


def test_scenario_set_maps_moves_and_vol_changes() -> None:
    mv = scenario_moves(shipped_history(), _params(method="hs"), date(2026, 2, 6))
    s = scenario_set(mv, "BTC", min_vol=0.05)
    i = mv.labels.index("2026-02-05")  # the window 2026-02-05..06, ending on the as-of day
    h = shipped_history()
    j = h.index(date(2026, 2, 4))
    assert s.price_moves[i] == pytest.approx(h.closes["BTC"][j + 2] / h.closes["BTC"][j] - 1)
    assert s.vol_directions[i] == pytest.approx(h.dvol["BTC"][j + 2] / h.dvol["BTC"][j] - 1)
    assert s.lookahead_years == pytest.approx(2 / 365)


def test_stress_windows_only_up_to_the_as_of_day() -> None:
    h = shipped_history()
    period = (StressPeriod(start=date(2020, 3, 1), end=date(2020, 3, 31)),)
    st = stress_moves(h, ("BTC",), period, 2, date(2020, 3, 15), vol_proxy="regression")
    assert st is not None
    assert st.labels[0] == "stress:2020-03-01"
    assert st.labels[-1] == "stress:2020-03-14"  # the last window ends on the as-of day
    # 2020-03-12: BTC −39 % in a day; no DVOL yet, and none up to the as-of day to fit the
    # proxy on, so the vol move is 0 (no look-ahead)
    i = st.labels.index("stress:2020-03-12")
    assert st.spot["BTC"][i] < -0.35
    assert st.vol["BTC"][i] == 0.0
    # as of 2023 the proxy is fitted on the DVOL era: a crash day implies a vol spike
    later = stress_moves(h, ("BTC",), period, 2, date(2023, 1, 1), vol_proxy="regression")
    assert later is not None
    assert later.vol["BTC"][later.labels.index("stress:2020-03-12")] > 0.1
    assert stress_moves(h, ("BTC",), period, 2, date(2020, 2, 1), vol_proxy="zero") is None


def test_too_little_history_is_one_line() -> None:
    h = shipped_history()
    with pytest.raises(InputError, match="needs 250 days of scenarios up to 2021-06-01"):
        scenario_moves(h, _params(), date(2021, 6, 1))
    spot_only = History(h.dates[:10], {"BTC": h.closes["BTC"][:10]}, {}, "s.csv")
    with pytest.raises(InputError, match=r"s\.csv: no underlying has a DVOL"):
        scenario_moves(spot_only, _params(), h.dates[9])
