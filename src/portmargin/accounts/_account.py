r"""Accounts: positions plus multi-currency balances, margined pool by pool and classified.

An account's figures are per **margin pool** (the pools of the margin method: each coin
and USD in segregated mode, one USD pool in cross mode), in the pool currency. With ``h_c``
the haircut of currency ``c`` (:class:`AccountSettings`)::

    haircut_p      = Σ_{c ∈ p} max(balance_c, 0)·h_c·usd_rate(c)/usd_rate(p)
    equity_p       = margin equity_p (the method's) − haircut_p
    excess_p       = equity_p − IM_p
    status_p       = classify(equity_p, IM_p, MM_p)          (accounts._policy)
    status         = the worst pool's status

The USD totals (``Σ_p x_p·usd_rate(p)``, :func:`portmargin.units.usd_rate`) are the
account's figures in cross mode; in segregated mode they are informational only: a
surplus in one pool never covers a deficit in another, and no decision reads them.

The margin method is decided by the qualification gate (:func:`portmargin.accounts.qualifies`):
an account that is not approved for portfolio margin, or whose equity after haircuts is
below ``min_pm_equity_usd``, is margined under the rules-based ``fallback_rule_set``
(:func:`portmargin.rules.rules_margin`) instead, and reported with ``method = "rules"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from portmargin._tabular import Tabular
from portmargin.accounts._policy import (
    DEFAULT_MIN_PM_EQUITY_USD,
    AccountStatus,
    classify,
    qualifies,
    worst_status,
)
from portmargin.errors import InputError, ParameterError, PortmarginError
from portmargin.io.limits import check_balance, check_quantity
from portmargin.io.names import did_you_mean
from portmargin.market.snapshot import MarketSnapshot, QuoteSource
from portmargin.models import MarginModel
from portmargin.models.result import Excess, MarginResult
from portmargin.models.session import BatchResult
from portmargin.portfolio import Portfolio, Position
from portmargin.units import pool_currency, usd_rate, usd_totals

__all__ = [
    "BALANCE_CURRENCIES",
    "Account",
    "AccountMargin",
    "AccountSettings",
    "AccountStatus",
    "PoolFigures",
    "account_margin",
    "evaluate_account",
    "haircut_usd",
    "instrument_known",
    "margin_usd",
    "result_pools",
]

BALANCE_CURRENCIES = frozenset({"BTC", "ETH", "USDC", "USDT", "USD"})


def _default_haircuts() -> Mapping[str, float]:
    return MappingProxyType({"BTC": 0.02, "ETH": 0.03, "USDC": 0.0, "USDT": 0.005, "USD": 0.0})


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """Risk settings applied to every account.

    Attributes
    ----------
    haircuts
        Fraction of each positive balance's value *not* counted as equity.
    margin_call_level
        Margin call when a pool's ``equity < margin_call_level × IM``.
    liquidation_level
        Liquidation when a pool's ``equity < liquidation_level × MM``.
    min_pm_equity_usd
        Qualification gate: approved accounts with at least this much equity after haircuts
        (USD) are margined under portfolio margin, the others under ``fallback_rule_set``.
    fallback_rule_set
        Rule set (``portmargin.rules``) for accounts that do not qualify.
    """

    haircuts: Mapping[str, float] = field(default_factory=_default_haircuts)
    margin_call_level: float = 1.0
    liquidation_level: float = 1.0
    min_pm_equity_usd: float = DEFAULT_MIN_PM_EQUITY_USD
    fallback_rule_set: str = "strategy"

    def __post_init__(self) -> None:
        for ccy, h in self.haircuts.items():
            if not (math.isfinite(h) and 0.0 <= h < 1.0):
                raise ParameterError(f"settings: `haircuts.{ccy}` must be in [0, 1), got {h!r}")
        for name in ("margin_call_level", "liquidation_level"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v <= 100):
                raise ParameterError(f"settings: `{name}` must be in (0, 100], got {v!r}")
        if not (math.isfinite(self.min_pm_equity_usd) and self.min_pm_equity_usd >= 0):
            raise ParameterError("settings: `min_pm_equity_usd` must be a finite number >= 0")
        object.__setattr__(self, "haircuts", MappingProxyType(dict(self.haircuts)))


@dataclass(frozen=True, slots=True)
class Account:
    """An account: an id, net positions (instrument → contracts) and balances (ccy → amount).

    ``pm_approved`` says whether the venue has granted the account portfolio margin (on
    application, as venues do); with the equity minimum it makes the qualification gate.
    """

    account_id: str
    positions: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    balances: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    pm_approved: bool = True

    def __post_init__(self) -> None:
        if not self.account_id:
            raise InputError("account: empty `account_id`")
        for ccy, amount in self.balances.items():
            if ccy not in BALANCE_CURRENCIES:
                raise InputError(
                    f"account {self.account_id}: balances.{ccy}: unsupported currency "
                    f"(use one of {', '.join(sorted(BALANCE_CURRENCIES))})"
                )
            check_balance(amount, f"account {self.account_id}: balances.{ccy}")
        for name, qty in self.positions.items():
            check_quantity(qty, f"account {self.account_id}: positions.{name}")
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
    def from_portfolio(
        cls, portfolio: Portfolio, account_id: str | None = None, *, pm_approved: bool = True
    ) -> Account:
        """An account holding ``portfolio``'s net positions and cash."""
        return cls(
            account_id or portfolio.name,
            portfolio.net_positions(),
            dict(portfolio.cash),
            pm_approved,
        )

    def with_trades(self, trades: Mapping[str, float], cash: Mapping[str, float]) -> Account:
        """A new account with ``trades`` added to positions and ``cash`` added to balances."""
        pos = dict(self.positions)
        for k, v in trades.items():
            pos[k] = pos.get(k, 0.0) + v
        bal = dict(self.balances)
        for k, v in cash.items():
            bal[k] = bal.get(k, 0.0) + v
        return Account(self.account_id, pos, bal, self.pm_approved)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (the accounts-file format)."""
        out: dict[str, Any] = {
            "id": self.account_id,
            "balances": dict(self.balances),
            "positions": [{"instrument": k, "quantity": v} for k, v in self.positions.items()],
        }
        if not self.pm_approved:
            out["pm_approved"] = False
        return out


@dataclass(frozen=True, slots=True)
class PoolFigures(Excess):
    """One margin pool of an account, in the pool currency (see the module docstring).

    ``equity`` is after haircuts (``haircut`` of them); ``worst_loss`` is the pool's worst
    aggregated scenario loss under portfolio margin (≥ 0; the pre-trade rule reads it).
    """

    currency: str
    initial_margin: float
    maintenance_margin: float
    equity: float
    haircut: float
    usd_rate: float
    worst_loss: float
    status: AccountStatus

    @property
    def margin_ratio(self) -> float:
        """MM / equity (∞ when equity ≤ 0 and MM > 0 or equity < 0; 0 with no requirement)."""
        return _ratio(self.maintenance_margin, self.equity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (a non-finite ratio is ``null``)."""
        ratio = self.margin_ratio
        return {
            "currency": self.currency,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "equity": self.equity,
            "haircut": self.haircut,
            "excess": self.initial_excess,
            "maintenance_excess": self.maintenance_excess,
            "worst_loss": self.worst_loss,
            "margin_ratio": ratio if math.isfinite(ratio) else None,
            "status": self.status.value,
            "usd_rate": self.usd_rate,
        }


def _ratio(mm: float, equity: float) -> float:
    if equity > 0:
        return mm / equity
    return math.inf if mm > 0 or equity < 0 else 0.0


@dataclass(frozen=True, slots=True)
class AccountMargin(Tabular):
    """An account's margin figures and status at one market state, pool by pool.

    ``method`` is ``"portfolio"`` or ``"rules"``; ``eligible`` is the qualification gate's
    verdict now (``approved`` and equity) and ``approved`` the account's flag; ``mode`` is
    ``"segregated"`` or ``"cross"``. The USD figures are sums over ``pools`` (informational
    in segregated mode, where ``status`` is the worst pool's).
    """

    account_id: str
    method: str
    eligible: bool
    approved: bool
    mode: str
    valuation_time: str
    pools: tuple[PoolFigures, ...]

    @property
    def status(self) -> AccountStatus:
        """The worst pool's status."""
        return worst_status([p.status for p in self.pools])

    @property
    def initial_margin_usd(self) -> float:
        """Σ_pools IM·usd_rate."""
        return usd_totals(self.pools)[0]

    @property
    def maintenance_margin_usd(self) -> float:
        """Σ_pools MM·usd_rate."""
        return usd_totals(self.pools)[1]

    @property
    def haircut_usd(self) -> float:
        """Σ_pools haircut·usd_rate."""
        total = 0.0
        for p in self.pools:
            total += p.haircut * p.usd_rate
        return total

    @property
    def equity_usd(self) -> float:
        """Σ_pools equity (after haircuts)·usd_rate."""
        return usd_totals(self.pools)[2]

    @property
    def margin_equity_usd(self) -> float:
        """Equity before haircuts, USD."""
        return self.equity_usd + self.haircut_usd

    @property
    def excess_usd(self) -> float:
        """Equity − IM, USD (informational in segregated mode)."""
        return self.equity_usd - self.initial_margin_usd

    @property
    def maintenance_excess_usd(self) -> float:
        """Equity − MM, USD (informational in segregated mode)."""
        return self.equity_usd - self.maintenance_margin_usd

    @property
    def margin_ratio(self) -> float:
        """MM / equity in USD totals (∞ when equity ≤ 0 and MM > 0; 0 with no requirement).

        Informational in segregated mode, where :attr:`worst_pool_ratio` ranks accounts.
        """
        return _ratio(self.maintenance_margin_usd, self.equity_usd)

    @property
    def worst_pool_ratio(self) -> float:
        """MM / equity of the worst pool (in cross mode, of the one USD pool).

        The ratio that ranks accounts by closeness to liquidation: ∞ when a pool has MM > 0
        and no positive equity, or negative equity; 0 with no requirement anywhere.
        """
        return max((p.margin_ratio for p in self.pools), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (a non-finite ratio is written as ``null``)."""
        ratio, worst = self.margin_ratio, self.worst_pool_ratio
        return {
            "account": self.account_id,
            "method": self.method,
            "eligible": self.eligible,
            "approved": self.approved,
            "mode": self.mode,
            "valuation_time": self.valuation_time,
            "initial_margin": self.initial_margin_usd,
            "maintenance_margin": self.maintenance_margin_usd,
            "margin_equity": self.margin_equity_usd,
            "haircut": self.haircut_usd,
            "equity": self.equity_usd,
            "excess": self.excess_usd,
            "maintenance_excess": self.maintenance_excess_usd,
            "margin_ratio": ratio if math.isfinite(ratio) else None,
            "worst_pool_ratio": worst if math.isfinite(worst) else None,
            "status": self.status.value,
            "pools": [p.to_dict() for p in self.pools],
        }


def haircut_usd(balances: Mapping[str, float], market: MarketSnapshot, s: AccountSettings) -> float:
    """``Σ_c max(balance_c, 0)·usd_rate(c)·h_c`` (see the module docstring)."""
    return sum(
        amount * usd_rate(ccy, market) * s.haircuts.get(ccy, 0.0)
        for ccy, amount in balances.items()
        if amount > 0.0
    )


def _pool_haircuts(
    balances: Mapping[str, float], market: MarketSnapshot, s: AccountSettings, *, cross: bool
) -> dict[str, float]:
    """Haircut per pool in the pool currency (one USD pool in cross mode)."""
    out: dict[str, float] = {}
    for ccy, amount in balances.items():
        h = s.haircuts.get(ccy, 0.0)
        if amount > 0.0 and h > 0.0:
            pool = "USD" if cross else pool_currency(ccy)
            value = amount * h * usd_rate(ccy, market) / usd_rate(pool, market)
            out[pool] = out.get(pool, 0.0) + value
    return out


def margin_usd(result: MarginResult) -> tuple[float, float, float]:
    """``(IM, MM, equity)`` in USD of a margin result (:func:`portmargin.units.usd_totals`)."""
    return usd_totals(result.by_currency)


def instrument_known(name: str, market: MarketSnapshot) -> bool:
    """True if ``market`` lists the instrument: a live one whose mark is not interpolated.

    Options must be quoted and futures marked (or have their expiry's forward); an
    instrument at or past expiry is not tradable (:meth:`MarketSnapshot.quote_source`).
    """
    try:
        inst = market.instrument(name)
        if inst.underlying not in market.underlyings:
            return False
        source = market.quote_source(inst)
    except PortmarginError:
        return False
    return source not in (QuoteSource.INTERPOLATED, QuoteSource.SETTLED)


_RawPool = tuple[str, float, float, float, float]  # currency, IM, MM, margin equity, worst loss


def _rules_pools(account: Account, market: MarketSnapshot, rule_set: str) -> list[_RawPool]:
    from portmargin.rules import SEARCH_TIME_LIMIT, load_rule_set, rules_margin

    positions = [(market.instrument(k), v) for k, v in account.positions.items()]
    res = rules_margin(
        positions,
        dict(account.balances),
        market,
        load_rule_set(rule_set),
        time_limit=SEARCH_TIME_LIMIT,
    )
    return [
        (ccy, p.initial_margin, p.maintenance_margin, p.equity, 0.0)
        for ccy, p in res.by_currency.items()
    ]


def batch_pools(result: BatchResult, row: int) -> list[_RawPool]:
    """The portfolio-margin pools of row ``row`` of a session result (present ones only)."""
    out = []
    for p, pool in enumerate(result.pools):
        if result.present[row, p]:
            out.append(
                (
                    pool,
                    float(result.initial_margin[row, p]),
                    float(result.maintenance_margin[row, p]),
                    float(result.equity[row, p]),
                    max(-float(result.binding_pnl[row, p]), 0.0),
                )
            )
    return out


def result_pools(result: MarginResult) -> list[_RawPool]:
    """The portfolio-margin pools of an explained result (as :func:`batch_pools`).

    A pool's worst loss is that of its binding underlying (the largest requirement).
    """
    out = []
    for p in result.by_currency:
        top = max(p.underlyings, key=lambda u: u.requirement, default=None)
        loss = 0.0 if top is None else max(-top.worst_scenario.pnl, 0.0)
        out.append((p.currency, p.initial_margin, p.maintenance_margin, p.equity, loss))
    return out


def account_margin(
    account: Account,
    market: MarketSnapshot,
    settings: AccountSettings,
    pm_pools: Sequence[_RawPool],
    *,
    cross: bool,
    method: str | None = None,
) -> AccountMargin:
    """Apply haircuts, the qualification gate and the status rule to portfolio-margin pools.

    ``pm_pools`` are the account's portfolio-margin pools ``(currency, IM, MM, margin
    equity, worst loss)`` (:func:`batch_pools`). ``method`` (``"portfolio"`` or ``"rules"``)
    keeps a method decided earlier instead of applying the gate now; ``eligible`` still
    reports the gate's current verdict.
    """
    haircuts = _pool_haircuts(account.balances, market, settings, cross=cross)
    equity_usd = sum(
        (eq - haircuts.get(ccy, 0.0)) * usd_rate(ccy, market) for ccy, _, _, eq, _ in pm_pools
    )
    eligible = qualifies(equity_usd, settings.min_pm_equity_usd, approved=account.pm_approved)
    if method is None:
        method = "portfolio" if eligible else "rules"
    elif method not in ("portfolio", "rules"):
        raise ParameterError(f"margin method {method!r}: use 'portfolio' or 'rules'")
    raw = list(pm_pools)
    if method == "rules":
        worst = {ccy: loss for ccy, _, _, _, loss in pm_pools}
        raw = [
            (ccy, im, mm, eq, worst.get(ccy, 0.0))
            for ccy, im, mm, eq, _ in _rules_pools(account, market, settings.fallback_rule_set)
        ]
        if cross:  # the rules fallback is segregated: haircut it the same way
            haircuts = _pool_haircuts(account.balances, market, settings, cross=False)
    pools = []
    for ccy, im, mm, eq, loss in raw:
        hc = haircuts.get(ccy, 0.0)
        status = classify(eq - hc, im, mm, settings)
        pools.append(PoolFigures(ccy, im, mm, eq - hc, hc, usd_rate(ccy, market), loss, status))
    mode = "cross" if cross and method == "portfolio" else "segregated"
    when = market.valuation_time.isoformat().replace("+00:00", "Z")
    return AccountMargin(
        account.account_id, method, eligible, account.pm_approved, mode, when, tuple(pools)
    )


def evaluate_account(
    account: Account,
    market: MarketSnapshot,
    model: MarginModel,
    settings: AccountSettings | None = None,
    *,
    method: str | None = None,
) -> AccountMargin:
    """Margin one account: the pipeline's pools, haircuts, gate and status.

    The account is a batch of one on a session over its own instruments (the same path as
    :class:`~portmargin.accounts.BatchMargin` and the monitor). ``method`` keeps a margin
    method decided earlier instead of applying the gate now.

    Raises
    ------
    InputError
        Unknown instruments or balances without a price (naming the account).
    """
    s = settings or AccountSettings()
    positions = canonical_positions(account, market)
    session = model.session(market, tuple(positions))
    row = session.margin_positions(positions, account.balances)
    return account_margin(account, market, s, batch_pools(row, 0), cross=model.cross, method=method)


def canonical_positions(account: Account, market: MarketSnapshot) -> dict[str, float]:
    """The account's positions under the market's canonical instrument names (summed).

    Raises
    ------
    InputError
        For a name the market cannot resolve, naming the account.
    """
    out: dict[str, float] = {}
    for name, qty in account.positions.items():
        try:
            key = market.instrument(name).name
        except PortmarginError as exc:
            hint = did_you_mean(name, market)
            raise InputError(f"{account.account_id}: positions: {exc}{hint}") from None
        out[key] = out.get(key, 0.0) + qty
    return {k: v for k, v in out.items() if v != 0.0}
