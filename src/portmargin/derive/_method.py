r"""Derive PMRM_2 applied to a portmargin book: :class:`DeriveMethod`.

The method maps a :class:`~portmargin.portfolio.Portfolio` on a
:class:`~portmargin.market.MarketSnapshot` into PMRM_2's inputs and evaluates them with the
verified engine (:func:`~portmargin.derive.evaluate`); the result is converted by the same code
as a case file's (:func:`~portmargin.derive.margin_case`).

**One sub-account per underlying, USD cash pooled.** PMRM_2 margins one underlying per
sub-account, in USD (``derivexyz/v2-core:src/risk-managers/PMRM_2.sol``: one manager per
market, cash in the stable asset; reference §2). A book on several underlyings is read as one
PMRM_2 sub-account per underlying, and its USD cash as pooled::

    IM = Σ_u IM_u,   MM = Σ_u MM_u,   equity = C + Σ_u (MtM_u)

Cash enters PMRM_2 only through equity (§9: ``MM = f·minSPAN − MMCont + MtM + C``; it is not
shocked and enters no contingency), so every sub-account's requirement is independent of its
cash and ``Σ_u excess_u = C + Σ_u (MtM_u − requirement_u)`` for *any* split of ``C`` across
them. The pooled excess is therefore exactly the total excess of a trader who holds one
sub-account per underlying and moves cash between them freely; it is ``≥ 0`` if and only if
some allocation of the cash keeps every sub-account ``≥ 0``. No allocation rule is needed.

**The mapping** (per instrument, amounts in units of underlying ``n = quantity·multiplier``):

* Options of any product become PMRM_2 options on their underlying: strike ``K``, call/put,
  seconds to expiry from ``market.valuation_time`` (ACT/365, ``τ = s/31,536,000``), the
  market's forward ``market.forward(u, expiry)``, mark vol ``market.option_vols`` and the
  underlying's rate (PMRM_2 floors it at 0). An inverse (coin-settled) option pays
  ``max(S − K, 0)/S`` coin, worth ``max(S − K, 0)`` USD at expiry: the same USD payoff as the
  linear option, so in USD margining they are the same option. An option at or past expiry is
  PMRM_2's expired-unsettled option (``s = 0``) on the market's settlement price.
* Perpetuals (inverse or linear) add up into PMRM_2's one perp position at the market's
  perpetual mark. An inverse perp's USD P&L is ``q·(P₁ − P₀)`` for ``q`` coins at the current
  mark, as a linear one's. Unrealised P&L and funding are 0: portmargin positions carry no
  entry price.
* Dated futures and spot pairs are not PMRM_2 holdings (it margins options, perpetuals, cash
  and collateral): they are refused with one line naming the instrument.
* Cash: USD, USDC and USDT are PMRM_2 cash (the stable asset) at par with each other; the
  stable price is the market's ``USDC`` index when it has one, else 1. A coin balance
  (``BTC``, ``ETH``, ...) is collateral in its own underlying's sub-account, priced at the
  index with confidence 1, risk-cancelling (shocked with spot, as PMRM_2's wrapped base asset
  of that market) and charged the configured haircuts; negative coin balances are refused
  (on chain a collateral balance cannot be negative).
* Confidences are all 1: a portmargin market has no oracle confidences, so the confidence
  contingency is 0 (with confidences at or above ``CONF_THRESHOLD`` it would be 0 anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from portmargin.derive._result import (
    MODEL_NAME,
    DeriveSubaccount,
    to_margin_result,
)
from portmargin.derive.case import CollateralHolding, DerivePortfolio, ExpiryFeed, OptionHolding
from portmargin.derive.config import DeriveConfig, load_config
from portmargin.derive.pmrm2 import evaluate
from portmargin.errors import InputError, ParameterError, PortmarginError
from portmargin.instruments import Future, Option, Perpetual, Spot
from portmargin.market.snapshot import MarketSnapshot
from portmargin.methods import Family, Method, MethodInfo, register_method
from portmargin.models.result import MarginResult
from portmargin.portfolio import Portfolio
from portmargin.units import STABLE_CURRENCIES, iso_z

__all__ = ["DeriveBook", "DeriveMethod", "map_book"]

_STABLE_INDEX = "USDC"
"""Derive's cash asset: its market index, when quoted, is PMRM_2's stable price."""


@dataclass(frozen=True, slots=True)
class DeriveBook:
    """A book as PMRM_2 sees it: one sub-account per underlying plus pooled USD cash.

    Attributes
    ----------
    subaccounts
        One per underlying held (options, perpetuals or a coin balance), sorted by name;
        each with cash 0.
    cash
        The book's USD, USDC and USDT balances at par (PMRM_2 cash), held at pool level.
    notes
        What the mapping assumed, one line each.
    """

    subaccounts: tuple[DeriveSubaccount, ...]
    cash: float
    notes: tuple[str, ...]


@dataclass
class _Holdings:
    """What one underlying's sub-account holds, as collected (name, quantity, ..., units)."""

    options: list[tuple[str, float, Option, float]] = field(default_factory=list)
    perps: list[tuple[str, float, float]] = field(default_factory=list)
    coin: float = 0.0


def _seconds(market: MarketSnapshot, expiry: datetime) -> float:
    return max((expiry - market.valuation_time).total_seconds(), 0.0)


def map_book(portfolio: Portfolio, market: MarketSnapshot, config: DeriveConfig) -> DeriveBook:
    """Map a book on a market into PMRM_2 sub-accounts (the mapping of the module docstring).

    Raises
    ------
    InputError
        One line naming the book and the instrument or balance: an unknown instrument, a
        dated future or spot pair, a linear product not quoted in USD, a negative coin
        balance, or a coin without an index or without collateral haircuts.
    MarketDataError
        When the market lacks what an option needs (a settlement price, a vol).
    """
    book = portfolio.name
    net: dict[str, float] = {}
    for name, qty in portfolio.net_positions().items():
        try:
            inst = market.instrument(name)
        except PortmarginError as exc:
            raise InputError(f"{book}: positions: {exc}") from None
        net[inst.name] = net.get(inst.name, 0.0) + qty
    held: dict[str, _Holdings] = {}
    inverse = False
    for name in sorted(net):
        qty = net[name]
        if qty == 0.0:
            continue
        inst = market.instrument(name)
        if isinstance(inst, Future):
            raise InputError(
                f"{book}: positions: {name}: dated futures are not a Derive PMRM_2 product "
                "(it margins options, perpetuals, cash and collateral); margin this book under "
                "another method"
            )
        if isinstance(inst, Spot):
            raise InputError(
                f"{book}: positions: {name}: spot pairs are not PMRM_2 positions; hold the coin "
                f"as a cash balance (cash.{inst.underlying}) instead"
            )
        quote = inst.product.quote_currency.upper()
        if not inst.is_inverse and quote not in STABLE_CURRENCIES:
            raise InputError(
                f"{book}: positions: {name}: quoted in {inst.product.quote_currency}; Derive "
                "margins in USD (USD, USDC or USDT products, or inverse ones)"
            )
        units = qty * inst.multiplier
        slot = held.setdefault(inst.underlying, _Holdings())
        if isinstance(inst, Perpetual):
            slot.perps.append((name, qty, units))
        else:
            inverse = inverse or inst.is_inverse
            slot.options.append((name, qty, inst, units))
    cash = 0.0
    for ccy, amount in portfolio.cash.items():
        code = ccy.upper()
        if code in STABLE_CURRENCIES:
            cash += amount
            continue
        if amount == 0.0:
            continue
        if code not in market.underlyings:
            raise InputError(f"{book}: cash.{ccy}: no {code} index in the market to value it")
        if amount < 0.0:
            raise InputError(
                f"{book}: cash.{ccy}: {amount:g}: a PMRM_2 collateral balance cannot be "
                "negative; borrow USD cash instead"
            )
        if code not in config.collateral:
            raise InputError(
                f"{book}: cash.{ccy}: no Derive collateral haircuts for {code} (add "
                f"[collateral.{code}] mm_haircut, im_haircut to a --params file)"
            )
        held.setdefault(code, _Holdings()).coin += amount

    stable = market.index_price(_STABLE_INDEX) if _STABLE_INDEX in market.underlyings else 1.0
    subaccounts = []
    notes: list[str] = []
    for und in sorted(held):
        sub, extra = _subaccount(und, held[und], market, config, stable)
        subaccounts.append(sub)
        notes += extra
    notes.append(
        "oracle confidences 1 (a portmargin market has none): PMRM_2's confidence contingency is 0"
    )
    if len(subaccounts) > 1:
        notes.append(
            "one PMRM_2 sub-account per underlying, USD cash pooled: requirements add, "
            "equity = cash + the sub-accounts' mark-to-market"
        )
    if inverse:
        notes.append(
            "inverse (coin-settled) options margined as the linear options with the same USD "
            "payoff at expiry"
        )
    if any(s.perp_names for s in subaccounts):
        notes.append(
            "perpetuals at the perpetual mark with unrealised P&L and funding 0 (positions "
            "carry no entry price)"
        )
    if any(s.portfolio.collaterals for s in subaccounts):
        notes.append(
            "coin balances are risk-cancelling collateral of their own sub-account, at the "
            "index, with the configured haircuts (Derive does not publish its mainnet ones)"
        )
    if stable != 1.0:
        notes.append(f"stable price {stable:g} USD per USDC (the market's USDC index)")
    return DeriveBook(tuple(subaccounts), cash, tuple(notes))


def _subaccount(
    und: str, h: _Holdings, market: MarketSnapshot, config: DeriveConfig, stable: float
) -> tuple[DeriveSubaccount, list[str]]:
    """The PMRM_2 sub-account of one underlying, with its feeds, vols and collateral."""
    notes: list[str] = []
    spot = market.index_price(und)
    rate = market.rate(und)
    insts = [inst for _, _, inst, _ in h.options]
    vols = market.option_vols(insts).tolist() if insts else []
    feeds: dict[float, ExpiryFeed] = {}
    options: list[OptionHolding] = []
    for inst, vol, (_, _, _, units) in zip(insts, vols, h.options, strict=True):
        seconds = _seconds(market, inst.expiry)
        if seconds not in feeds:
            if seconds == 0.0:
                forward = market.settlement_price(und, inst.expiry, instrument=inst.name)
            else:
                forward = market.forward(und, inst.expiry)
            feeds[seconds] = ExpiryFeed(
                expiry_seconds=seconds,
                forward=forward,
                forward_confidence=1.0,
                rate=rate,
                rate_confidence=1.0,
                vol_confidence=1.0,
            )
        options.append(
            OptionHolding(
                expiry_seconds=seconds,
                strike=inst.strike,
                is_call=inst.is_call,
                amount=units,
                vol=float(vol) if math.isfinite(vol) else 0.0,
            )
        )
    if len(feeds) > config.max_expiries:
        notes.append(
            f"{und}: {len(feeds)} expiries, above Derive's {config.max_expiries} per "
            "sub-account (Derive would refuse the sub-account; the figures are the formula's)"
        )
    if options and rate < 0.0:
        notes.append(f"{und}: rate {rate:g} floored at 0 (PMRM_2 floors negative rates)")
    collaterals: tuple[CollateralHolding, ...] = ()
    names: tuple[str, ...] = ()
    if h.coin > 0.0:
        haircuts = config.collateral[und]
        collaterals = (
            CollateralHolding(
                name=und,
                amount=h.coin,
                price=spot,
                confidence=1.0,
                is_risk_cancelling=True,
                mm_haircut=haircuts.mm_haircut,
                im_haircut=haircuts.im_haircut,
            ),
        )
        names = (f"cash:{und}",)
    perp_units = tuple(u for _, _, u in h.perps)
    position = sum(perp_units, start=0.0)
    portfolio = DerivePortfolio(
        spot=spot,
        spot_confidence=1.0,
        stable_price=stable,
        cash=0.0,
        perp_position=position,
        perp_price=market.perpetual_price(und),
        perp_confidence=1.0,
        perp_unrealised_pnl=0.0,
        perp_unrealised_funding=0.0,
        options=tuple(options),
        feeds=tuple(feeds[s] for s in sorted(feeds)),
        collaterals=collaterals,
    )
    sub = DeriveSubaccount(
        underlying=und,
        portfolio=portfolio,
        option_names=tuple(name for name, _, _, _ in h.options),
        option_quantities=tuple(qty for _, qty, _, _ in h.options),
        option_quotes=tuple(market.quote_source(inst).value for inst in insts),
        perp_names=tuple(name for name, _, _ in h.perps),
        perp_quantities=tuple(qty for _, qty, _ in h.perps),
        perp_units=perp_units,
        perp_quotes=tuple(
            market.quote_source(market.instrument(name)).value for name, _, _ in h.perps
        ),
        collateral_names=names,
    )
    return sub, notes


@dataclass(frozen=True, slots=True)
class DeriveMethod:
    """Derive's PMRM_2 as a :class:`~portmargin.methods.Method` on a portmargin book.

    Parameters
    ----------
    config
        Parameters (:func:`~portmargin.derive.load_config`; mainnet by default).

    Notes
    -----
    The mapping and the multi-underlying reading are in the module docstring of
    :mod:`portmargin.derive._method` and ``docs/methodology/derive.md``. The result's
    ``detail`` is ``{underlying: DeriveResult}``.
    """

    config: DeriveConfig

    @classmethod
    def load(cls, params_file: str | Path | None = None) -> DeriveMethod:
        """Mainnet parameters with ``params_file`` (TOML) merged over them.

        Raises
        ------
        ParameterError
            ``"<file>: <key path>: <reason>"``, e.g. an unknown (misspelt) key.
        """
        return cls(load_config(params_file))

    @property
    def name(self) -> str:
        """``derive``."""
        return MODEL_NAME

    @property
    def version(self) -> str:
        """The parameters' version, with any override file applied."""
        return self.config.label

    @property
    def family(self) -> Family:
        """``derive``."""
        return "derive"

    def book(self, portfolio: Portfolio, market: MarketSnapshot) -> DeriveBook:
        """The PMRM_2 sub-accounts of ``portfolio`` on ``market`` (:func:`map_book`)."""
        return map_book(portfolio, market, self.config)

    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """Margin ``portfolio`` on ``market`` under PMRM_2, in USD.

        Raises
        ------
        InputError
            For a holding PMRM_2 cannot take (a dated future, a spot pair, ...), naming it.
        """
        book = self.book(portfolio, market)
        params = self.config.params
        accounts = [(sub, evaluate(sub.portfolio, params)) for sub in book.subaccounts]
        return to_margin_result(
            accounts,
            params=params,
            cash=book.cash,
            version=self.version,
            valuation_time=iso_z(market.valuation_time),
            source=market.source,
            notes=book.notes,
        )


def _load(params_file: str | None, cross: bool | None) -> Method:  # noqa: FBT001
    """The registry's loader: ``cross`` does not apply (PMRM_2 is one USD pool already)."""
    if cross:
        raise ParameterError(
            "derive: --cross does not apply: PMRM_2 already margins the whole book in one USD pool"
        )
    return DeriveMethod.load(params_file)


INFO = MethodInfo(
    MODEL_NAME,
    "derive",
    "Derive PMRM_2 portfolio margin (mainnet parameters), one USD sub-account per underlying",
)
"""How the method is listed (``portmargin models``)."""

register_method(INFO, _load)
