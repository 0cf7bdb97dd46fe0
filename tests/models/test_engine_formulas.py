"""Stage-2 formulas pinned by values worked by hand from their sources.

* Deribit's extended-table dampener and P&L offset (Deribit Portfolio Margin,
  https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin ; the
  aggregation order is the API changelog of 13 Jan 2026, https://docs.deribit.com ):
  ``agg = min(v, 0) + pnl_offset·min(max(v, 0), max_offsetable_pnl/S)``, then on extended
  scenarios with ``agg < 0``: ``agg += min(damp, |agg|)`` with
  ``damp = (max(|m|/PR, 1) − 1)·dampener_USD / (S·(1 + sign(m)·PR))`` in a coin pool.
* X:PM collateral (Deribit, "collateral haircuts apply to initial margin",
  https://support.deribit.com/hc/en-us/articles/25944777203869 ): with
  ``collateral = "haircut"`` a coin balance counts ``(1 − h)·S`` of equity; with
  ``collateral = "scenario"`` it counts ``S`` and ``h·S`` is an IM-only add-on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import portmargin as pm
from portmargin.models.config import CurrencyParams, ModelParams, load_model_params
from portmargin.models.engine import (
    Aggregation,
    PoolInputs,
    compose,
    pool_requirements,
    scanning_risk,
)
from portmargin.models.model import MarginModel
from portmargin.scenarios import ScenarioSet, VolShock

S = 70_000.0
PR = 0.16


def _scenarios() -> ScenarioSet:
    return ScenarioSet.build(
        [-PR, 0.0, PR, -0.66, 0.5],
        [1.0, 0.0, 1.0, 1.0, 1.0],
        VolShock(0.5, 0.25),
        groups=["standard", "standard", "standard", "extended", "extended"],
    )


def test_dampener_in_a_coin_pool_by_hand() -> None:
    cp = CurrencyParams(extended_dampener=100_000.0)
    agg = Aggregation.of(_scenarios(), cp, rate=S, in_usd=False)
    vec = np.array([-0.3, 0.2, -0.1, -10.0, -0.01])
    got = agg(vec)
    damp_down = (0.66 / PR - 1.0) * 100_000.0 / (S * (1.0 - PR))  # 5.3146... coin
    damp_up = (0.5 / PR - 1.0) * 100_000.0 / (S * (1.0 + PR))  # 2.6169... coin
    assert damp_down == pytest.approx(3.125 * 100_000.0 / 58_800.0, rel=1e-15)
    assert damp_up > 0.01
    want = [-0.3, 0.0, -0.1, -10.0 + damp_down, 0.0]  # standard rows untouched, gains clipped
    assert got == pytest.approx(want, rel=1e-14, abs=1e-15)


def test_dampener_in_the_usd_pool_is_not_redenominated() -> None:
    cp = CurrencyParams(extended_dampener=25_000.0)
    agg = Aggregation.of(_scenarios(), cp, rate=1.0, in_usd=True)
    got = agg(np.array([0.0, 0.0, 0.0, -100_000.0, -60_000.0]))
    assert got[3] == pytest.approx(-100_000.0 + (0.66 / PR - 1.0) * 25_000.0, rel=1e-14)
    assert got[4] == pytest.approx(-60_000.0 + (0.5 / PR - 1.0) * 25_000.0, rel=1e-14)  # -6,875


def test_pnl_offset_counts_gains_up_to_the_cap_by_hand() -> None:
    cp = CurrencyParams(pnl_offset=0.6, max_offsetable_pnl=7_000.0)  # 0.1 coin at S
    agg = Aggregation.of(_scenarios(), cp, rate=S, in_usd=False)
    got = agg(np.array([0.05, 0.5, -0.2, 0.0, 0.0]))
    assert got[:3] == pytest.approx([0.6 * 0.05, 0.6 * 0.1, -0.2], rel=1e-14)


def test_compose_adds_addons_subtracts_credits_and_tops_up_to_the_minimum() -> None:
    # SPAN: requirement = max(scan + intra + spot − inter credits, SOM) (CME SPAN overview,
    # https://www.cmegroup.com/clearing/risk-management/span-overview.html ).
    one = np.array([[10.0], [1.0]])
    comps = compose(
        one,
        {"intra": np.array([[2.0], [0.5]])},
        {"inter": np.array([[3.0], [0.0]])},
        {"som": np.array([[4.0], [5.0]])},
    )
    total = sum(comps.values())
    assert total == pytest.approx(np.array([[9.0], [5.0]]))  # max(10+2−3, 4), max(1+0.5, 5)
    assert comps["som"] == pytest.approx(np.array([[0.0], [3.5]]))
    assert comps["inter"] == pytest.approx(np.array([[-3.0], [0.0]]))


def test_pool_requirements_scale_risk_parts_and_add_im_only_parts() -> None:
    params = pm.load_model("deribit").params  # im 1.0, mm 0.8
    im, mm = pool_requirements(params, {"scanning_risk": 10.0, "collateral_haircut": 3.0})
    assert (im, mm) == pytest.approx((10.0 + 3.0, 0.8 * 10.0))


def _cross_model(tmp_path: Path, collateral: str) -> MarginModel:
    over = tmp_path / "x.toml"
    over.write_text(
        f'currency_mode = "cross"\ncollateral = "{collateral}"\n[currencies.BTC]\nhaircut = 0.1\n'
    )
    return MarginModel(load_model_params("deribit", overrides=over))


def test_haircut_collateral_counts_one_minus_h_of_the_coin(tmp_path: Path) -> None:
    market = pm.demo_market()
    s = market.index_price("BTC")
    r = _cross_model(tmp_path, "haircut").margin(pm.Portfolio.of({}, {"BTC": 2.0}), market)
    assert r.currency == "USD"
    assert r.equity == pytest.approx(2.0 * (1.0 - 0.1) * s, rel=1e-14)
    assert r.initial_margin == 0.0  # not revalued in scenarios: no risk of its own


def test_scenario_collateral_counts_the_coin_and_adds_an_im_only_haircut(tmp_path: Path) -> None:
    market = pm.demo_market()
    s = market.index_price("BTC")
    r = _cross_model(tmp_path, "scenario").margin(pm.Portfolio.of({}, {"BTC": 2.0}), market)
    assert r.equity == pytest.approx(2.0 * s, rel=1e-14)
    assert r.components["collateral_haircut"] == pytest.approx(0.1 * 2.0 * s, rel=1e-14)
    # IM = 1.0·risk + haircut, MM = 0.8·risk: the haircut is in IM only
    assert r.initial_margin - r.maintenance_margin / 0.8 == pytest.approx(0.2 * s, rel=1e-9)
    # the coin moves with its scenario: a long coin loses S·PR on the −16 % move at least
    assert r.components["scanning_risk"] >= 2.0 * s * PR * (1 - 1e-12)


def _inputs(*raws: list[float]) -> PoolInputs:
    arr = tuple(np.array([r]) for r in raws)
    k = len(raws)
    return PoolInputs(
        "USD",
        1.0,
        ("BTC", "ETH")[:k],
        (None,) * k,
        arr,
        arr,
        np.zeros((1, k)),
        np.zeros((1, k), dtype=bool),
    )


def _params(measure: str, confidence: float, *, joint: bool) -> ModelParams:
    base = pm.load_model("span16").params
    return base.model_copy(
        update={"risk_measure": measure, "confidence": confidence, "joint_underlyings": joint}
    )


def test_var_and_es_of_five_equally_likely_scenarios_by_hand() -> None:
    # losses 10, 4, 2, −1 (a gain), 0: at 60 % confidence m = ⌈0.4·5⌉ = 2 tail scenarios
    pnl = [-10.0, -4.0, -2.0, 1.0, 0.0]
    es = scanning_risk(_params("es", 0.6, joint=False), _inputs(pnl))
    var = scanning_risk(_params("var", 0.6, joint=False), _inputs(pnl))
    assert es[0, 0] == pytest.approx((10.0 + 4.0) / 2)
    assert var[0, 0] == pytest.approx(4.0)
    # at 80 %, m = 1: both are the worst loss
    assert scanning_risk(_params("es", 0.8, joint=False), _inputs(pnl))[0, 0] == 10.0


def test_joint_es_diversifies_and_euler_contributions_add_up() -> None:
    btc = [-10.0, 5.0, -1.0, 2.0, 0.0]
    eth = [6.0, -8.0, -1.0, 0.0, -2.5]  # sum: −4, −3, −2, 2, −2.5
    joint = scanning_risk(_params("es", 0.6, joint=True), _inputs(btc, eth))
    # tail of the sum (m = 2): scenarios 0 (−4) and 1 (−3)
    assert joint[0] == pytest.approx([-(-10.0 + 5.0) / 2, -(6.0 - 8.0) / 2])
    assert joint[0].sum() == pytest.approx((4.0 + 3.0) / 2)  # the ES of the summed P&L
    separate = scanning_risk(_params("es", 0.6, joint=False), _inputs(btc, eth))
    assert separate[0] == pytest.approx([(10.0 + 1.0) / 2, (8.0 + 2.5) / 2])
    assert joint[0].sum() < separate[0].sum()


def test_joint_measure_of_a_book_without_tail_loss_is_zero() -> None:
    out = scanning_risk(_params("es", 0.6, joint=True), _inputs([1.0, 2.0, 3.0], [-0.5, 0.0, 1.0]))
    assert out[0] == pytest.approx([0.0, 0.0])
