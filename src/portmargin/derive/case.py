"""Derive PMRM_2 portfolios and the loader of Derive's published case files.

A case file (``derivexyz/v2-core:test/risk-managers/unit-tests/PMRM_2/portfolio_cases/``
@ ``7736900d``) has three blocks: ``Scenario`` (portfolio and market data), ``Parameters``
and ``Result`` (expected values); the schema is in ``docs/methodology/derive.md``. Numbers
may be JSON numbers or decimal strings; both are read as float64.

Every problem is reported as one :class:`portmargin.errors.InputError` line of the form
``"<file>: <field>: <reason>"``, e.g.
``"case.json: Scenario.Options[2].Strike: expected a number, got 'abc'"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from portmargin.derive.params import (
    BasisContingencyParams,
    MarginParams,
    OtherContingencyParams,
    PMRM2Params,
    ScenarioKind,
    SkewShockParams,
    StressScenario,
    VolShockDirection,
    VolShockParams,
)
from portmargin.errors import InputError, ParameterError

__all__ = [
    "CollateralHolding",
    "DeriveCase",
    "DerivePortfolio",
    "ExpectedResult",
    "ExpiryFeed",
    "OptionHolding",
    "load_case",
]


@dataclass(frozen=True, slots=True)
class OptionHolding:
    """One option balance (``Scenario.Options[]``).

    Attributes
    ----------
    expiry_seconds
        Seconds from the valuation time to expiry (``Expiry``); 0 = expired, unsettled.
    strike
        Strike in USD (``Strike``), >= 0.
    is_call
        ``True`` for a call (``IsCall`` = 1).
    amount
        Signed contracts of one unit of underlying (``Amount``; long > 0).
    vol
        Annualised Black-76 mark vol (``MarkVol``; 0.45 = 45 %).
    """

    expiry_seconds: float
    strike: float
    is_call: bool
    amount: float
    vol: float


@dataclass(frozen=True, slots=True)
class ExpiryFeed:
    """Per-expiry market data (``Scenario.OptionFeeds[]``).

    Attributes
    ----------
    expiry_seconds
        Seconds to expiry (``FeedExpiry``); matches ``OptionHolding.expiry_seconds``.
    forward
        Forward price in USD (``Forward``).
    forward_confidence, rate_confidence, vol_confidence
        Feed confidences in [0, 1] (``ForwardConfidence``, ``RateConfidence``,
        ``OptionVolConfidences``).
    rate
        Continuously compounded annual rate (``Rate``); floored at 0 by the engine.
    """

    expiry_seconds: float
    forward: float
    forward_confidence: float
    rate: float
    rate_confidence: float
    vol_confidence: float


@dataclass(frozen=True, slots=True)
class CollateralHolding:
    """A collateral balance (``Scenario.Collaterals[]``).

    Attributes
    ----------
    name
        Label only.
    amount
        Units held.
    price
        USD price per unit.
    confidence
        Price-feed confidence in [0, 1].
    is_risk_cancelling
        Whether the asset is shocked with spot (e.g. wrapped ETH in an ETH market).
    mm_haircut, im_haircut
        Fractions of value charged as MM and (on top) IM contingencies.
    """

    name: str
    amount: float
    price: float
    confidence: float
    is_risk_cancelling: bool
    mm_haircut: float
    im_haircut: float


@dataclass(frozen=True, slots=True)
class DerivePortfolio:
    """One PMRM_2 sub-account for one underlying, with its market data (all USD).

    Attributes
    ----------
    spot, spot_confidence
        Index price ``S`` and its confidence.
    stable_price
        Stable-coin price ``P_st`` in USD (collateral is converted into stable units with it).
    cash
        Cash balance ``C`` in stable units (negative = borrowed).
    perp_position, perp_price, perp_confidence
        Signed perp position ``q_p``, perp mark ``P_p`` and its confidence.
    perp_unrealised_pnl, perp_unrealised_funding
        Unsettled perp value ``U_p`` = their sum; enters equity.
    options, feeds, collaterals
        Holdings and per-expiry feeds.
    """

    spot: float
    spot_confidence: float
    stable_price: float
    cash: float
    perp_position: float
    perp_price: float
    perp_confidence: float
    perp_unrealised_pnl: float
    perp_unrealised_funding: float
    options: tuple[OptionHolding, ...]
    feeds: tuple[ExpiryFeed, ...]
    collaterals: tuple[CollateralHolding, ...]


@dataclass(frozen=True, slots=True)
class ExpectedResult:
    """The case file's expected values (``Result``; surpluses, losses negative, USD).

    Attributes
    ----------
    mm, im
        ``Result.MM`` / ``Result.IM``: maintenance and initial excess.
    scenario_pnl
        Per-scenario P&L in ``Parameters.Scenarios`` order (reg, then tail, then skew).
    forward_contingency
        ``Result.ForwardContingency`` (``B`` <= 0).
    option_mtm
        ``Result.OptionMTM``.
    worst_family
        ``Result.worst_all_scenarios``: ``regular``, ``tail``, ``skew`` or
        ``fwd_contingency`` (``None`` if absent).
    scalars
        Every other numeric scalar of ``Result`` by its key (e.g. ``MMPerpCont``,
        ``OracleCont``, ``IMLossFactor``, ``PortfolioMTM``), signs as in the file.
    """

    mm: float
    im: float
    scenario_pnl: tuple[float, ...]
    forward_contingency: float
    option_mtm: float
    worst_family: str | None
    scalars: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class DeriveCase:
    """A loaded case file: portfolio, parameters and (optionally) the expected result.

    Attributes
    ----------
    source
        Where it was read from (for messages).
    portfolio
        Holdings and market data.
    params
        PMRM_2 parameters, including the scenario list.
    expected
        ``Result`` block, or ``None`` when the file has none.
    """

    source: str
    portfolio: DerivePortfolio
    params: PMRM2Params
    expected: ExpectedResult | None


class _Reader:
    """Typed access to a parsed JSON document that names the file and field on error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> InputError:
        return InputError(f"{self.source}: {where}: {reason}")

    def obj(self, parent: Mapping[str, object], key: str, where: str) -> Mapping[str, object]:
        value = self.get(parent, key, where)
        if not isinstance(value, Mapping):
            raise self.fail(f"{where}.{key}", f"expected an object, got {type(value).__name__}")
        return value

    def seq(self, parent: Mapping[str, object], key: str, where: str) -> Sequence[object]:
        value = self.get(parent, key, where)
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}", f"expected a list, got {type(value).__name__}")
        return value

    def item(self, value: object, where: str) -> Mapping[str, object]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def get(self, parent: Mapping[str, object], key: str, where: str) -> object:
        if key not in parent:
            raise self.fail(f"{where}.{key}", "missing")
        return parent[key]

    def to_num(self, value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(where, f"expected a number, got {value!r}")
        try:
            out = float(value)
        except ValueError:
            raise self.fail(where, f"expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise self.fail(where, f"must be finite, got {value!r}")
        return out

    def num(
        self,
        parent: Mapping[str, object],
        key: str,
        where: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float:
        out = self.to_num(self.get(parent, key, where), f"{where}.{key}")
        if lo is not None and (out < lo or (lo_open and out == lo)):
            op = ">" if lo_open else ">="
            raise self.fail(f"{where}.{key}", f"must be {op} {lo:g}, got {out!r}")
        if hi is not None and out > hi:
            raise self.fail(f"{where}.{key}", f"must be <= {hi:g}, got {out!r}")
        return out

    def flag(self, parent: Mapping[str, object], key: str, where: str) -> bool:
        value = self.get(parent, key, where)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise self.fail(f"{where}.{key}", f"expected true/false or 1/0, got {value!r}")


def _parse_option(r: _Reader, raw: object, where: str) -> OptionHolding:
    o = r.item(raw, where)
    return OptionHolding(
        expiry_seconds=r.num(o, "Expiry", where, lo=0.0),
        strike=r.num(o, "Strike", where, lo=0.0),
        is_call=r.flag(o, "IsCall", where),
        amount=r.num(o, "Amount", where),
        vol=r.num(o, "MarkVol", where, lo=0.0),
    )


def _parse_feed(r: _Reader, raw: object, where: str) -> ExpiryFeed:
    f = r.item(raw, where)
    return ExpiryFeed(
        expiry_seconds=r.num(f, "FeedExpiry", where, lo=0.0),
        forward=r.num(f, "Forward", where, lo=0.0),
        forward_confidence=r.num(f, "ForwardConfidence", where, lo=0.0, hi=1.0),
        rate=r.num(f, "Rate", where),
        rate_confidence=r.num(f, "RateConfidence", where, lo=0.0, hi=1.0),
        vol_confidence=r.num(f, "OptionVolConfidences", where, lo=0.0, hi=1.0),
    )


def _parse_collateral(r: _Reader, raw: object, where: str) -> CollateralHolding:
    c = r.item(raw, where)
    name = c.get("Name", "")
    return CollateralHolding(
        name=str(name),
        amount=r.num(c, "Amount", where, lo=0.0),
        price=r.num(c, "Price", where, lo=0.0),
        confidence=r.num(c, "Confidence", where, lo=0.0, hi=1.0),
        is_risk_cancelling=r.flag(c, "IsRiskCancelling", where),
        mm_haircut=r.num(c, "MMHaircut", where, lo=0.0),
        im_haircut=r.num(c, "IMHaircut", where, lo=0.0),
    )


def _parse_portfolio(r: _Reader, s: Mapping[str, object]) -> DerivePortfolio:
    w = "Scenario"
    options = tuple(
        _parse_option(r, o, f"{w}.Options[{i}]") for i, o in enumerate(r.seq(s, "Options", w))
    )
    feeds = tuple(
        _parse_feed(r, f, f"{w}.OptionFeeds[{i}]") for i, f in enumerate(r.seq(s, "OptionFeeds", w))
    )
    collaterals = tuple(
        _parse_collateral(r, c, f"{w}.Collaterals[{i}]")
        for i, c in enumerate(r.seq(s, "Collaterals", w))
    )
    seen: set[float] = set()
    for i, feed in enumerate(feeds):
        if feed.expiry_seconds in seen:
            raise r.fail(
                f"{w}.OptionFeeds[{i}].FeedExpiry",
                f"duplicate expiry {feed.expiry_seconds:g}",
            )
        seen.add(feed.expiry_seconds)
    for i, opt in enumerate(options):
        if opt.expiry_seconds not in seen:
            raise r.fail(
                f"{w}.Options[{i}].Expiry",
                f"no OptionFeeds entry with FeedExpiry = {opt.expiry_seconds:g}",
            )
    return DerivePortfolio(
        spot=r.num(s, "SpotPrice", w, lo=0.0, lo_open=True),
        spot_confidence=r.num(s, "SpotConfidence", w, lo=0.0, hi=1.0),
        stable_price=r.num(s, "StablePrice", w, lo=0.0, lo_open=True),
        cash=r.num(s, "Cash", w),
        perp_position=r.num(s, "NumPerps", w),
        perp_price=r.num(s, "PerpPrice", w, lo=0.0),
        perp_confidence=r.num(s, "PerpConfidence", w, lo=0.0, hi=1.0),
        perp_unrealised_pnl=r.num(s, "UnrealisedPerpPNL", w),
        perp_unrealised_funding=r.num(s, "UnrealisedFunding", w),
        options=options,
        feeds=feeds,
        collaterals=collaterals,
    )


def _parse_scenarios(
    r: _Reader,
    p: Mapping[str, object],
    n_regular: int | None,
    *,
    allow_offchain_skew: bool,
) -> tuple[StressScenario, ...]:
    out: list[StressScenario] = []
    raw = r.seq(p, "Scenarios", "Parameters")
    for i, item in enumerate(raw):
        where = f"Parameters.Scenarios[{i}]"
        s = r.item(item, where)
        direction_raw = r.get(s, "VolShockDirection", where)
        try:
            direction = VolShockDirection(direction_raw)
        except ValueError:
            allowed = ", ".join(d.value for d in VolShockDirection)
            raise r.fail(
                f"{where}.VolShockDirection", f"expected one of {allowed}, got {direction_raw!r}"
            ) from None
        x = r.num(s, "SpotShock", where, lo=0.0, lo_open=True)
        w = r.num(s, "DampeningFactor", where, lo=0.0)
        if direction.is_skew:
            kind = ScenarioKind.SKEW
            if x != 1.0 and not allow_offchain_skew:
                raise r.fail(
                    f"{where}.SpotShock",
                    f"a {direction.value} skew scenario must have SpotShock = 1 (the on-chain "
                    f"setter rejects {x!r}); load with allow_offchain_skew=True to evaluate anyway",
                )
        elif n_regular is not None:
            kind = ScenarioKind.REGULAR if i < n_regular else ScenarioKind.TAIL
        else:
            kind = ScenarioKind.REGULAR if w == 1.0 else ScenarioKind.TAIL
        out.append(StressScenario(spot_shock=x, direction=direction, dampening=w, kind=kind))
    return tuple(out)


def _parse_params(
    r: _Reader,
    p: Mapping[str, object],
    n_regular: int | None,
    *,
    allow_offchain_skew: bool,
) -> PMRM2Params:
    w = "Parameters"
    vs = r.obj(p, "VolShock", w)
    mg = r.obj(p, "Margin", w)
    bc = r.obj(p, "BasisContingency", w)
    oc = r.obj(p, "OtherContingency", w)
    sk = r.obj(p, "SkewShock", w)
    wv, wm, wb, wo, ws = (
        f"{w}.{k}"
        for k in ("VolShock", "Margin", "BasisContingency", "OtherContingency", "SkewShock")
    )
    return PMRM2Params(
        scenarios=_parse_scenarios(r, p, n_regular, allow_offchain_skew=allow_offchain_skew),
        vol_shock=VolShockParams(
            vol_range_up=r.num(vs, "VOLRANGEUP", wv, lo=0.0),
            vol_range_down=r.num(vs, "VOLRANGEDOWN", wv, lo=0.0),
            short_term_power=r.num(vs, "SHORTTERMPOWER", wv, lo=0.0),
            long_term_power=r.num(vs, "LONGTERMPOWER", wv, lo=0.0),
            dte_floor_days=r.num(vs, "DTE_FLOOR", wv, lo=0.0),
            min_vol_up_shock=r.num(vs, "MIN_VOL_EVAL_SHOCKED", wv, lo=0.0),
        ),
        margin=MarginParams(
            im_loss_factor=r.num(mg, "IM_LOSS_FACTOR", wm, lo=0.0),
            mm_loss_factor=r.num(mg, "MM_LOSS_FACTOR", wm, lo=0.0),
            long_rate_mult=r.num(mg, "LONG_RATE_MULTSCALE", wm, lo=0.0),
            long_rate_add=r.num(mg, "LONG_RATE_ADDSCALE", wm, lo=0.0),
            short_rate_mult=r.num(mg, "SHORT_RATE_MULTSCALE", wm, lo=0.0),
            short_rate_add=r.num(mg, "SHORT_RATE_ADDSCALE", wm, lo=0.0),
            long_base_discount=r.num(mg, "BASE_STATIC_DISCOUNT", wm, lo=0.0),
            short_base_discount=r.num(mg, "BASE_STATIC_DISCOUNT_NEG", wm, lo=0.0),
        ),
        basis=BasisContingencyParams(
            spot_up=r.num(bc, "SCENARIO_SPOT_UP", wb, lo=0.0),
            spot_down=r.num(bc, "SCENARIO_SPOT_DOWN", wb, lo=0.0),
            add_factor=r.num(bc, "BASIS_CONT_ADD_FACTOR", wb, lo=0.0),
            mult_factor=r.num(bc, "BASIS_CONT_MULT_FACTOR", wb, lo=0.0),
        ),
        other=OtherContingencyParams(
            peg_loss_threshold=r.num(oc, "PEG_LOSS_THRESHOLD", wo, lo=0.0),
            peg_loss_factor=r.num(oc, "PEG_LOSS_FACTOR", wo, lo=0.0),
            conf_threshold=r.num(oc, "CONF_THRESHOLD", wo, lo=0.0),
            conf_margin=r.num(oc, "CONF_MARGIN", wo, lo=0.0),
            mm_perp_pct=r.num(oc, "MM_PERP_PERCENT", wo, lo=0.0),
            im_perp_pct=r.num(oc, "IM_PERP_PERCENT", wo, lo=0.0),
            mm_option_pct=r.num(oc, "MM_OPTION_PERCENT", wo, lo=0.0),
            im_option_pct=r.num(oc, "IM_OPTION_PERCENT", wo, lo=0.0),
        ),
        skew=SkewShockParams(
            linear_base_cap=r.num(sk, "LINEAR_SCALE_CAP", ws),
            linear_c_base=r.num(sk, "LINEAR_CBASE", ws),
            abs_base_cap=r.num(sk, "ABS_SCALE_CAP", ws),
            abs_c_base=r.num(sk, "ABS_CBASE", ws),
            min_k_star=r.num(sk, "MIN_K_STAR", ws, lo=0.0),
            width_scale=r.num(sk, "MIN_WIDTH_SCALE", ws, lo=0.0),
            vol_param_static=r.num(sk, "VOL_PARAM_STATIC", ws),
            vol_param_scale=r.num(sk, "VOL_PARAM_SCALE", ws),
        ),
    )


def _loss_values(r: _Reader, res: Mapping[str, object], key: str) -> list[float]:
    out: list[float] = []
    for i, row in enumerate(r.seq(res, key, "Result")):
        where = f"Result.{key}[{i}]"
        if not isinstance(row, list) or not row:
            raise r.fail(where, "expected a non-empty list")
        out.append(r.to_num(row[-1], f"{where}[-1]"))
    return out


def _parse_expected(
    r: _Reader, res: Mapping[str, object], n_scenarios: int
) -> tuple[ExpectedResult, int]:
    reg = _loss_values(r, res, "reg_losses")
    tail = _loss_values(r, res, "tail_losses")
    skew = _loss_values(r, res, "skew_losses")
    pnl = (*reg, *tail, *skew)
    if len(pnl) != n_scenarios:
        raise r.fail(
            "Result.reg_losses",
            f"reg + tail + skew losses give {len(pnl)} values for {n_scenarios} scenarios",
        )
    w = "Result"
    expected = ExpectedResult(
        mm=r.num(res, "MM", w),
        im=r.num(res, "IM", w),
        scenario_pnl=pnl,
        forward_contingency=r.num(res, "ForwardContingency", w),
        option_mtm=r.num(res, "OptionMTM", w),
        worst_family=str(res["worst_all_scenarios"]) if "worst_all_scenarios" in res else None,
        scalars=MappingProxyType(
            {
                key: r.to_num(value, f"{w}.{key}")
                for key, value in res.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            }
        ),
    )
    return expected, len(reg)


def load_case(path: Path, *, allow_offchain_skew: bool = False) -> DeriveCase:
    """Read and validate a Derive PMRM_2 case file.

    Parameters
    ----------
    path
        JSON case file (schema: ``docs/methodology/derive.md``).
    allow_offchain_skew
        Accept skew (LINEAR/ABS) scenarios with ``SpotShock != 1``. The on-chain setter
        rejects them (``PMRM_2.setScenarios``), so they are refused by default. Only
        ``test_67_misc_skew_scenario_with_spot_move`` needs this.

    Returns
    -------
    DeriveCase
        Portfolio, parameters and the expected ``Result`` (``None`` if the block is absent).
        The regular/tail labels come from the lengths of ``Result.reg_losses`` and
        ``Result.tail_losses`` (the harness matches results by position); without a
        ``Result`` block a non-skew scenario is "regular" when its dampening is exactly 1.

    Raises
    ------
    InputError
        ``"<file>: <field>: <reason>"`` for an unreadable file, bad JSON, a missing or
        malformed field, an out-of-range value or an invalid parameter.
    """
    source = str(path)
    r = _Reader(source)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{source}: (file): cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source}: (json): invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise r.fail("(root)", f"expected an object, got {type(doc).__name__}")
    scen = r.obj(doc, "Scenario", "(root)")
    par = r.obj(doc, "Parameters", "(root)")
    n_scenarios = len(r.seq(par, "Scenarios", "Parameters"))
    expected: ExpectedResult | None = None
    n_regular: int | None = None
    if "Result" in doc:
        expected, n_regular = _parse_expected(r, r.obj(doc, "Result", "(root)"), n_scenarios)
    portfolio = _parse_portfolio(r, scen)
    try:
        params = _parse_params(r, par, n_regular, allow_offchain_skew=allow_offchain_skew)
    except ParameterError as exc:
        raise InputError(f"{source}: Parameters: {exc}") from None
    return DeriveCase(source=source, portfolio=portfolio, params=params, expected=expected)
