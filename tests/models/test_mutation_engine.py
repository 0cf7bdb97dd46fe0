"""Stage 2 (aggregation, charges and credits of a pool, the long-option cap, VaR/ES), cases the
mutation run showed untested.

Formulas as in :mod:`portmargin.models.engine` and ``docs/models.md``, each expected value
worked by hand in the test. Sources: Deribit, "Portfolio Margin"
(https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin) and the
``private/pme/simulate`` reference
(https://docs.deribit.com/api-reference/account-management/private-simulate) for the
aggregation (``pnl_offset``, ``max_offsetable_pnl``, ``extended_dampener``)::

    agg_j = min(v_j, 0) + pnl_offset·min(max(v_j, 0), max_offsetable_pnl / rate)
    extended j with agg_j < 0:  agg_j += min(damp_j, −agg_j)
    damp_j = (max(|m_j|/PR, 1) − 1)·dampener_USD           (USD pool; PR the largest standard move)

McNeil, Frey & Embrechts, *Quantitative Risk Management* (2015), §2.2, for the empirical
VaR / ES over ``n`` equally likely scenarios: with ``m = ⌈(1 − α)·n⌉``, VaR is the m-th
largest loss and ES the mean of the m largest.
"""

from __future__ import annotations

import numpy as np
import pytest

import portmargin as pm
from portmargin._types import FloatArray
from portmargin.models import CREDITS, ChargeContext, CreditContext, load_model
from portmargin.models.config import (
    ChargeParams,
    CurrencyParams,
    ExtraScenario,
    ModelParams,
    RollShockParams,
    UnderlyingParams,
)
from portmargin.models.engine import (
    LONG_OPTION_CAP,
    Aggregation,
    PoolInputs,
    aggregate_scenarios,
    compose,
    option_value_per_unit,
    pool_components,
    replace_params,
    scanning_risk,
)
from portmargin.models.grids import custom_grid
from portmargin.scenarios import ScenarioSet, VolShock

MARKET = pm.demo_market()
S = 70_000.0  # demo BTC index (README)
PR = 0.16


def _set(moves: list[float], groups: list[str]) -> ScenarioSet:
    return ScenarioSet.build(moves, [0.0] * len(moves), VolShock(0.5, 0.25), groups=groups)


def test_aggregate_scenarios_in_a_coin_pool_by_hand() -> None:
    # BTC pool (rate S), pnl_offset 0.5 up to 3,500 USD = 0.05 coin, dampener 100,000 USD:
    #   standard gains 0.02 → 0.01, 0.2 → 0.5·0.05 = 0.025; losses as they are;
    #   extended −0.66 (loss 10): damp = (0.66/0.16 − 1)·100,000 / (S·(1 − 0.16)).
    scen = _set([-PR, 0.0, PR, -0.66], ["standard"] * 3 + ["extended"])
    cp = CurrencyParams(pnl_offset=0.5, max_offsetable_pnl=3_500.0, extended_dampener=100_000.0)
    got = aggregate_scenarios(np.array([[0.02, 0.2, -0.3, -10.0]]), scen, cp, rate=S, in_usd=False)
    damp = (0.66 / PR - 1.0) * 100_000.0 / (S * (1.0 - PR))
    np.testing.assert_allclose(got, [[0.01, 0.025, -0.3, -10.0 + damp]], rtol=1e-14)


def test_pnl_offset_in_the_usd_pool() -> None:
    # USD pool, rate 1: pnl_offset 0.5 up to 100 USD: gains 50 → 25, 300 → 50.
    cp = CurrencyParams(pnl_offset=0.5, max_offsetable_pnl=100.0)
    agg = Aggregation.of(_set([-PR, 0.0, PR], ["standard"] * 3), cp, rate=1.0, in_usd=True)
    np.testing.assert_allclose(agg(np.array([50.0, 300.0, -20.0])), [25.0, 50.0, -20.0])


def test_a_dampener_below_one_dollar_still_lifts_extended_losses() -> None:
    # dampener 0.5 USD, USD pool: damp = (0.66/0.16 − 1)·0.5 = 1.5625 on the −66 % loss of 10.
    cp = CurrencyParams(extended_dampener=0.5)
    scen = _set([-PR, PR, -0.66], ["standard", "standard", "extended"])
    got = Aggregation.of(scen, cp, rate=1.0, in_usd=True)(np.array([-1.0, -1.0, -10.0]))
    np.testing.assert_allclose(got, [-1.0, -1.0, -10.0 + 1.5625], rtol=1e-14)


def test_dampener_of_an_extended_move_within_twice_the_range() -> None:
    # m = −0.2, PR 0.16: |m|/PR = 1.25, damp = 0.25·1,000 = 250 USD on a loss of 1,000.
    cp = CurrencyParams(extended_dampener=1_000.0)
    scen = _set([-PR, PR, -0.2], ["standard", "standard", "extended"])
    got = Aggregation.of(scen, cp, rate=1.0, in_usd=True)(np.array([0.0, 0.0, -1_000.0]))
    np.testing.assert_allclose(got, [0.0, 0.0, -750.0], rtol=1e-14)


@pytest.mark.parametrize(
    "groups",
    [
        ["standard", "extended", "standard", "standard"],  # one extended scenario
        ["extended", "standard", "extended", "standard"],  # not contiguous
        ["standard", "extended", "extended", "standard"],  # contiguous, not at the end
    ],
)
def test_dampener_wherever_the_extended_scenarios_are(groups: list[str]) -> None:
    # Moves ±0.32 are extended or standard by their group; PR = 0.16 (largest standard move).
    # Extended: damp = (0.32/0.16 − 1)·1,000 = 1,000 USD, lifting a loss of 1,500 to −500;
    # standard scenarios keep their loss.
    moves = [-0.32, 0.32, -0.32, 0.32]
    for j, g in enumerate(groups):
        if g == "standard":
            moves[j] = [-PR, PR][j % 2]
    cp = CurrencyParams(extended_dampener=1_000.0)
    agg = Aggregation.of(_set(moves, groups), cp, rate=1.0, in_usd=True)
    vec = np.full((2, 4), -1_500.0)
    want = [-500.0 if g == "extended" else -1_500.0 for g in groups]
    np.testing.assert_allclose(agg(vec), [want, want], rtol=1e-14)


def test_a_grid_of_extra_scenarios_only_aggregates_without_a_dampener() -> None:
    # A custom grid may hold only extra scenarios (docs/models.md); with no dampener the
    # aggregation is min(v, 0) everywhere.
    scen = custom_grid(
        UnderlyingParams(
            extra_scenarios=(ExtraScenario(move=-0.3), ExtraScenario(move=0.3, weight=0.5))
        )
    )
    agg = Aggregation.of(scen, CurrencyParams(), rate=1.0, in_usd=True)
    np.testing.assert_array_equal(agg(np.array([-4.0, 2.0])), [-4.0, 0.0])


def test_option_value_per_unit_in_each_pool_currency() -> None:
    # An inverse option's value is counted in its coin (value_usd / F) in a segregated pool
    # and in USD in cross mode; a linear option's in USD in both.
    names = ["BTC-27MAR26-70000-C", "BTC_USDC-27MAR26-70000-C"]
    tab = pm.instrument_table([MARKET.instrument(n) for n in names], MARKET)
    rows = np.arange(2, dtype=np.int64)
    seg = option_value_per_unit(tab, rows, cross=False)
    np.testing.assert_allclose(seg, [tab.value_usd[0] / tab.F[0], tab.value_usd[1]], rtol=1e-15)
    np.testing.assert_allclose(option_value_per_unit(tab, rows, cross=True), tab.value_usd)


def _perp_context(q: FloatArray, params: ChargeParams) -> ChargeContext:
    arr = pm.risk_array(
        pm.instrument_table([MARKET.instrument("BTC-PERPETUAL")], MARKET),
        load_model("deribit").scenario_set("BTC"),
    )
    return ChargeContext(
        pool="BTC",
        usd_rate=S,
        risk=arr,
        rows=np.zeros(1, dtype=np.int64),
        quantities=q,
        scenario_pnl=np.zeros((q.shape[0], len(arr.scenarios))),
        market=MARKET,
        params=params,
        raw_pnl=np.ones((q.shape[0], len(arr.scenarios))),
    )


def test_replace_params_keeps_everything_but_the_parameters() -> None:
    ctx = _perp_context(np.ones((1, 1)), ChargeParams(kind="x"))
    roll = RollShockParams(min_annualised_move=0.01)
    new = replace_params(ctx, roll)
    assert new.params is roll
    for name in ("pool", "usd_rate", "risk", "rows", "quantities", "scenario_pnl", "market"):
        assert getattr(new, name) is getattr(ctx, name)
    assert new.raw_pnl is ctx.raw_pnl


def _params(**update: object) -> ModelParams:
    return load_model("deribit").params.model_copy(update=update)


def _inputs(raw: FloatArray, value: FloatArray, ctx: ChargeContext | None) -> PoolInputs:
    return PoolInputs(
        "BTC",
        S,
        ("BTC",),
        (ctx,),
        (raw,),
        (np.minimum(raw, 0.0),),
        value,
        np.ones(value.shape, dtype=np.bool_),
    )


def test_pool_components_of_two_accounts_with_a_roll_shock() -> None:
    # Two accounts of BTC perpetuals, +2 and −3 coins, BTC pool: roll = |q|·max(0.01, 0) coin
    # (deribit.toml's BTC floor) = 0.02 and 0.03; scanning risk from the scenario P&L given.
    roll = RollShockParams.model_validate({"BTC": {"min_annualised_move": 0.01}})
    params = _params(charges=(roll,), im_multiplier=1.0, mm_multiplier=1.0)
    q = np.array([[2.0], [-3.0]])
    raw = np.array([[-0.5, 0.1], [0.2, -0.25]])
    comps = pool_components(params, _inputs(raw, np.zeros((2, 1)), _perp_context(q, roll)), MARKET)
    np.testing.assert_allclose(comps["scanning_risk"], [[0.5], [0.25]])
    np.testing.assert_allclose(comps["roll_shock"], [[0.02], [0.03]], rtol=1e-14)


def test_the_long_option_cap_is_absent_where_the_requirement_equals_the_value() -> None:
    # Scanning 10 = value 10 / max(1, 1): the cap does not bind, so it is not a component.
    params = _params(charges=(), im_multiplier=1.0, mm_multiplier=1.0)
    comps = pool_components(
        params, _inputs(np.array([[-10.0, 3.0]]), np.full((1, 1), 10.0), None), MARKET
    )
    assert set(comps) == {"scanning_risk"}
    # a value of 8 binds it: 8 − 10 = −2
    comps = pool_components(
        params, _inputs(np.array([[-10.0, 3.0]]), np.full((1, 1), 8.0), None), MARKET
    )
    assert comps[LONG_OPTION_CAP] == pytest.approx(np.array([[-2.0]]))


def test_a_credit_sees_the_pool_it_is_computed_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # CREDITS is a registry: a credit is called with the pool's figures (CreditContext).
    seen: list[CreditContext] = []

    def probe(ctx: CreditContext) -> FloatArray:
        seen.append(ctx)
        return np.zeros(ctx.scanning.shape)

    monkeypatch.setitem(CREDITS, "probe", probe)
    probe_params = ChargeParams(kind="probe")
    params = _params(charges=(), credits=(probe_params,))
    raw = np.array([[-0.5, 0.1]])
    inputs = _inputs(raw, np.zeros((1, 1)), None)
    pool_components(params, inputs, MARKET)
    (ctx,) = seen
    assert (ctx.pool, ctx.usd_rate, ctx.underlyings) == ("BTC", S, ("BTC",))
    assert ctx.raw_pnl is inputs.raw_pnl and ctx.scenario_pnl is inputs.scenario_pnl
    assert ctx.params is probe_params and ctx.market is MARKET
    np.testing.assert_array_equal(ctx.scanning, [[0.5]])


def _var_params(measure: str, confidence: float) -> ModelParams:
    return _params(risk_measure=measure, confidence=confidence)


def test_var_and_es_of_a_thousand_scenarios_against_a_full_sort() -> None:
    # 3 accounts × 1,000 equally likely scenarios, α = 0.75: m = ⌈0.25·1,000⌉ = 250 tail
    # scenarios. VaR = −(250-th smallest P&L), ES = −mean(250 smallest), both by sorting.
    pnl = np.random.default_rng(6).normal(size=(3, 1000))
    inputs = PoolInputs(
        "USD",
        1.0,
        ("BTC",),
        (None,),
        (pnl,),
        (np.minimum(pnl, 0.0),),
        np.zeros((3, 1)),
        np.zeros((3, 1), dtype=np.bool_),
    )
    ordered = np.sort(pnl, axis=1)
    var = scanning_risk(_var_params("var", 0.75), inputs)
    es = scanning_risk(_var_params("es", 0.75), inputs)
    np.testing.assert_allclose(var[:, 0], -ordered[:, 249], rtol=1e-15)
    np.testing.assert_allclose(es[:, 0], -ordered[:, :250].mean(axis=1), rtol=1e-12)


def test_compose_tops_up_from_the_base_net_of_credits_with_the_larger_minimum_binding() -> None:
    # requirement = max(scan + add-ons − credits, max_k minimum_k); the top-up goes to the
    # binding minimum only. By hand, per (account, underlying):
    #   [0,0]: base 5 − 3 = 2;  minimums 4, 1   -> som tops up 4 − 2 = 2, floor 0
    #   [0,1]: base 6 − 0 = 6;  minimums 1, 7   -> floor tops up 7 − 6 = 1, som 0
    #   [1,0]: base 9 − 1 = 8;  minimums 2, 3   -> no top-up (8 > 3)
    #   [1,1]: base 0 − 0 = 0;  minimums 0.5, 0 -> som tops up 0.5
    scan = np.array([[5.0, 6.0], [9.0, 0.0]])
    credit = np.array([[3.0, 0.0], [1.0, 0.0]])
    comps = compose(
        scan,
        {},
        {"inter": credit},
        {
            "som": np.array([[4.0, 1.0], [2.0, 0.5]]),
            "floor": np.array([[1.0, 7.0], [3.0, 0.0]]),
        },
    )
    assert comps["som"] == pytest.approx(np.array([[2.0, 0.0], [0.0, 0.5]]), abs=0)
    assert comps["floor"] == pytest.approx(np.array([[0.0, 1.0], [0.0, 0.0]]), abs=0)
    assert sum(comps.values()) == pytest.approx(np.array([[4.0, 7.0], [8.0, 0.5]]), abs=0)
