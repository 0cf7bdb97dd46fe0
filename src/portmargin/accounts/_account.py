r"""Accounts: positions plus multi-currency balances, margined and classified.

An account's figures are in USD. With ``r_c`` the USD rate of currency ``c`` (the index for
BTC/ETH, 1 for USD, USDC and USDT) and ``h_c`` its haircut (:class:`AccountSettings`)::

    margin equity  = Σ_pools equity_pool·usd_rate_pool           (as ``portmargin margin``)
    haircut        = Σ_c max(balance_c, 0)·r_c·h_c
    equity         = margin equity − haircut
    IM, MM         = Σ_pools IM_pool·usd_rate_pool, Σ_pools MM_pool·usd_rate_pool
    excess         = equity − IM
    margin ratio   = MM / equity                                  (∞ when equity ≤ 0)

Status, with the levels as settings (defaults 1.0)::

    liquidation    equity < liquidation_level · MM
    margin call    equity < margin_call_level · IM
    healthy        otherwise

Eligibility for portfolio margin is a qualification gate: an account whose (haircut) equity
is below ``min_pm_equity_usd`` is margined under the rules-based ``fallback_rule_set``
(:func:`portmargin.rules.rules_margin`) instead, and reported with ``method = "rules"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from portmargin.errors import InputError, ParameterError, PortmarginError
from portmargin.instruments import STABLE_CURRENCIES, InstrumentKind
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel, MarginResult
from portmargin.portfolio import Portfolio, Position

__all__ = [
    "BALANCE_CURRENCIES",
    "Account",
    "AccountMargin",
    "AccountSettings",
    "AccountStatus",
    "classify",
    "evaluate_account",
    "haircut_usd",
    "instrument_known",
    "margin_usd",
    "usd_rate",
]

BALANCE_CURRENCIES = frozenset({"BTC", "ETH", "USDC", "USDT", "USD"})


class AccountStatus(Enum):
    """Margin status of an account."""

    HEALTHY = "healthy"
    MARGIN_CALL = "margin_call"
    LIQUIDATION = "liquidation"


def _default_haircuts() -> Mapping[str, float]:
    return MappingProxyType({"BTC": 0.02, "ETH": 0.03, "USDC": 0.0, "USDT": 0.005, "USD": 0.0})


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """Risk settings applied to every account.

    Attributes
    ----------
    haircuts
        Fraction of each positive balance's USD value *not* counted as equity.
    margin_call_level
        Margin call when ``equity < margin_call_level × IM``.
    liquidation_level
        Liquidation when ``equity < liquidation_level × MM``.
    min_pm_equity_usd
        Qualification gate: accounts with less (haircut) equity in USD are not eligible for
        portfolio margin and are margined under ``fallback_rule_set``.
    fallback_rule_set
        Rule set (``portmargin.rules``) for ineligible accounts.
    """

    haircuts: Mapping[str, float] = field(default_factory=_default_haircuts)
    margin_call_level: float = 1.0
    liquidation_level: float = 1.0
    min_pm_equity_usd: float = 10_000.0
    fallback_rule_set: str = "strategy"

    def __post_init__(self) -> None:
        for ccy, h in self.haircuts.items():
            if not (math.isfinite(h) and 0.0 <= h < 1.0):
                raise ParameterError(f"settings: `haircuts.{ccy}` must be in [0, 1), got {h!r}")
        for name in ("margin_call_level", "liquidation_level"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ParameterError(f"settings: `{name}` must be > 0, got {v!r}")
        if not (math.isfinite(self.min_pm_equity_usd) and self.min_pm_equity_usd >= 0):
            raise ParameterError("settings: `min_pm_equity_usd` must be >= 0")
        object.__setattr__(self, "haircuts", MappingProxyType(dict(self.haircuts)))


@dataclass(frozen=True, slots=True)
class Account:
    """An account: an id, net positions (instrument → contracts) and balances (ccy → amount)."""

    account_id: str
    positions: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    balances: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.account_id:
            raise InputError("account: empty `account_id`")
        for ccy, amount in self.balances.items():
            if ccy not in BALANCE_CURRENCIES:
                raise InputError(
                    f"account {self.account_id}: balances.{ccy}: unsupported currency "
                    f"(use one of {', '.join(sorted(BALANCE_CURRENCIES))})"
                )
            if not math.isfinite(amount):
                raise InputError(f"account {self.account_id}: balances.{ccy}: not finite")
        for name, qty in self.positions.items():
            if not math.isfinite(qty):
                raise InputError(f"account {self.account_id}: positions.{name}: not finite")
        pos = {k: float(v) for k, v in self.positions.items() if v != 0.0}
        object.__setattr__(self, "positions", MappingProxyType(pos))
        object.__setattr__(
            self, "balances", MappingProxyType({k: float(v) for k, v in self.balances.items()})
        )

    def portfolio(self) -> Portfolio:
        """The account as an engine :class:`~portmargin.portfolio.Portfolio`."""
        return Portfolio(
            tuple(Position(k, v) for k, v in self.positions.items()),
            dict(self.balances),
            self.account_id,
        )

    @classmethod
    def from_portfolio(cls, portfolio: Portfolio, account_id: str | None = None) -> Account:
        """An account holding ``portfolio``'s net positions and cash."""
        return cls(account_id or portfolio.name, portfolio.net_positions(), dict(portfolio.cash))

    def with_trades(self, trades: Mapping[str, float], cash: Mapping[str, float]) -> Account:
        """A new account with ``trades`` added to positions and ``cash`` added to balances."""
        pos = dict(self.positions)
        for k, v in trades.items():
            pos[k] = pos.get(k, 0.0) + v
        bal = dict(self.balances)
        for k, v in cash.items():
            bal[k] = bal.get(k, 0.0) + v
        return Account(self.account_id, pos, bal)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (the accounts-file format)."""
        return {
            "id": self.account_id,
            "balances": dict(self.balances),
            "positions": [{"instrument": k, "quantity": v} for k, v in self.positions.items()],
        }


@dataclass(frozen=True, slots=True)
class AccountMargin:
    """An account's margin figures (USD) and status at one market state.

    ``method`` is ``"portfolio"`` or ``"rules"`` (ineligible accounts, margined under the
    fallback rule set). ``margin_equity_usd`` is the engine's equity before haircuts.
    """

    account_id: str
    method: str
    eligible: bool
    valuation_time: str
    initial_margin_usd: float
    maintenance_margin_usd: float
    margin_equity_usd: float
    haircut_usd: float
    status: AccountStatus

    @property
    def equity_usd(self) -> float:
        """Margin equity minus collateral haircuts."""
        return self.margin_equity_usd - self.haircut_usd

    @property
    def excess_usd(self) -> float:
        """Equity − IM."""
        return self.equity_usd - self.initial_margin_usd

    @property
    def maintenance_excess_usd(self) -> float:
        """Equity − MM."""
        return self.equity_usd - self.maintenance_margin_usd

    @property
    def margin_ratio(self) -> float:
        """MM / equity (∞ when equity ≤ 0 and MM > 0; 0 with no requirement)."""
        if self.equity_usd > 0:
            return self.maintenance_margin_usd / self.equity_usd
        return math.inf if self.maintenance_margin_usd > 0 or self.equity_usd < 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (a non-finite ratio is written as ``null``)."""
        ratio = self.margin_ratio
        return {
            "account": self.account_id,
            "method": self.method,
            "eligible": self.eligible,
            "valuation_time": self.valuation_time,
            "initial_margin": self.initial_margin_usd,
            "maintenance_margin": self.maintenance_margin_usd,
            "margin_equity": self.margin_equity_usd,
            "haircut": self.haircut_usd,
            "equity": self.equity_usd,
            "excess": self.excess_usd,
            "maintenance_excess": self.maintenance_excess_usd,
            "margin_ratio": ratio if math.isfinite(ratio) else None,
            "status": self.status.value,
        }


def usd_rate(currency: str, market: MarketSnapshot) -> float:
    """USD per unit of ``currency``: 1 for USD-like stable coins, else the index price."""
    if currency in STABLE_CURRENCIES:
        return 1.0
    return market.index_price(currency)


def haircut_usd(balances: Mapping[str, float], market: MarketSnapshot, s: AccountSettings) -> float:
    """``Σ_c max(balance_c, 0)·r_c·h_c`` (see the module docstring)."""
    return sum(
        max(amount, 0.0) * usd_rate(ccy, market) * s.haircuts.get(ccy, 0.0)
        for ccy, amount in balances.items()
        if amount > 0.0
    )


def margin_usd(result: MarginResult) -> tuple[float, float, float]:
    """``(IM, MM, equity)`` of an engine result, every pool converted to USD."""
    im = sum(p.initial_margin * p.usd_rate for p in result.by_currency)
    mm = sum(p.maintenance_margin * p.usd_rate for p in result.by_currency)
    eq = sum(p.equity * p.usd_rate for p in result.by_currency)
    return im, mm, eq


def classify(equity: float, im: float, mm: float, s: AccountSettings) -> AccountStatus:
    """Status from equity, IM and MM (see the module docstring)."""
    if equity < s.liquidation_level * mm or (equity < 0 and mm <= 0):
        return AccountStatus.LIQUIDATION
    if equity < s.margin_call_level * im:
        return AccountStatus.MARGIN_CALL
    return AccountStatus.HEALTHY


def instrument_known(name: str, market: MarketSnapshot) -> bool:
    """True if ``market`` lists the instrument (options must be quoted, futures marked)."""
    try:
        inst = market.instrument(name)
    except PortmarginError:
        return False
    if inst.underlying not in market.underlyings:
        return False
    if inst.kind is InstrumentKind.OPTION:
        return inst.name in market.option_iv
    if inst.kind is InstrumentKind.FUTURE:
        return inst.name in market.futures or any(
            u == inst.underlying and e == inst.expiry for u, e in market.forwards
        )
    return True


def _rules_figures(
    account: Account, market: MarketSnapshot, rule_set: str
) -> tuple[float, float, float]:
    from portmargin.rules import load_rule_set, rules_margin

    positions = [(market.instrument(k), v) for k, v in account.positions.items()]
    res = rules_margin(positions, dict(account.balances), market, load_rule_set(rule_set))
    im = mm = eq = 0.0
    for pool, p in res.by_currency.items():
        rate = usd_rate(pool, market)
        im += p.initial_margin * rate
        mm += p.maintenance_margin * rate
        eq += p.equity * rate
    return im, mm, eq


def finish(
    account: Account,
    market: MarketSnapshot,
    settings: AccountSettings,
    pm: tuple[float, float, float],
    method: str | None = None,
) -> AccountMargin:
    """Apply haircuts, the qualification gate and the status rules to PM figures ``pm``.

    ``method`` (``"portfolio"`` or ``"rules"``) keeps a method decided earlier instead of
    applying the gate now; ``eligible`` still reports the gate's current verdict.
    """
    im, mm, eq = pm
    hc = haircut_usd(account.balances, market, settings)
    eligible = eq - hc >= settings.min_pm_equity_usd
    if method is None:
        method = "portfolio" if eligible else "rules"
    elif method not in ("portfolio", "rules"):
        raise ParameterError(f"margin method {method!r}: use 'portfolio' or 'rules'")
    if method == "rules":
        im, mm, eq = _rules_figures(account, market, settings.fallback_rule_set)
    when = market.valuation_time.isoformat().replace("+00:00", "Z")
    status = classify(eq - hc, im, mm, settings)
    return AccountMargin(account.account_id, method, eligible, when, im, mm, eq, hc, status)


def evaluate_account(
    account: Account,
    market: MarketSnapshot,
    model: MarginModel,
    settings: AccountSettings | None = None,
) -> AccountMargin:
    """Margin one account: the engine's figures in USD, haircuts, gate and status.

    Raises
    ------
    InputError
        Unknown instruments or balances without a price (from the engine).
    """
    s = settings or AccountSettings()
    result = model.margin(account.portfolio(), market)
    return finish(account, market, s, margin_usd(result))
