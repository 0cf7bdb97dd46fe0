r"""PMRM_2 results in the one result family (:class:`~portmargin.models.result.MarginResult`).

One conversion for both ways into Derive's method: a user's book
(:class:`~portmargin.derive.DeriveMethod`) and a published case file (:func:`margin_case`).
Each PMRM_2 sub-account (one underlying, :class:`DeriveSubaccount`) evaluated by
:func:`~portmargin.derive.evaluate` becomes one
:class:`~portmargin.models.result.UnderlyingResult`; all of them form one USD
:class:`~portmargin.models.result.PoolResult` (amounts in USD, Derive's stable quote asset)::

    IM     = Σ_u IM_u,      MM = Σ_u MM_u
    equity = C_pool + Σ_u equity_u          (C_pool: the book's USD cash, kept at pool level)

Components are Derive's own (:class:`~portmargin.derive.DeriveResult`), summed per name::

    MM = mm_scenario_loss + mm_perp_contingency + mm_option_contingency
         + mm_collateral_haircut
    IM = im_scenario_loss + im_peg_adjustment
         + mm_perp_contingency + mm_option_contingency + mm_collateral_haircut
         + im_perp_contingency + im_option_contingency + im_collateral_haircut
         + im_confidence_contingency

so ``IM = Σ components − mm_scenario_loss``; the IM-only names are listed in
``PoolResult.im_only_components`` and ``mm_scenario_loss`` is the only MM-only one.

Scenario lines (:class:`~portmargin.models.result.ScenarioLine`), one per configured
scenario and one for the forward contingency ``B`` (index ``len(scenarios)``):
``group`` the scenario kind (``regular``, ``tail``, ``skew``, ``forward_contingency``),
``price_move = x − 1`` (for ``B`` the basis move of the expiry that weighs most), ``vol_shock``
the relative vol shock at the money at 30 days (``+VOLRANGEUP`` Up, ``−VOLRANGEDOWN`` Down,
0 for None and the skew scenarios, which leave the at-the-money vol unchanged), ``weight``
the dampening ``w`` (1 for ``B``), ``pnl = raw_pnl`` (PMRM_2 aggregates nothing).

Position lines: mark value in USD (``n·B76⁰`` for an option, the unsettled perp value, the
collateral value ``a·p/P_st``), delta in units of underlying (Black-76 forward delta for
options, 1 per unit for perps and risk-cancelling collateral, 0 otherwise) and the P&L of the
binding scenario split exactly by holding (:class:`~portmargin.derive.WorstAttribution`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from portmargin.derive.case import DerivePortfolio, load_case
from portmargin.derive.params import PMRM2Params, VolShockDirection
from portmargin.derive.pmrm2 import DeriveResult, evaluate
from portmargin.market.snapshot import QuoteSource
from portmargin.models.explain import combine_pools
from portmargin.models.result import (
    MarginResult,
    PoolResult,
    PositionLine,
    ScenarioLine,
    UnderlyingResult,
)
from portmargin.units import USD, iso_z

__all__ = [
    "COMPONENTS",
    "IM_ONLY_COMPONENTS",
    "MODEL_NAME",
    "REF_TIME",
    "DeriveSubaccount",
    "case_subaccount",
    "margin_case",
    "to_margin_result",
]

MODEL_NAME = "derive"
"""The method's name in every result."""

COMPONENTS = (
    "mm_scenario_loss",
    "im_scenario_loss",
    "im_peg_adjustment",
    "mm_perp_contingency",
    "mm_option_contingency",
    "mm_collateral_haircut",
    "im_perp_contingency",
    "im_option_contingency",
    "im_collateral_haircut",
    "im_confidence_contingency",
)
"""Derive's requirement components, in the order of every result (see the module)."""

IM_ONLY_COMPONENTS = (
    "im_scenario_loss",
    "im_peg_adjustment",
    "im_perp_contingency",
    "im_option_contingency",
    "im_collateral_haircut",
    "im_confidence_contingency",
)
"""Components that enter IM only; ``mm_scenario_loss`` enters MM only, the rest both."""

_QUOTED = QuoteSource.QUOTED.value
_PERPETUAL = QuoteSource.PERPETUAL.value
_INDEX = QuoteSource.INDEX.value

_EQUITY_PARTS = ("option_mtm", "collateral_mtm", "perp_unrealised_pnl", "perp_unrealised_funding")

REF_TIME = datetime.fromtimestamp(1_630_000_000, tz=UTC)
"""The block time Derive's harness fixes for its case files (``REF_TIME = 1630000000``); a
case file's expiries are seconds from it (reference §12.1), so it is a case's valuation time."""


@dataclass(frozen=True, slots=True)
class DeriveSubaccount:
    """One PMRM_2 sub-account: the engine's portfolio and the names of its holdings.

    Attributes
    ----------
    underlying
        The market it margins (``BTC``, ``ETH``; ``underlying`` for a case file).
    portfolio
        Holdings and market data as :func:`~portmargin.derive.evaluate` takes them.
    option_names, option_quantities, option_quotes
        Per ``portfolio.options``: the instrument, its quantity as held (contracts) and where
        its mark comes from (:class:`portmargin.market.QuoteSource` value).
    perp_names, perp_quantities, perp_units, perp_quotes
        The perpetual positions netted into ``portfolio.perp_position``: instrument,
        quantity as held, units of underlying (their sum is the net position), mark source.
    collateral_names
        Per ``portfolio.collaterals`` (priced at an index).
    """

    underlying: str
    portfolio: DerivePortfolio
    option_names: tuple[str, ...]
    option_quantities: tuple[float, ...]
    option_quotes: tuple[str, ...]
    perp_names: tuple[str, ...]
    perp_quantities: tuple[float, ...]
    perp_units: tuple[float, ...]
    perp_quotes: tuple[str, ...]
    collateral_names: tuple[str, ...]


def _vol_label(direction: VolShockDirection, params: PMRM2Params) -> float:
    """Relative vol shock at the money at 30 days (where the term multiplier is 1)."""
    if direction is VolShockDirection.UP:
        return params.vol_shock.vol_range_up
    if direction is VolShockDirection.DOWN:
        return -params.vol_shock.vol_range_down
    return 0.0


def _lines(
    acct: DeriveSubaccount, res: DeriveResult, params: PMRM2Params
) -> tuple[tuple[ScenarioLine, ...], ScenarioLine]:
    """Scenario lines (configured scenarios, then ``B``) and the binding one."""
    und = acct.underlying
    lines = [
        ScenarioLine(
            und,
            i,
            s.kind.value,
            s.spot_shock - 1.0,
            _vol_label(s.direction, params),
            s.dampening,
            float(row["pnl"]),  # type: ignore[arg-type]
            float(row["pnl"]),  # type: ignore[arg-type]
        )
        for i, (s, row) in enumerate(zip(params.scenarios, res.scenarios, strict=True))
    ]
    lines.append(
        ScenarioLine(
            und,
            len(params.scenarios),
            "forward_contingency",
            res.forward_contingency_move,
            0.0,
            1.0,
            res.forward_contingency,
            res.forward_contingency,
        )
    )
    index = res.worst_scenario["index"]
    worst = lines[-1] if index is None else lines[int(index)]  # type: ignore[call-overload]
    return tuple(lines), worst


def _positions(acct: DeriveSubaccount, res: DeriveResult) -> list[PositionLine]:
    p = acct.portfolio
    att = res.attribution
    out = [
        PositionLine(name, qty, USD, value, delta, pnl, quote=quote)
        for name, qty, quote, value, delta, pnl in zip(
            acct.option_names,
            acct.option_quantities,
            acct.option_quotes,
            res.option_values,
            res.option_deltas,
            att.options,
            strict=True,
        )
    ]
    unsettled = p.perp_unrealised_pnl + p.perp_unrealised_funding
    for k, (name, qty, units, quote) in enumerate(
        zip(acct.perp_names, acct.perp_quantities, acct.perp_units, acct.perp_quotes, strict=True)
    ):
        mark = unsettled if k == 0 else 0.0  # the unsettled value is the net position's
        pnl = units * att.perp_per_unit
        out.append(PositionLine(name, qty, USD, mark, units, pnl, quote=quote))
    for name, c, pnl in zip(acct.collateral_names, p.collaterals, att.collaterals, strict=True):
        value = c.amount * c.price / p.stable_price
        delta = c.amount if c.is_risk_cancelling else 0.0
        out.append(PositionLine(name, c.amount, USD, value, delta, pnl, quote=_INDEX))
    return out


def _underlying(acct: DeriveSubaccount, res: DeriveResult, params: PMRM2Params) -> UnderlyingResult:
    lines, worst = _lines(acct, res, params)
    comps = {k: float(res.components[k]) for k in COMPONENTS}
    details = {
        "maintenance_margin": res.maintenance_margin,
        "equity": res.equity,
        "min_span": res.min_span,
        "forward_contingency": res.forward_contingency,
        **{k: float(v) for k, v in res.equity_components.items()},
    }
    return UnderlyingResult(
        acct.underlying,
        USD,
        float(res.components["worst_loss"]),
        MappingProxyType(comps),
        res.initial_margin,
        worst,
        lines,
        MappingProxyType(details),
    )


def to_margin_result(
    accounts: Sequence[tuple[DeriveSubaccount, DeriveResult]],
    *,
    params: PMRM2Params,
    cash: float,
    version: str,
    valuation_time: str,
    source: str,
    notes: Sequence[str] = (),
) -> MarginResult:
    """The :class:`MarginResult` of PMRM_2 sub-accounts sharing one USD pool (see the module).

    Parameters
    ----------
    accounts
        Each sub-account with its :func:`~portmargin.derive.evaluate` result.
    params
        The parameters they were evaluated with (for the scenario labels).
    cash
        USD cash held at pool level (not inside any sub-account), added to equity.
    version, valuation_time, source, notes
        Reported as they are; ``detail`` is ``{underlying: DeriveResult}``.
    """
    unds = [_underlying(a, r, params) for a, r in accounts]
    positions = [line for a, r in accounts for line in _positions(a, r)]
    comps = {k: sum((u.components[k] for u in unds), start=0.0) for k in COMPONENTS}
    details = {
        "cash": cash + sum((float(r.equity_components["cash"]) for _, r in accounts), start=0.0),
        "worst_loss": sum((float(r.components["worst_loss"]) for _, r in accounts), start=0.0),
        "forward_contingency": sum((r.forward_contingency for _, r in accounts), start=0.0),
        **{
            key: sum((float(r.equity_components[key]) for _, r in accounts), start=0.0)
            for key in _EQUITY_PARTS
        },
    }
    pool = PoolResult(
        USD,
        sum((r.initial_margin for _, r in accounts), start=0.0),
        sum((r.maintenance_margin for _, r in accounts), start=0.0),
        cash + sum((r.equity for _, r in accounts), start=0.0),
        MappingProxyType(comps),
        tuple(unds),
        1.0,
        MappingProxyType(details),
        IM_ONLY_COMPONENTS,
    )
    result = combine_pools(
        [pool],
        unds,
        positions,
        model=MODEL_NAME,
        version=version,
        valuation_time=valuation_time,
        source=source,
        notes=notes,
    )
    detail: Mapping[str, DeriveResult] = MappingProxyType({a.underlying: r for a, r in accounts})
    return replace(result, detail=detail)


def case_subaccount(
    portfolio: DerivePortfolio, *, underlying: str = "underlying"
) -> DeriveSubaccount:
    """A case file's portfolio as a sub-account, its holdings named as in the file.

    Options are ``option-<seconds>s-<strike>-<C|P>``, the perp ``perpetual`` (when held),
    collaterals by their ``Name``; the file's marks are ``quoted``.
    """
    p = portfolio
    has_perp = p.perp_position != 0.0
    return DeriveSubaccount(
        underlying=underlying,
        portfolio=p,
        option_names=tuple(
            f"option-{o.expiry_seconds:.0f}s-{o.strike:g}-{'C' if o.is_call else 'P'}"
            for o in p.options
        ),
        option_quantities=tuple(o.amount for o in p.options),
        option_quotes=tuple(_QUOTED for _ in p.options),
        perp_names=("perpetual",) if has_perp else (),
        perp_quantities=(p.perp_position,) if has_perp else (),
        perp_units=(p.perp_position,) if has_perp else (),
        perp_quotes=(_PERPETUAL,) if has_perp else (),
        collateral_names=tuple(c.name for c in p.collaterals),
    )


def margin_case(path: str | Path, *, allow_offchain_skew: bool = False) -> MarginResult:
    """Load a Derive PMRM_2 case file, evaluate it and return the one result family.

    The same conversion as :meth:`DeriveMethod.margin <portmargin.derive.DeriveMethod.margin>`
    (:func:`to_margin_result`); the case's portfolio, market data and parameters are all
    taken from the file, its valuation time is Derive's harness block time
    (:data:`REF_TIME`). ``maintenance_excess`` and ``initial_excess`` are the case's
    ``Result.MM`` and ``Result.IM``.

    Parameters
    ----------
    path
        The case file (schema: ``docs/methodology/derive.md``).
    allow_offchain_skew
        See :func:`~portmargin.derive.load_case`.

    Raises
    ------
    InputError
        ``"<file>: <field>: <reason>"`` for a file that cannot be used.
    """
    case = load_case(Path(path), allow_offchain_skew=allow_offchain_skew)
    res = evaluate(case.portfolio, case.params)
    return to_margin_result(
        [(case_subaccount(case.portfolio), res)],
        params=case.params,
        cash=0.0,
        version="PMRM_2 case file",
        valuation_time=iso_z(REF_TIME),
        source=case.source,
        notes=(
            "Derive PMRM_2 case file: holdings, market data (with its oracle confidences) and "
            "parameters from the file; expiries are seconds from the harness block time",
        ),
    )
