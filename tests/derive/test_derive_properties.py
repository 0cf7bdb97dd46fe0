"""Property tests of the PMRM_2 engine (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

from derive_builders import baseline_params, collateral, feed, option, portfolio
from hypothesis import given, settings
from hypothesis import strategies as st

from portmargin.derive import DerivePortfolio, DeriveResult, PMRM2Params, evaluate

PARAMS = baseline_params()
EXPIRIES = (900.0, 86_400.0 * 7, 2_592_000.0, 86_400.0 * 90)
FORWARDS = (1990.0, 2005.0, 2020.0, 2050.0)


@st.composite
def portfolios(draw: st.DrawFn) -> DerivePortfolio:
    n_exp = draw(st.integers(1, len(EXPIRIES)))
    feeds = tuple(
        feed(EXPIRIES[e], FORWARDS[e], rate=draw(st.floats(-0.05, 0.2))) for e in range(n_exp)
    )
    opts = tuple(
        option(
            EXPIRIES[draw(st.integers(0, n_exp - 1))],
            draw(st.sampled_from((1200.0, 1800.0, 2000.0, 2200.0, 3000.0))),
            draw(st.floats(-20.0, 20.0)),
            draw(st.floats(0.05, 2.0)),
            call=draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 8)))
    )
    colls = tuple(
        collateral(
            draw(st.floats(0.0, 50.0)),
            draw(st.floats(1.0, 3000.0)),
            risk_cancelling=draw(st.booleans()),
            confidence=draw(st.floats(0.0, 1.0)),
            mm_haircut=draw(st.floats(0.0, 0.3)),
            im_haircut=draw(st.floats(0.0, 0.1)),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    return portfolio(
        spot=2000.0,
        cash=draw(st.floats(-1e5, 1e5)),
        perp=draw(st.floats(-10.0, 10.0)),
        perp_price=draw(st.floats(1900.0, 2100.0)),
        options=opts,
        feeds=feeds,
        collaterals=colls,
        stable_price=draw(st.floats(0.9, 1.01)),
        spot_confidence=draw(st.floats(0.3, 1.0)),
        perp_confidence=draw(st.floats(0.3, 1.0)),
        unrealised_pnl=draw(st.floats(-1e4, 1e4)),
    )


def _scaled(p: DerivePortfolio, k: float) -> DerivePortfolio:
    return replace(
        p,
        cash=k * p.cash,
        perp_position=k * p.perp_position,
        perp_unrealised_pnl=k * p.perp_unrealised_pnl,
        perp_unrealised_funding=k * p.perp_unrealised_funding,
        options=tuple(replace(o, amount=k * o.amount) for o in p.options),
        collaterals=tuple(replace(c, amount=k * c.amount) for c in p.collaterals),
    )


def _close(a: float, b: float, scale: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, scale))


@settings(max_examples=50, deadline=None)
@given(cash=st.floats(-1e9, 1e9, allow_nan=False), stable=st.floats(0.5, 1.5))
def test_cash_only_has_no_requirement(cash: float, stable: float) -> None:
    r = evaluate(portfolio(cash=cash, stable_price=stable), PARAMS)
    assert r.maintenance_margin == 0.0
    assert r.initial_margin == 0.0
    assert r.maintenance_excess == cash
    assert r.initial_excess == cash


@settings(max_examples=60, deadline=None)
@given(p=portfolios())
def test_requirements_non_negative_and_identities(p: DerivePortfolio) -> None:
    r = evaluate(p, PARAMS)
    scale = r.initial_margin + abs(r.equity)
    assert r.maintenance_margin >= 0.0
    assert r.initial_margin >= r.maintenance_margin - 1e-9 * scale
    assert r.min_span <= 0.0
    assert r.forward_contingency <= 0.0
    assert r.maintenance_excess == r.equity - r.maintenance_margin
    assert r.initial_excess == r.equity - r.initial_margin
    c = r.components
    assert all(v >= 0.0 for v in c.values())
    mm_parts = ("mm_perp_contingency", "mm_option_contingency", "mm_collateral_haircut")
    im_parts = (
        "im_perp_contingency",
        "im_option_contingency",
        "im_collateral_haircut",
        "im_confidence_contingency",
    )
    mm_sum = c["mm_scenario_loss"] + sum(c[k] for k in mm_parts)
    im_sum = (
        c["im_scenario_loss"]
        + c["im_peg_adjustment"]
        + sum(c[k] for k in mm_parts)
        + sum(c[k] for k in im_parts)
    )
    assert _close(mm_sum, r.maintenance_margin, scale)
    assert _close(im_sum, r.initial_margin, scale)
    assert _close(sum(r.equity_components.values()), r.equity, scale)
    worst = r.worst_scenario["pnl"]
    assert isinstance(worst, float)
    assert worst == r.min_span


@settings(max_examples=60, deadline=None)
@given(p=portfolios(), k=st.floats(0.01, 100.0))
def test_scaling_positions_scales_everything(p: DerivePortfolio, k: float) -> None:
    """All of PMRM_2 is positively homogeneous of degree 1 in the holdings."""
    base = evaluate(p, PARAMS)
    scaled = evaluate(_scaled(p, k), PARAMS)
    scale = k * (base.initial_margin + abs(base.equity) + 1.0)
    assert _close(scaled.maintenance_margin, k * base.maintenance_margin, scale)
    assert _close(scaled.initial_margin, k * base.initial_margin, scale)
    assert _close(scaled.equity, k * base.equity, scale)


@settings(max_examples=40, deadline=None)
@given(p=portfolios(), data=st.data())
def test_invariant_to_holding_order(p: DerivePortfolio, data: st.DataObject) -> None:
    shuffled = replace(
        p,
        options=tuple(data.draw(st.permutations(p.options))),
        feeds=tuple(data.draw(st.permutations(p.feeds))),
        collaterals=tuple(data.draw(st.permutations(p.collaterals))),
    )
    a, b = evaluate(p, PARAMS), evaluate(shuffled, PARAMS)
    scale = a.initial_margin + abs(a.equity)
    assert _close(a.maintenance_excess, b.maintenance_excess, scale)
    assert _close(a.initial_excess, b.initial_excess, scale)


@settings(max_examples=40, deadline=None)
@given(p=portfolios())
def test_splitting_a_holding_changes_nothing(p: DerivePortfolio) -> None:
    """Two half-size balances of one option margin exactly like the whole."""
    if not p.options:
        return
    first = p.options[0]
    half = replace(first, amount=first.amount / 2.0)
    split = replace(p, options=(half, half, *p.options[1:]))
    a, b = evaluate(p, PARAMS), evaluate(split, PARAMS)
    scale = a.initial_margin + abs(a.equity)
    assert _close(a.maintenance_excess, b.maintenance_excess, scale)
    assert _close(a.initial_excess, b.initial_excess, scale)


@st.composite
def parameter_sets(draw: st.DrawFn) -> PMRM2Params:
    """Any validated parameters, including the zeros the published sweeps use."""
    unit = st.floats(0.0, 5.0)
    p = PARAMS
    return replace(
        p,
        vol_shock=replace(
            p.vol_shock,
            vol_range_up=draw(unit),
            vol_range_down=draw(unit),
            short_term_power=draw(unit),
            long_term_power=draw(unit),
            dte_floor_days=draw(st.floats(0.001, 400.0)),
            min_vol_up_shock=draw(unit),
        ),
        skew=replace(
            p.skew,
            linear_base_cap=draw(st.floats(-5.0, 10.0)),
            linear_c_base=draw(st.floats(-10.0, 1.0)),
            abs_base_cap=draw(st.floats(-5.0, 10.0)),
            abs_c_base=draw(st.floats(-10.0, 1.0)),
            min_k_star=draw(st.sampled_from((0.0, 0.01, 1.0))),
            width_scale=draw(st.sampled_from((0.0, 4.0))),
            vol_param_static=draw(st.floats(-1.0, 5.0)),
            vol_param_scale=draw(st.floats(-20.0, 5.0)),
        ),
        margin=replace(
            p.margin,
            long_base_discount=draw(st.floats(0.0, 1.5)),
            short_base_discount=draw(st.floats(0.0, 1.5)),
        ),
    )


@settings(max_examples=60, deadline=None)
@given(p=portfolios(), params=parameter_sets())
def test_any_valid_parameters_give_finite_results(p: DerivePortfolio, params: PMRM2Params) -> None:
    """No NaN and no floating-point warning (pytest turns warnings into errors)."""
    r = evaluate(p, params)
    assert math.isfinite(r.maintenance_excess)
    assert math.isfinite(r.initial_excess)
    assert r.maintenance_margin >= 0.0


def _attributed(r: DeriveResult, p: DerivePortfolio) -> float:
    a = r.attribution
    return sum(a.options) + a.perp_per_unit * p.perp_position + sum(a.collaterals)


@settings(max_examples=60, deadline=None)
@given(p=portfolios(), params=parameter_sets())
def test_binding_pnl_is_split_exactly_by_holding(p: DerivePortfolio, params: PMRM2Params) -> None:
    """The per-holding parts of the binding scenario add up to minSPAN, whatever it is.

    For a configured scenario the static discount of an expiry applies to each of its
    options with the factor its total's sign chose; for the skew scenarios the parts take
    the sign flip of ``−|·|``; for the forward contingency the branch of their expiry.
    """
    r = evaluate(p, params)
    scale = r.initial_margin + abs(r.equity) + sum(abs(v) for v in r.option_values) + 1.0
    assert _close(_attributed(r, p), r.min_span, scale)
    assert len(r.attribution.options) == len(p.options)
    assert len(r.attribution.collaterals) == len(p.collaterals)
    assert _close(sum(r.option_values), r.equity_components["option_mtm"], scale)
    assert all(math.isfinite(d) for d in r.option_deltas)


@settings(max_examples=40, deadline=None)
@given(p=portfolios())
def test_option_deltas_are_the_forward_sensitivity_of_the_marks(p: DerivePortfolio) -> None:
    """Away from the settlement window ``Σ_i n_i·Δ_i·F_e`` is ``d(Σ V⁰)/dh`` for ``F → F·(1+h)``.

    A central difference with ``h = 1e-6`` (the window's options are dropped: there the
    fixed part of the forward moves with ``F`` too, while the delta counts ``F^var`` only).
    """
    live = {f.expiry_seconds for f in p.feeds if f.expiry_seconds >= 1800.0}
    p = replace(
        p,
        options=tuple(o for o in p.options if o.expiry_seconds in live),
        feeds=tuple(f for f in p.feeds if f.expiry_seconds in live),
    )
    h = 1e-6

    def moved(k: float) -> float:
        feeds = tuple(replace(f, forward=f.forward * k) for f in p.feeds)
        return evaluate(replace(p, feeds=feeds), PARAMS).equity_components["option_mtm"]

    base = evaluate(p, PARAMS)
    fwd = {f.expiry_seconds: f.forward for f in p.feeds}
    weighted = sum(
        d * fwd[o.expiry_seconds] for d, o in zip(base.option_deltas, p.options, strict=True)
    )
    numeric = (moved(1.0 + h) - moved(1.0 - h)) / (2.0 * h)
    notional = sum(abs(o.amount) * fwd[o.expiry_seconds] for o in p.options)
    assert math.isclose(weighted, numeric, rel_tol=1e-5, abs_tol=1e-6 * (1.0 + notional))
