"""Builders of PMRM_2 parameters and portfolios for the hand-derived and property tests.

The baseline values are the case-file column of ``derive_pmrm2.md`` §11.
"""

from __future__ import annotations

from portmargin.derive import (
    BasisContingencyParams,
    CollateralHolding,
    DerivePortfolio,
    ExpiryFeed,
    MarginParams,
    OptionHolding,
    OtherContingencyParams,
    PMRM2Params,
    ScenarioKind,
    SkewShockParams,
    StressScenario,
    VolShockDirection,
    VolShockParams,
)

UP, DOWN, NONE = VolShockDirection.UP, VolShockDirection.DOWN, VolShockDirection.NONE


def scenario(
    x: float, direction: VolShockDirection = NONE, w: float = 1.0, kind: ScenarioKind | None = None
) -> StressScenario:
    if kind is None:
        kind = ScenarioKind.SKEW if direction.is_skew else ScenarioKind.REGULAR
    return StressScenario(spot_shock=x, direction=direction, dampening=w, kind=kind)


def baseline_grid() -> tuple[StressScenario, ...]:
    """The 31 case-file scenarios: 23 regular, 6 tails (w = 0.036/|x−1|), LINEAR, ABS."""
    regular = [scenario(1.18, UP)]
    for x in (1.135, 1.09, 1.045, 1.0, 0.955, 0.91, 0.865):
        regular += [scenario(x, d) for d in (DOWN, NONE, UP)]
    regular.append(scenario(0.82, UP))
    tails = [
        scenario(x, UP, 0.036 / abs(x - 1.0), ScenarioKind.TAIL)
        for x in (0.34, 0.67, 1.5, 2.0, 3.0, 4.0)
    ]
    skews = [scenario(1.0, VolShockDirection.LINEAR), scenario(1.0, VolShockDirection.ABS)]
    return (*regular, *tails, *skews)


def baseline_params(scenarios: tuple[StressScenario, ...] | None = None) -> PMRM2Params:
    return PMRM2Params(
        scenarios=baseline_grid() if scenarios is None else scenarios,
        vol_shock=VolShockParams(
            vol_range_up=0.5,
            vol_range_down=0.275,
            short_term_power=0.3,
            long_term_power=0.13,
            dte_floor_days=1.0,
            min_vol_up_shock=0.45,
        ),
        margin=MarginParams(
            im_loss_factor=1.0,
            mm_loss_factor=0.8,
            long_rate_mult=1.0,
            long_rate_add=0.08,
            short_rate_mult=0.5,
            short_rate_add=0.08,
            long_base_discount=0.95,
            short_base_discount=1.04,
        ),
        basis=BasisContingencyParams(
            spot_up=1.045, spot_down=0.955, add_factor=0.5, mult_factor=2.0
        ),
        other=OtherContingencyParams(
            peg_loss_threshold=0.98,
            peg_loss_factor=2.0,
            conf_threshold=0.55,
            conf_margin=1.0,
            mm_perp_pct=0.015,
            im_perp_pct=0.005,
            mm_option_pct=0.003,
            im_option_pct=0.002,
        ),
        skew=SkewShockParams(
            linear_base_cap=0.15,
            linear_c_base=-0.05,
            abs_base_cap=0.15,
            abs_c_base=-0.05,
            min_k_star=0.01,
            width_scale=4.0,
            vol_param_static=0.6,
            vol_param_scale=-0.1,
        ),
    )


def feed(seconds: float, forward: float, rate: float = 0.0, confidence: float = 1.0) -> ExpiryFeed:
    return ExpiryFeed(
        expiry_seconds=seconds,
        forward=forward,
        forward_confidence=confidence,
        rate=rate,
        rate_confidence=1.0,
        vol_confidence=1.0,
    )


def option(
    seconds: float, strike: float, amount: float, vol: float, *, call: bool = True
) -> OptionHolding:
    return OptionHolding(
        expiry_seconds=seconds, strike=strike, is_call=call, amount=amount, vol=vol
    )


def collateral(
    amount: float,
    price: float,
    *,
    risk_cancelling: bool = False,
    confidence: float = 1.0,
    mm_haircut: float = 0.0,
    im_haircut: float = 0.0,
) -> CollateralHolding:
    return CollateralHolding(
        name="C",
        amount=amount,
        price=price,
        confidence=confidence,
        is_risk_cancelling=risk_cancelling,
        mm_haircut=mm_haircut,
        im_haircut=im_haircut,
    )


def portfolio(
    *,
    spot: float = 2000.0,
    cash: float = 0.0,
    perp: float = 0.0,
    perp_price: float | None = None,
    options: tuple[OptionHolding, ...] = (),
    feeds: tuple[ExpiryFeed, ...] = (),
    collaterals: tuple[CollateralHolding, ...] = (),
    stable_price: float = 1.0,
    spot_confidence: float = 1.0,
    perp_confidence: float = 1.0,
    unrealised_pnl: float = 0.0,
    unrealised_funding: float = 0.0,
) -> DerivePortfolio:
    return DerivePortfolio(
        spot=spot,
        spot_confidence=spot_confidence,
        stable_price=stable_price,
        cash=cash,
        perp_position=perp,
        perp_price=spot if perp_price is None else perp_price,
        perp_confidence=perp_confidence,
        perp_unrealised_pnl=unrealised_pnl,
        perp_unrealised_funding=unrealised_funding,
        options=options,
        feeds=feeds,
        collaterals=collaterals,
    )


__all__ = [
    "DOWN",
    "NONE",
    "UP",
    "baseline_grid",
    "baseline_params",
    "collateral",
    "feed",
    "option",
    "portfolio",
    "scenario",
]
